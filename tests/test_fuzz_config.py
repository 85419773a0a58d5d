"""Fuzzing the configuration loader: any YAML text and any nested mapping give a config or a ConfigError,
never another exception or a hang."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.config import AssistantConfig, build, load_config
from assistant.errors import AssistantError, ConfigError
from fuzzing import result_or_our_error

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4), max_leaves=12)
# "~name" paths are left out here: test_a_path_of_an_unknown_home_is_a_config_error covers them.
path_text = st.text(min_size=1, max_size=30).filter(lambda t: not t.startswith("~"))


def value_for(hint: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Mostly a value of the right type (with edge cases), sometimes anything at all."""
    return st.one_of(typed(hint, depth), typed(hint, depth), typed(hint, depth), anything)


def typed(hint: Any, depth: int) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[typed(a, depth) if a is not type(None) else st.none() for a in args])
    if origin is Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(value_for(args[0], depth + 1), max_size=5)
    if origin is dict:
        return st.dictionaries(st.text(max_size=10), value_for(args[1], depth + 1), max_size=4)
    if dataclasses.is_dataclass(hint):
        return section(hint, depth + 1)
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(-5, 2**20) | st.integers()
    if hint is float:
        return st.floats(-10, 1e5) | st.floats(allow_nan=True, allow_infinity=True)
    if hint is str:
        return st.text(max_size=40)
    if hint is Path:
        return path_text
    return anything


def section(cls: Any, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping for dataclass ``cls``: a random subset of its keys, now and then an unknown one."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    if depth > 4:
        return st.just({})
    known = st.fixed_dictionaries({}, optional={n: value_for(hints[n], depth) for n in names})
    return st.one_of(known, known, st.builds(lambda d, k, v: {**d, k: v}, known, st.text(max_size=8), anything))


def check(outcome: AssistantConfig | AssistantError) -> None:
    if isinstance(outcome, AssistantError):
        assert isinstance(outcome, ConfigError), outcome
        assert str(outcome)
        return
    assert isinstance(outcome, AssistantConfig)


@FUZZ
@given(section(AssistantConfig))
def test_arbitrary_sections_through_build(data: dict[str, Any]) -> None:
    check(result_or_our_error(lambda: build(AssistantConfig, data, "<fuzz>", "")))


@FUZZ
@given(section(AssistantConfig))
def test_arbitrary_sections_through_a_yaml_file(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    check(load_text(text))


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_yaml_text(text: str) -> None:
    check(load_text(text))


@FUZZ
@given(st.lists(st.sampled_from(["llm:", "  model: x", "tiers:", "  tiers:", "    - name: a", "      kind: fixed",
                                 "- [", "{", "&a", "*a", "!!python/object:os.system", "!!binary xx", "? ", ": ",
                                 "  - 1", "\t", "%YAML 1.1", "---", "...", "'", '"', "|", ">"]), max_size=25))
def test_arbitrary_yaml_shapes(lines: list[str]) -> None:
    check(load_text("\n".join(lines)))


def load_text(text: str) -> AssistantConfig | AssistantError:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return result_or_our_error(lambda: load_config(path, search=False))


def test_deep_nesting_is_a_config_error() -> None:
    outcome = load_text("llm: " + "[" * 5000 + "]" * 5000 + "\n")
    assert isinstance(outcome, ConfigError) and "not valid YAML" in str(outcome)


def test_unsafe_tags_are_refused() -> None:
    outcome = load_text("llm: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    assert isinstance(outcome, ConfigError)


def test_a_path_of_an_unknown_home_is_a_config_error() -> None:
    outcome = load_text("paths:\n  state_dir: ~no_such_user_here/state\n")
    assert isinstance(outcome, ConfigError)
