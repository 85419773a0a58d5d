"""One empty point for every decision: the tier policy, the power-off and the drain test agree, and
where it comes from (configuration, a measured brown-out, the board) is kept with it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.config import AssistantConfig, PathsConfig
from assistant.device.device_config import ShutdownConfig
from assistant.device.shutdown import ShutdownPolicy
from assistant.drain.brownout import measured_empty_point
from assistant.drain.options import DrainOptions
from assistant.drain.runlog import DrainError
from assistant.messages import BatteryReading
from assistant.power.battery_config import BatteryConfig
from assistant.power.cutoff import DEFAULT_EMPTY, EmptyPoint, is_empty, merge
from assistant.power.empty_store import MEASURED_FILE, empty_point_for, load_measured, save_measured
from assistant.power.gauges.ina219 import PROFILES
from assistant.power.tiers import Tier, TierConfig, choose_tier


def reading(soc: float, cell: float, t: float = 0.0) -> BatteryReading:
    return BatteryReading(t_monotonic=t, voltage_v=cell * 2, current_a=-0.7, power_w=None, soc_pct=soc,
                          charging=False, external_power=False, source="test", cell_voltage_v=cell)


LADDER = TierConfig(tiers=[
    Tier(name="llm", model=Path("m.gguf"), enter_soc_pct=40),
    Tier(name="fixed", kind="fixed", enter_soc_pct=5),
    Tier(name="shutdown", kind="shutdown"),
])


def test_every_decision_reads_the_same_point() -> None:
    """With the empty point at 10 %, a pack at 8 % used to sit in a "shutdown" tier that only spoke
    (the tier policy had its own 10 %) while the power-off waited for 5 % and the drain test for a
    third figure. Now all three stop there."""
    empty = EmptyPoint(10.0, 3.2, "battery.empty_soc_pct")
    at_8 = reading(8.0, 3.6)
    assert choose_tier(at_8, LADDER, LADDER.tiers[1], empty=empty).kind == "shutdown"
    policy = ShutdownPolicy(ShutdownConfig(hold_s=0.0), empty=empty)
    assert policy.update(at_8).state == "shutdown"
    from assistant.drain.run import DrainLoop

    class Stub:
        """Just what ``DrainLoop.cutoff`` reads."""

        def __init__(self) -> None:
            self.empty = empty
            self.opts = DrainOptions()

    why = DrainLoop.cutoff(Stub(), at_8)  # type: ignore[arg-type]
    assert why is not None and "empty point" in why and "SoC 8.0 % <= 10 %" in why
    assert DrainLoop.cutoff(Stub(), reading(12.0, 3.7)) is None  # type: ignore[arg-type]


def test_the_configuration_overrides_the_board_figure_by_figure(tmp_path: Path) -> None:
    board = PROFILES["waveshare_b"].empty
    cfg = BatteryConfig(empty_soc_pct=15.0)
    point = empty_point_for(cfg, board, gauge="ina219@0x42", state_dir=tmp_path, config_file=Path("/etc/a.yaml"))
    assert point.soc_pct == 15.0 and point.cell_voltage_v == board.cell_voltage_v
    assert "battery.empty_* in /etc/a.yaml" in point.source and "board preset waveshare_b" in point.source
    assert empty_point_for(BatteryConfig(), board, gauge="x", state_dir=tmp_path) is board
    assert merge(board, soc_pct=None, cell_voltage_v=None, where="w") is board


def test_a_measured_point_is_kept_per_gauge_and_checked_when_read(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    board = PROFILES["waveshare_b"].empty
    measured = EmptyPoint(14.0, 3.62, "measured by drain run r1")
    save_measured(tmp_path, measured, gauge="ina219@0x42", evidence={"run_id": "r1"})
    assert (tmp_path / MEASURED_FILE).stat().st_mode & 0o777 == 0o600
    assert load_measured(tmp_path, "ina219@0x42") == measured
    assert empty_point_for(BatteryConfig(), board, gauge="ina219@0x42", state_dir=tmp_path) == measured
    caplog.set_level("WARNING")
    assert load_measured(tmp_path, "max1704x@0x36") is None and "measured on 'ina219@0x42'" in caplog.text
    path = tmp_path / MEASURED_FILE
    for broken in ("{not json", json.dumps({"schema": 1, "gauge": "ina219@0x42", "cell_voltage_v": 9.9}),
                   json.dumps({"schema": 1, "gauge": "ina219@0x42", "soc_pct": "low"}), json.dumps([1, 2]),
                   json.dumps({"schema": 2, "gauge": "ina219@0x42", "soc_pct": 5})):
        path.write_text(broken)
        assert load_measured(tmp_path, "ina219@0x42") is None
        assert empty_point_for(BatteryConfig(), board, gauge="ina219@0x42", state_dir=tmp_path) is board
    assert load_measured(tmp_path / "none", "ina219@0x42") is None


def test_a_brownout_run_measures_the_point_ahead_of_the_cut() -> None:
    samples = [{"t_s": float(t), "source": "battery", "soc_pct": 20.0 - t / 60, "cell_voltage_v": 3.7 - t / 3000}
               for t in range(0, 600, 1)]
    samples.append({"t_s": 600.0, "source": None})  # the power came back: a sample after the reboot
    point, evidence = measured_empty_point(samples, lead_s=120.0, run_id="r9")
    last = samples[-2]
    assert evidence["last_sample"] == last and evidence["sample_used"]["t_s"] == pytest.approx(479.0)
    assert point.cell_voltage_v == pytest.approx(3.7 - 479 / 3000, abs=1e-3)
    assert point.soc_pct == pytest.approx(20.0 - 479 / 60, abs=0.1) and "r9" in point.source
    with pytest.raises(DrainError, match="no battery sample on battery"):
        measured_empty_point([{"t_s": 1.0, "source": "external"}], lead_s=120.0, run_id="r")
    with pytest.raises(DrainError, match="too short"):
        measured_empty_point(samples[-20:], lead_s=120.0, run_id="r")


def test_empty_point_figures_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a state of charge, a cell voltage or both"):
        EmptyPoint(None, None)
    with pytest.raises(ValueError, match="outside 2.5..4.2 V"):
        EmptyPoint(5.0, 7.0)
    assert DEFAULT_EMPTY.describe() == "SoC 5 % or 3.20 V per cell (built-in default)"
    strict_miss = is_empty(reading(4.0, 3.7), DEFAULT_EMPTY, strict=True)
    assert strict_miss == (False, "SoC 4.0 % <= 5 %, cell 3.700 V > 3.20 V")


def test_the_appliance_session_and_config_use_the_configured_point(tmp_path: Path) -> None:
    base = AssistantConfig()
    cfg = replace(base, paths=PathsConfig(state_dir=tmp_path, models_dir=tmp_path),
                  battery=replace(base.battery, kind="simulated", empty_cell_v=3.3))
    from assistant.session import Session

    with Session(cfg, with_asr=False, start_meter=False) as session:
        assert session.empty_point.cell_voltage_v == 3.3 and session.empty_point.soc_pct == 5.0


def test_each_gauge_is_polled_at_its_own_rate(tmp_path: Path) -> None:
    """The INA219 converts every 17 ms, the MAX1704x updates every 500 ms, pisugar-server and the UPS
    HAT (E)'s MCU about once a second: five TCP requests at 10 Hz bought nothing."""
    from gpiozero.pins.mock import MockFactory

    from assistant.power.gauges import Ina219Gauge, Max1704xGauge, PiSugarGauge, WaveshareEGauge
    from assistant.sim.pack import SimulatedPack
    from assistant.sim.chips.bus import EmulatedBus
    from assistant.sim.chips.max1704x import EmulatedMax1704x
    from assistant.session import Session

    assert (Ina219Gauge.poll_period_s, Max1704xGauge.poll_period_s, WaveshareEGauge.poll_period_s,
            PiSugarGauge.poll_period_s, SimulatedPack.poll_period_s) == (0.1, 0.5, 1.0, 1.0, 0.1)
    pins = MockFactory()
    try:
        gauge = Max1704xGauge(bus=EmulatedBus({0x36: EmulatedMax1704x()}), pin_factory=pins)
        cfg = replace(AssistantConfig(), paths=PathsConfig(state_dir=tmp_path, models_dir=tmp_path))
        with Session(cfg, with_asr=False, gauge=gauge, start_meter=False) as session:
            assert session.meter.period_s == 0.5
    finally:
        pins.reset()
