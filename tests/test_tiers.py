"""The tier ladder: configuration checks and the pure choose_tier policy."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.config import build
from assistant.errors import ConfigError
from assistant.messages import BatteryReading
from assistant.power.cutoff import EmptyPoint
from assistant.models.tier_ladder import SPREAD, default_ladder, unavailable_tiers
from assistant.power.tiers import Tier, TierConfig, choose_tier, length_instruction

LADDER_YAML = """
tiers:
  - {name: A, model: a.gguf, quant: Q8_0, enter_soc_pct: 60, max_tokens: 96, reply_words: 40}
  - {name: B, model: b.gguf, quant: Q4_K_M, enter_soc_pct: 35, max_tokens: 64, reply_words: 25}
  - {name: C, model: c.gguf, quant: Q2_K, enter_soc_pct: 15, max_tokens: 40, reply_words: 15}
  - {name: fixed, kind: fixed, enter_soc_pct: 5}
  - {name: shutdown, kind: shutdown, enter_soc_pct: 0}
hysteresis_pct: 3
"""


def load(text: str, filename: str = "/etc/assistant/config.yaml") -> TierConfig:
    data = yaml.safe_load(text)
    result: TierConfig = build(TierConfig, data, filename, "tiers.")
    return result


CFG = load(LADDER_YAML)
T = {t.name: t for t in CFG.tiers}
EMPTY = EmptyPoint(soc_pct=5.0, cell_voltage_v=None, source="test")
"""The pack is empty at 5 %: the point every decision uses (battery.empty_soc_pct)."""


def reading(soc: float | None, *, v: float = 7.4, charging: bool | None = False, external: bool | None = False,
            current: float | None = None) -> BatteryReading:
    """A 2S pack: the weakest cell is half the pack voltage."""
    return BatteryReading(t_monotonic=0.0, voltage_v=v, current_a=current, power_w=None, soc_pct=soc,
                          charging=charging, external_power=external, source="test", cell_voltage_v=v / 2)


def choose(r: BatteryReading | None, cfg: TierConfig, current: Tier | None, *, empty: EmptyPoint = EMPTY,
           unavailable: set[str] | frozenset[str] = frozenset()) -> Tier:
    return choose_tier(r, cfg, current, empty=empty, unavailable=unavailable)


# (SoC, current tier, unavailable, expected)
SOC_CASES = [
    (100, None, (), "A"), (80, None, (), "A"), (60, None, (), "A"), (59.9, None, (), "B"),
    (35, None, (), "B"), (34.9, None, (), "C"), (15, None, (), "C"), (14.9, None, (), "fixed"),
    (5.1, None, (), "fixed"), (5, None, (), "shutdown"), (0, None, (), "shutdown"),  # empty at or below 5 %
    # moving up needs the threshold + 3 %-points
    (61, "B", (), "B"), (62.9, "B", (), "B"), (63, "B", (), "A"), (37.9, "C", (), "C"), (38, "C", (), "B"),
    (70, "C", (), "A"), (16, "fixed", (), "fixed"), (18, "fixed", (), "C"),
    # moving down happens right below the current threshold, possibly several rungs at once
    (59.9, "A", (), "B"), (34, "A", (), "C"), (10, "A", (), "fixed"), (4, "A", (), "shutdown"),
    # leaving shutdown needs the empty point's margin (2 %-points) too
    (6, "shutdown", (), "shutdown"), (7.0, "shutdown", (), "shutdown"), (7.1, "shutdown", (), "fixed"),
    (50, "shutdown", (), "B"),
    # missing models are skipped downwards
    (80, None, ("A",), "B"), (80, None, ("A", "B"), "C"), (20, None, ("C",), "fixed"),
    (80, "B", ("A",), "B"), (50, "B", ("B",), "C"), (70, "A", ("A",), "B"), (80, None, ("A", "B", "C"), "fixed"),
]


@pytest.mark.parametrize("soc,current,unavailable,expected", SOC_CASES)
def test_choose_tier_by_soc(soc: float, current: str | None, unavailable: tuple[str, ...], expected: str) -> None:
    cur = T[current] if current else None
    assert choose(reading(soc), CFG, cur, unavailable=set(unavailable)).name == expected


@pytest.mark.parametrize("kw,soc,unavailable,expected", [
    ({"charging": True}, 10, (), "A"),
    ({"external": True, "current": 0.5}, 10, (), "A"),
    ({"charging": True}, 3, (), "A"),  # plugged in: no shutdown
    ({"charging": True}, 80, ("A",), "B"),
    ({"external": True, "current": -0.3}, 10, (), "fixed"),  # supply too weak: battery rules apply
    ({"external": None, "charging": None}, 40, (), "B"),  # unknown power state: battery rules
])
def test_external_power(kw: dict[str, object], soc: float, unavailable: tuple[str, ...], expected: str) -> None:
    assert choose(reading(soc, **kw), CFG, T["fixed"], unavailable=set(unavailable)).name == expected  # type: ignore[arg-type]


def test_no_reading_keeps_current_or_uses_default() -> None:
    assert choose(None, CFG, T["B"]).name == "B"
    assert choose(None, CFG, T["shutdown"]).name == "shutdown"
    assert choose(None, CFG, None).name == "A"  # no default: the richest available
    assert choose(None, CFG, None, unavailable={"A"}).name == "B"
    assert choose(None, CFG, T["B"], unavailable={"B"}).name == "C"
    with_default = replace(CFG, default_tier="C")
    assert choose(None, with_default, None).name == "C"


def test_tier_from_another_config_is_chosen_afresh() -> None:
    stranger = Tier(name="gone", model=Path("x.gguf"), enter_soc_pct=50)
    assert choose(reading(40), CFG, stranger).name == "B"


CELL = EmptyPoint(soc_pct=5.0, cell_voltage_v=3.2, source="test")
"""Empty at 5 % or 3.20 V on the weakest cell (6.40 V for a 2S pack)."""


def test_cell_voltage_shutdown_applies_even_with_soc() -> None:
    assert choose(reading(50, v=6.39), CFG, T["B"], empty=CELL).name == "shutdown"
    assert choose(reading(50, v=6.5), CFG, T["B"], empty=CELL).name == "B"
    assert choose(reading(50, v=6.48), CFG, CFG.shutdown, empty=CELL).name == "shutdown"  # within 0.05 V per cell
    assert choose(reading(50, v=6.52), CFG, CFG.shutdown, empty=CELL).name == "B"


def test_the_weakest_cell_decides_not_the_pack_average() -> None:
    sagging = replace(reading(50, v=7.4), cell_voltage_v=3.15)  # one cell of four far below the others
    assert choose(sagging, CFG, T["B"], empty=CELL).name == "shutdown"


def test_voltage_only_without_voltage_thresholds_keeps_current() -> None:
    assert choose(reading(None, v=7.0), CFG, T["C"], empty=CELL).name == "C"
    assert choose(reading(None, v=7.0), CFG, None, empty=CELL).name == "A"
    assert choose(reading(None, v=6.3), CFG, T["C"], empty=CELL).name == "shutdown"
    assert choose(reading(None, v=7.0), CFG, T["B"], unavailable={"B"}).name == "C"
    assert choose(reading(None, v=6.48), CFG, CFG.shutdown, empty=CELL).name == "shutdown"
    assert choose(reading(None, v=6.52), CFG, CFG.shutdown, empty=CELL).name == "A"


def test_unknown_power_source_needs_every_figure_empty() -> None:
    unknown = replace(reading(4.0, v=7.4), external_power=None, charging=None)  # a low SoC estimate alone
    assert choose(unknown, CFG, T["fixed"], empty=CELL).name == "fixed"
    both = replace(reading(4.0, v=6.3), external_power=None, charging=None)
    assert choose(both, CFG, T["fixed"], empty=CELL).name == "shutdown"


def test_a_discharge_means_battery_whatever_the_flag_says() -> None:
    """A UPS HAT (E) whose USB-C port sources power reads VBUS 5 V while the pack discharges."""
    assert choose(reading(3, external=True, current=-0.9), CFG, T["fixed"]).name == "shutdown"
    assert choose(reading(3, external=True, current=0.4), CFG, T["fixed"]).name == "A"


VOLT_YAML = LADDER_YAML.replace("enter_soc_pct: 60,", "enter_soc_pct: 60, enter_voltage_v: 7.8,").replace(
    "enter_soc_pct: 35,", "enter_soc_pct: 35, enter_voltage_v: 7.5,").replace(
    "enter_soc_pct: 15,", "enter_soc_pct: 15, enter_voltage_v: 7.2,").replace(
    "kind: fixed, enter_soc_pct: 5", "kind: fixed, enter_soc_pct: 5, enter_voltage_v: 7.0")
VOLT_EMPTY = EmptyPoint(soc_pct=None, cell_voltage_v=3.3, source="test")


@pytest.mark.parametrize("v,current,expected", [
    (7.9, None, "A"), (7.6, None, "B"), (7.49, "B", "C"), (7.52, "C", "C"), (7.56, "C", "B"),
    (6.9, None, "fixed"), (6.59, "fixed", "shutdown"), (6.62, "shutdown", "shutdown"), (6.68, "shutdown", "shutdown"),
    (6.72, "shutdown", "fixed"),
])
def test_voltage_only_thresholds(v: float, current: str | None, expected: str) -> None:
    cfg = load(VOLT_YAML)
    tiers = {t.name: t for t in cfg.tiers}
    assert choose(reading(None, v=v), cfg, tiers[current] if current else None, empty=VOLT_EMPTY).name == expected


def test_oscillating_soc_switches_once() -> None:
    sequence = [36, 35.2, 34.9, 35.1, 34.8, 35.3, 36, 37.9, 35.5, 34.5, 35.0, 36.2, 37.5, 34.99, 35.01]
    tier = T["B"]
    names = []
    for soc in sequence:
        tier = choose(reading(soc), CFG, tier)
        names.append(tier.name)
    switches = sum(1 for a, b in zip(names, names[1:]) if a != b)
    assert switches == 1 and names[2] == "C" and names[-1] == "C"


@settings(max_examples=60, deadline=None)
@given(center=st.sampled_from([60.0, 35.0, 15.0, 5.0]), start=st.sampled_from([None, "A", "B", "C", "fixed"]),
       offsets=st.lists(st.floats(min_value=-1.45, max_value=1.45), min_size=2, max_size=40))
def test_noise_narrower_than_hysteresis_switches_at_most_once(
    center: float, start: str | None, offsets: list[float]
) -> None:
    tier = choose(reading(center + offsets[0]), CFG, T[start] if start else None)
    switches = 0
    for off in offsets[1:]:
        new = choose(reading(center + off), CFG, tier)
        switches += new.name != tier.name
        tier = new
    assert switches <= 1


def test_a_slow_drain_only_ever_moves_down() -> None:
    import random

    rng = random.Random(7)
    order = [t.name for t in CFG.tiers]
    tier = None
    seen: list[str] = []
    soc = 100.0
    while soc > 0:
        soc -= 0.05
        tier = choose(reading(max(0.0, soc + rng.uniform(-1.4, 1.4))), CFG, tier)
        if not seen or seen[-1] != tier.name:
            seen.append(tier.name)
    assert seen == order  # every rung once, in order, never back up


def test_config_loads_and_resolves_paths() -> None:
    assert [t.name for t in CFG.ladder] == ["A", "B", "C", "fixed"]
    assert T["A"].model == Path("/etc/assistant/a.gguf")
    assert CFG.shutdown is T["shutdown"]
    assert T["fixed"].model is None and T["fixed"].kind == "fixed"


@pytest.mark.parametrize("edit,words", [
    (lambda s: s.replace("enter_soc_pct: 35", "enter_soc_pct: 60"), ["tiers[1].enter_soc_pct", "strictly"]),
    (lambda s: s.replace("name: B", "name: A"), ["tiers[1].name", "twice"]),
    (lambda s: s.replace("model: c.gguf, ", ""), ["tier 'C'", "needs a model"]),
    (lambda s: s.replace("quant: Q2_K", "quantz: Q2_K"), ["tiers.tiers[2].quantz", "unknown key"]),
    (lambda s: s.replace("enter_soc_pct: 60,", "enter_soc_pct: 'high',"), ["tiers.tiers[0].enter_soc_pct"]),
    (lambda s: s + "shutdown_soc_pct: 9\n", ["tiers.shutdown_soc_pct", "moved", "battery.empty_soc_pct"]),
    (lambda s: s + "shutdown_voltage_v: 6.4\n", ["tiers.shutdown_voltage_v", "battery.empty_cell_v"]),
    (lambda s: s + "default_tier: Z\n", ["default_tier 'Z'"]),
    (lambda s: s.replace("kind: shutdown", "kind: halt"), ["tiers.tiers[4].kind"]),
    (lambda s: s.replace("enter_soc_pct: 60,", "enter_soc_pct: 60, enter_voltage_v: 7.8,"), ["enter_voltage_v"]),
    (lambda s: s.replace("enter_soc_pct: 15, max_tokens: 40", "enter_soc_pct: 15, max_tokens: 0"),
     ["max_tokens must be positive"]),
])
def test_bad_config_names_key_and_file(edit: object, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load(edit(LADDER_YAML), "/srv/box.yaml")  # type: ignore[operator]
    message = str(info.value)
    assert "/srv/box.yaml" in message
    for word in words:
        assert word in message


def test_shutdown_tier_must_be_last() -> None:
    with pytest.raises(ValueError, match="must be the last"):
        TierConfig(tiers=[Tier(name="s", kind="shutdown", enter_soc_pct=50), Tier(name="f", kind="fixed")])


def test_length_instruction() -> None:
    assert length_instruction(T["A"]) == "Answer in at most 40 words."
    assert length_instruction(T["fixed"]) == ""


def test_unavailable_tiers_checks_files(tmp_path: Path, smollm2: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    cfg = TierConfig(tiers=[
        Tier(name="real", model=smollm2, enter_soc_pct=50),
        Tier(name="missing", model=tmp_path / "none.gguf", enter_soc_pct=30),
        Tier(name="corrupt", model=bad, enter_soc_pct=20),
        Tier(name="fixed", kind="fixed", enter_soc_pct=5),
    ])
    assert unavailable_tiers(cfg) == {"missing", "corrupt"}


def test_default_ladder_before_the_ladder_is_built(tmp_path: Path, smollm2: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Only types leaner than the embedded Q4_1 are rungs (never a re-quantization up), spread as every
    ladder is; until they are built the embedded file serves from the bottom rung's threshold up."""
    with caplog.at_level(logging.WARNING, logger="assistant.models.tier_ladder"):
        cfg = default_ladder(tmp_path)
    assert "build-ladder" in caplog.text
    names = [t.name for t in cfg.tiers]
    assert names == ["q4_1", "q4_k_m", "q2_k", "fixed", "shutdown"]
    assert [t.enter_soc_pct for t in cfg.tiers] == [60, 37.5, 15, 5, 0]
    assert [(t.max_tokens, t.reply_words) for t in cfg.ladder if t.kind == "llm"] == [
        SPREAD.rung(i, 3)[1:] for i in range(3)] == [(96, 40), (68, 28), (40, 15)]
    assert cfg.tier("q4_1").model == smollm2  # type: ignore[union-attr]
    assert cfg.tier("q2_k").model == tmp_path / "ladder" / "SmolLM2-135M-Instruct.Q2_K.gguf"  # type: ignore[union-attr]
    missing = unavailable_tiers(cfg)
    assert missing == {"q4_k_m", "q2_k"}
    assert choose(reading(90), cfg, None, unavailable=missing).name == "q4_1"
    assert choose(reading(20), cfg, None, unavailable=missing).name == "fixed"
    assert choose(reading(3), cfg, None, unavailable=missing).kind == "shutdown"


def test_one_rung_serves_down_to_the_bottom_threshold() -> None:
    assert SPREAD.rung(0, 1) == (15.0, 96, 40)  # a single model answers in full, and is not given up at 60 %
    assert SPREAD.rung(0, 2) == (60.0, 96, 40) and SPREAD.rung(1, 2) == (15.0, 40, 15)
