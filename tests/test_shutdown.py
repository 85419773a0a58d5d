"""Low-battery shutdown: the policy on scripted and simulated readings, and the power-off command."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

import pytest

from assistant.config import build
from assistant.device.device_config import ShutdownConfig
from assistant.device.shutdown import ShutdownDecision, ShutdownPolicy, Shutdowner, power_source
from assistant.errors import ConfigError
from assistant.messages import BatteryReading
from assistant.power.gauges.simulated import SimulatedPack

CFG = ShutdownConfig(soc_pct=5.0, cell_voltage_v=3.2, hold_s=60.0)


def reading(soc: float | None, volts: float, *, external: bool | None = False, current: float | None = None,
            charging: bool | None = None) -> BatteryReading:
    return BatteryReading(t_monotonic=0.0, voltage_v=volts, current_a=current, power_w=None, soc_pct=soc,
                          charging=charging, external_power=external, source="test")


def run_sequence(policy: ShutdownPolicy, readings: list[BatteryReading], step_s: float = 2.0,
                 start: float = 1000.0) -> list[ShutdownDecision]:
    return [policy.update(r, start + i * step_s) for i, r in enumerate(readings)]


def test_empty_on_battery_shuts_down_only_after_hold() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=2)
    decisions = run_sequence(policy, [reading(4.0, 7.2)] * 31)  # 0 .. 60 s
    assert [d.state for d in decisions[:30]] == ["pending"] * 30
    assert decisions[29].below_for_s == pytest.approx(58.0)
    assert decisions[30].state == "shutdown" and decisions[30].below_for_s == pytest.approx(60.0)
    assert "on battery" in decisions[30].reason and "SoC 4.0 % <= 5 %" in decisions[30].reason


def test_above_threshold_is_ok() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=2)
    decision = policy.update(reading(50.0, 7.6), 0.0)
    assert decision == ShutdownDecision("ok", "on battery, SoC 50.0 % > 5 %, cell 3.800 V > 3.2 V", 0.0)


def test_never_on_external_power() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=1)
    decisions = run_sequence(policy, [reading(0.0, 2.9, external=True)] * 100)
    assert {d.state for d in decisions} == {"ok"}
    assert decisions[-1].reason == "on external power"


def test_external_power_returning_resets_the_timer() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=1)
    low, plugged = reading(3.0, 3.3), reading(3.0, 3.3, external=True)
    decisions = run_sequence(policy, [low] * 26 + [plugged] + [low] * 30)  # 50 s low, plugged, 58 s low
    assert decisions[25].below_for_s == pytest.approx(50.0)
    assert decisions[26].state == "ok"
    assert {d.state for d in decisions[27:]} == {"pending"}
    assert decisions[-1].below_for_s == pytest.approx(58.0)


def test_flapping_reading_resets_the_timer() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=1)
    flap = [reading(4.0, 3.5), reading(6.0, 3.5)] * 40  # 160 s, never 60 s in a row
    decisions = run_sequence(policy, flap)
    assert {d.state for d in decisions} == {"pending", "ok"}
    assert max(d.below_for_s for d in decisions) == 0.0


def test_voltage_alone_triggers_per_cell() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=2)
    assert policy.update(reading(None, 6.5), 0.0).state == "ok"  # 3.25 V per cell
    assert policy.update(reading(None, 6.3), 1.0).state == "pending"  # 3.15 V per cell
    last = policy.update(reading(None, 6.3), 61.0)
    assert last.state == "shutdown" and "cell 3.150 V <= 3.2 V" in last.reason
    single = ShutdownPolicy(CFG, cells_in_series=1)
    assert single.update(reading(None, 6.3), 0.0).state == "ok"  # the same volts on one cell are fine


def test_either_threshold_is_enough_on_battery() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=1)
    assert policy.update(reading(40.0, 3.1), 0.0).state == "pending"  # voltage sag, SoC estimate high
    policy.reset()
    assert policy.update(reading(2.0, 3.7), 0.0).state == "pending"  # gas gauge says empty


def test_unknown_power_source_needs_every_indicator() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=1)
    unknown = dict(external=None, current=None, charging=None)
    assert policy.update(reading(40.0, 3.1, **unknown), 0.0).state == "ok"
    assert policy.update(reading(2.0, 3.7, **unknown), 1.0).state == "ok"
    both = policy.update(reading(2.0, 3.1, **unknown), 2.0)
    assert both.state == "pending" and both.reason.startswith("power source unknown")
    assert policy.update(reading(None, 3.1, **unknown), 62.0).state == "shutdown"  # voltage is all it has


def test_power_source_inference() -> None:
    assert power_source(reading(50, 3.7, external=None, current=-0.8)) == "battery"
    assert power_source(reading(50, 3.7, external=None, current=0.4)) == "external"
    assert power_source(reading(50, 3.7, external=None, charging=True)) == "external"
    assert power_source(reading(50, 3.7, external=None, current=float("nan"))) == "unknown"
    assert power_source(reading(50, 3.7, external=False, current=0.4)) == "battery"  # the PLD line decides
    policy = ShutdownPolicy(CFG, cells_in_series=1)
    charging = [reading(1.0, 3.0, external=None, current=0.5)] * 40
    assert {d.state for d in run_sequence(policy, charging)} == {"ok"}


def test_a_long_gap_between_readings_restarts_the_timer() -> None:
    policy = ShutdownPolicy(CFG, cells_in_series=1)
    assert policy.update(reading(3.0, 3.3), 0.0).state == "pending"
    after_gap = policy.update(reading(3.0, 3.3), 200.0)
    assert after_gap.state == "pending" and after_gap.below_for_s == 0.0
    assert policy.update(reading(3.0, 3.3), 230.0).state == "pending"
    assert policy.update(reading(3.0, 3.3), 260.0).state == "shutdown"


def test_disabled_never_fires() -> None:
    policy = ShutdownPolicy(ShutdownConfig(enabled=False), cells_in_series=1)
    assert {d.state for d in run_sequence(policy, [reading(0.0, 2.8)] * 100)} == {"ok"}
    with pytest.raises(ValueError, match="cells_in_series"):
        ShutdownPolicy(CFG, cells_in_series=0)


def test_simulated_pack_drains_into_a_shutdown() -> None:
    now = [0.0]
    pack = SimulatedPack(capacity_wh=19.24, start_soc_pct=6.0, cells_in_series=2, power_profile=lambda t: 5.0,
                         clock=lambda: now[0], cpu_time_fn=lambda: 0.0)
    policy = ShutdownPolicy(CFG, cells_in_series=2)
    decisions: list[tuple[float, ShutdownDecision]] = []
    while now[0] < 600.0:
        now[0] += 2.0
        r = pack.read()
        decision = policy.update(r, r.t_monotonic)
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
    assert policy.update(pack.read(), now[0]).state == "ok"


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
    cfg = build(ShutdownConfig, {"soc_pct": 8, "hold_s": 30}, "c.yaml", "shutdown.")
    assert cfg.soc_pct == 8.0 and cfg.command == ["systemctl", "poweroff"]
