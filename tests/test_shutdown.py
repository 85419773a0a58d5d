"""Low-battery shutdown: the policy on scripted and simulated readings, and the power-off command."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import replace
from typing import Any

import pytest

from assistant.config import build
from assistant.device.device_config import ShutdownConfig
from assistant.device.shutdown import ShutdownDecision, ShutdownPolicy, Shutdowner
from assistant.errors import ConfigError
from assistant.messages import BatteryReading
from assistant.power.cutoff import EmptyPoint, power_source
from assistant.sim.pack import SimulatedPack

CFG = ShutdownConfig(hold_s=60.0)
EMPTY = EmptyPoint(soc_pct=5.0, cell_voltage_v=3.2, source="test")


def reading(soc: float | None, volts: float, *, t: float = 0.0, cells: int = 1, external: bool | None = False,
            current: float | None = None, charging: bool | None = None) -> BatteryReading:
    return BatteryReading(t_monotonic=t, voltage_v=volts, current_a=current, power_w=None, soc_pct=soc,
                          charging=charging, external_power=external, source="test", cell_voltage_v=volts / cells)


def run_sequence(policy: ShutdownPolicy, readings: list[BatteryReading], step_s: float = 2.0,
                 start: float = 1000.0) -> list[ShutdownDecision]:
    """Feed the readings as a gauge would take them, ``step_s`` apart on their own clock."""
    return [policy.update(replace(r, t_monotonic=start + i * step_s)) for i, r in enumerate(readings)]


def test_empty_on_battery_shuts_down_only_after_hold() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    decisions = run_sequence(policy, [reading(4.0, 7.2, cells=2)] * 31)  # 0 .. 60 s
    assert [d.state for d in decisions[:30]] == ["pending"] * 30
    assert decisions[29].below_for_s == pytest.approx(58.0)
    assert decisions[30].state == "shutdown" and decisions[30].below_for_s == pytest.approx(60.0)
    assert "on battery" in decisions[30].reason and "SoC 4.0 % <= 5 %" in decisions[30].reason


def test_above_threshold_is_ok() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    decision = policy.update(reading(50.0, 7.6, cells=2))
    assert decision == ShutdownDecision("ok", "on battery, SoC 50.0 % > 5 %, cell 3.800 V > 3.20 V", 0.0)


def test_never_on_external_power() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    decisions = run_sequence(policy, [reading(0.0, 2.9, external=True)] * 100)
    assert {d.state for d in decisions} == {"ok"} and not any(d.low for d in decisions)
    assert decisions[-1].reason == "on external power"


def test_external_power_returning_resets_the_timer() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    low, plugged = reading(3.0, 3.3), reading(3.0, 3.3, external=True)
    decisions = run_sequence(policy, [low] * 26 + [plugged] + [low] * 30)  # 50 s low, plugged, 58 s low
    assert decisions[25].below_for_s == pytest.approx(50.0)
    assert decisions[26].state == "ok"
    assert {d.state for d in decisions[27:]} == {"pending"}
    assert decisions[-1].below_for_s == pytest.approx(58.0)


def test_flapping_reading_resets_the_timer() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    flap = [reading(4.0, 3.5), reading(6.0, 3.5)] * 40  # 160 s, never 60 s in a row
    decisions = run_sequence(policy, flap)
    assert {d.state for d in decisions} == {"pending", "ok"}
    assert max(d.below_for_s for d in decisions) == 0.0


def test_low_battery_alarm_has_hysteresis() -> None:
    """The alarm (LED, earcon) comes on at the empty point and goes off only 2 %-points and 0.05 V
    above it: a SoC estimate wandering around 5 % does not flap it."""
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    socs = [6.0, 5.0, 5.5, 6.2, 4.9, 6.9, 5.2, 7.5, 6.0]
    lows = [d.low for d in run_sequence(policy, [reading(s, 3.7) for s in socs])]
    assert lows == [False, True, True, True, True, True, True, False, False]
    volts = [3.3, 3.2, 3.22, 3.24, 3.26, 3.23]
    lows = [d.low for d in run_sequence(ShutdownPolicy(CFG, empty=EMPTY), [reading(50, v) for v in volts])]
    assert lows == [False, True, True, True, False, False]


def test_voltage_alone_triggers_per_cell() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    assert policy.update(reading(None, 6.5, t=0.0, cells=2)).state == "ok"  # 3.25 V per cell
    assert policy.update(reading(None, 6.3, t=1.0, cells=2)).state == "pending"  # 3.15 V per cell
    last = policy.update(reading(None, 6.3, t=61.0, cells=2))
    assert last.state == "shutdown" and "cell 3.150 V <= 3.20 V" in last.reason


def test_the_cell_count_comes_from_the_reading_not_a_default_of_one() -> None:
    """A 2S pack at 6.3 V is empty (3.15 V a cell); counted as one cell it looked full and never shut down."""
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    unknown = dict(external=None, current=None, charging=None)
    decisions = run_sequence(policy, [reading(None, 6.3, cells=2, **unknown)] * 31)
    assert decisions[-1].state == "shutdown" and "power source unknown" in decisions[-1].reason


def test_either_threshold_is_enough_on_battery() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    assert policy.update(reading(40.0, 3.1)).state == "pending"  # voltage sag, SoC estimate high
    policy.reset()
    assert policy.update(reading(2.0, 3.7)).state == "pending"  # gas gauge says empty


def test_unknown_power_source_needs_every_indicator() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    unknown = dict(external=None, current=None, charging=None)
    assert policy.update(reading(40.0, 3.1, t=0.0, **unknown)).state == "ok"
    assert policy.update(reading(2.0, 3.7, t=1.0, **unknown)).state == "ok"
    both = policy.update(reading(2.0, 3.1, t=2.0, **unknown))
    assert both.state == "pending" and both.reason.startswith("power source unknown")
    assert policy.update(reading(None, 3.1, t=62.0, **unknown)).state == "shutdown"  # voltage is all it has


def test_power_source_inference() -> None:
    assert power_source(reading(50, 3.7, external=None, current=-0.8)) == "battery"
    assert power_source(reading(50, 3.7, external=None, current=0.4)) == "external"
    assert power_source(reading(50, 3.7, external=None, charging=True)) == "external"
    assert power_source(reading(50, 3.7, external=None, current=float("nan"))) == "unknown"
    assert power_source(reading(50, 3.7, external=False, current=0.4)) == "battery"  # the PLD line decides
    assert power_source(reading(50, 3.7, external=True, current=-0.9)) == "battery"  # a discharge outranks a flag
    assert power_source(reading(50, 3.7, external=True, current=-0.02)) == "external"  # within the noise
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    charging = [reading(1.0, 3.0, external=None, current=0.5)] * 40
    assert {d.state for d in run_sequence(policy, charging)} == {"ok"}


def test_external_flag_with_a_sustained_discharge_still_shuts_down() -> None:
    """An under-rated supply (or a USB-C port sourcing power) leaves the pack feeding the device: the
    flag says external, the current says battery, the pack runs flat. It must still power off."""
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    decisions = run_sequence(policy, [reading(3.0, 3.1, external=True, current=-1.2)] * 31)
    assert decisions[-1].state == "shutdown" and decisions[-1].reason.startswith("on battery")


def test_a_stale_reading_is_no_evidence() -> None:
    """A gauge that died after an empty reading hands the same reading again: the timer must not run
    on it (before, the appliance powered off 60 s later on that one old reading)."""
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    last = reading(3.0, 3.1, t=500.0)
    decisions = [policy.update(last) for _ in range(100)]
    assert {d.state for d in decisions} == {"pending"}
    assert max(d.below_for_s for d in decisions) == 0.0


def test_a_long_gap_between_readings_restarts_the_timer() -> None:
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    assert policy.update(reading(3.0, 3.3, t=0.0)).state == "pending"
    after_gap = policy.update(reading(3.0, 3.3, t=200.0))
    assert after_gap.state == "pending" and after_gap.below_for_s == 0.0
    assert policy.update(reading(3.0, 3.3, t=230.0)).state == "pending"
    assert policy.update(reading(3.0, 3.3, t=260.0)).state == "shutdown"


def test_disabled_never_fires_but_still_warns() -> None:
    policy = ShutdownPolicy(ShutdownConfig(enabled=False), empty=EMPTY)
    decisions = run_sequence(policy, [reading(0.0, 2.8)] * 100)
    assert {d.state for d in decisions} == {"ok"} and all(d.low for d in decisions)


def test_simulated_pack_drains_into_a_shutdown() -> None:
    now = [0.0]
    pack = SimulatedPack(capacity_wh=19.24, start_soc_pct=6.0, cells_in_series=2, power_profile=lambda t: 5.0,
                         clock=lambda: now[0], cpu_time_fn=lambda: 0.0)
    policy = ShutdownPolicy(CFG, empty=EMPTY)
    decisions: list[tuple[float, ShutdownDecision]] = []
    while now[0] < 600.0:
        now[0] += 2.0
        decision = policy.update(pack.read())
        decisions.append((pack.soc_pct, decision))
        if decision.state == "shutdown":
            break
    soc_at_shutdown, last = decisions[-1]
    assert last.state == "shutdown"
    first_pending = next(i for i, (_, d) in enumerate(decisions) if d.state == "pending")
    assert decisions[first_pending][0] <= 5.0 + 0.05  # pending starts when the pack crosses 5 %
    assert (len(decisions) - 1 - first_pending) * 2.0 == pytest.approx(60.0)
    assert soc_at_shutdown > 3.0  # 60 s at 5.6 W takes about 0.5 % of this pack
    pack.set_external_power(True)
    now[0] += 2.0
    assert policy.update(pack.read()).state == "ok"


class FakeRun:
    """Stands in for subprocess.run and remembers how it was called."""

    def __init__(self, result: Any = None, raises: BaseException | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.result = result if result is not None else subprocess.CompletedProcess([], 0, "", "")
        self.raises = raises

    def __call__(self, argv: list[str], **kwargs: Any) -> Any:
        self.calls.append((argv, kwargs))
        if self.raises is not None:
            raise self.raises
        return self.result


def test_executes_exactly_the_configured_argv(caplog: pytest.LogCaptureFixture) -> None:
    run, synced = FakeRun(), []
    shut = Shutdowner(ShutdownConfig(), run=run, sync=lambda: synced.append(True))
    with caplog.at_level(logging.INFO, logger="assistant.device.shutdown"):
        assert shut.execute("on battery, SoC 4.0 % <= 5 % for 60 s") is True
    (argv, kwargs), = run.calls
    assert argv == ["systemctl", "poweroff"]
    assert "shell" not in kwargs and kwargs["check"] is False and kwargs["timeout"] == 30.0
    assert synced == [True]
    assert "powering off: on battery, SoC 4.0 % <= 5 % for 60 s" in caplog.records[0].getMessage()
    assert caplog.records[0].levelno == logging.CRITICAL


def test_failures_are_logged_and_returned(caplog: pytest.LogCaptureFixture) -> None:
    denied = subprocess.CompletedProcess(["systemctl", "poweroff"], 1, "", "Access denied\n")
    cases: list[tuple[FakeRun, str]] = [
        (FakeRun(result=denied), "exited with 1: Access denied"),
        (FakeRun(raises=FileNotFoundError("systemctl")), "not found"),
        (FakeRun(raises=subprocess.TimeoutExpired(["systemctl"], 30)), "did not return"),
        (FakeRun(raises=PermissionError("denied")), "failed to run"),
    ]
    for run, message in cases:
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="assistant.device.shutdown"):
            assert Shutdowner(ShutdownConfig(), run=run, sync=lambda: None).execute("test") is False
        assert message in caplog.text


def test_real_commands() -> None:
    assert Shutdowner(ShutdownConfig(command=["/bin/true"]), sync=lambda: None).execute("test") is True
    assert Shutdowner(ShutdownConfig(command=["/bin/false"]), sync=lambda: None).execute("test") is False
    missing = ShutdownConfig(command=["/nonexistent/poweroff", "--now"])
    assert Shutdowner(missing, sync=lambda: None).execute("test") is False


def test_command_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="shutdown.command"):
        build(ShutdownConfig, {"command": "systemctl poweroff"}, "c.yaml", "shutdown.")
    with pytest.raises(ConfigError, match="non-empty list"):
        build(ShutdownConfig, {"command": []}, "c.yaml", "shutdown.")
    cfg = build(ShutdownConfig, {"retry_s": 20, "hold_s": 30}, "c.yaml", "shutdown.")
    assert cfg.retry_s == 20.0 and cfg.command == ["systemctl", "poweroff"]
    with pytest.raises(ConfigError, match=r"shutdown\.soc_pct.*moved.*battery\.empty_soc_pct"):
        build(ShutdownConfig, {"soc_pct": 8}, "c.yaml", "shutdown.")
