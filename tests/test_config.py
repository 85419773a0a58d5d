"""Loading and validating the YAML configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assistant.config import AssistantConfig, find_config, load_config
from assistant.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_with_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    if Path("/etc/assistant/config.yaml").exists():
        pytest.fail("a system config exists on this machine; the defaults test needs a clean one")
    assert find_config(None) is None
    assert load_config(None) == AssistantConfig()


def test_values_are_read_and_paths_resolved_against_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "llm:\n  max_tokens: 40\n  model: sub/m.gguf\nasr:\n  grammar: ['yes', 'no']\n")
    cfg = load_config(path)
    assert cfg.llm.max_tokens == 40
    assert cfg.llm.model == tmp_path / "sub" / "m.gguf"
    assert cfg.asr.grammar == ["yes", "no"]
    assert cfg.source == path


def test_search_order_finds_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    (tmp_path / "assistant.yaml").write_text("llm:\n  threads: 1\n")
    assert load_config(None).llm.threads == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("llm:\n  max_tokenz: 3\n", "unknown key 'llm.max_tokenz'"),
        ("lm:\n  max_tokens: 3\n", "unknown key 'lm'"),
        ("llm:\n  max_tokens: lots\n", "key 'llm.max_tokens' has value 'lots', expected a whole number"),
        ("llm:\n  temperature: [1]\n", "key 'llm.temperature'"),
        ("asr:\n  engine: whisper\n", "key 'asr.engine' has value 'whisper', expected one of 'auto'"),
        ("asr:\n  grammar: [yes, stop]\n", "key 'asr.grammar[0]' has value True, expected a string (put it in quotes"),
        ("llm: 5\n", "key 'llm' has value 5, expected a mapping"),
        ("tts:\n  first_clause_words: true\n", "key 'tts.first_clause_words'"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("llm: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_config_names_key_value_and_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).llm == AssistantConfig().llm


def test_a_config_this_user_may_not_read_says_how_to_run_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A login user and the service's /etc/assistant (0750 root:assistant): stat() of the file is
    refused. Here the refusal is injected (the tests run as root, whom no mode stops; the installer
    test shows it for real) and the folder's group stands for the service's."""
    import grp
    import os

    from assistant.cli import main
    from assistant.errors import ConfigUnreadable

    folder = tmp_path / "etc-assistant"
    folder.mkdir(mode=0o750)
    group = grp.getgrnam("nogroup")
    os.chown(folder, 0, group.gr_gid)
    path = write(folder, "llm:\n  max_tokens: 3\n")
    real_is_file = Path.is_file

    def is_file(self: Path) -> bool:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)
    monkeypatch.setattr(Path, "is_file", is_file)
    monkeypatch.setenv("ASSISTANT_CONFIG", str(path))
    with pytest.raises(ConfigUnreadable) as err:
        load_config(None)
    assert isinstance(err.value, ConfigError) and err.value.exit_code == 2
    assert main(["stats", "--json"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"assistant: error: cannot read config file {path}: permission denied (only root and group nogroup may); "
        "run it as the service user: sudo -u nogroup assistant stats --json (or: sudo assistant stats --json)"]


@pytest.mark.parametrize("section,values", [
    ("button", {"pin": 2}), ("button", {"pin": 3}), ("led", {"pin": 0}), ("led", {"kind": "rgb", "rgb_pins": [1, 23, 24]}),
])
def test_a_button_or_led_on_the_gauges_i2c_lines_is_refused(tmp_path: Path, section: str,
                                                           values: dict[str, object]) -> None:
    """Claiming GPIO2/3 takes SDA/SCL from the battery gauge (and 0/1 the HAT EEPROM's): refused, naming the key."""
    path = tmp_path / "box.yaml"
    path.write_text(yaml.safe_dump({section: values}))
    with pytest.raises(ConfigError, match=rf"box\.yaml.*key '{section}\.(pin|rgb_pins)' is GPIO[0-3], the I2C line"):
        load_config(path)
    path.write_text(yaml.safe_dump({section: values, "battery": {"kind": "simulated"}}))
    load_config(path)  # a simulated battery needs no I2C


@pytest.mark.parametrize("text,words", [
    ("tiers:\n  tiers: [{name: fixed, kind: fixed}]\n  shutdown_soc_pct: 9\n", ["tiers.shutdown_soc_pct", "battery.empty_soc_pct"]),
    ("shutdown:\n  cell_voltage_v: 3.3\n", ["shutdown.cell_voltage_v", "battery.empty_cell_v"]),
    ("service:\n  busy_budget_s: 60\n", ["service.busy_budget_s", "service.turn_budget_s"]),
    ("asr:\n  partials: false\n", ["asr.partials", "was removed"]),
])
def test_a_moved_or_removed_key_says_what_to_do(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and all(w in str(info.value) for w in words)
