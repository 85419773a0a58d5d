"""The energy meter: trapezoid integration, gaps, gauge errors, estimated power, per-turn attribution."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import pytest

from assistant.errors import BatteryReadError
from assistant.messages import BatteryReading
from assistant.power.energy import EnergyMeter, integrate
from assistant.sim.pack import SimulatedPack

PACK_J = 0.85 * 19.24 * 3600


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class ScriptedGauge:
    """Reports the discharge power ``profile(t)`` (W) at the clock's time, the way an INA219 board would."""

    def __init__(self, clock: Clock, profile: Callable[[float], float], *, mode: str = "measured",
                 fail_when: Callable[[float], bool] = lambda t: False, soc: Callable[[float], float] | None = None):
        self.clock = clock
        self.profile = profile
        self.mode = mode
        self.fail_when = fail_when
        self.soc = soc
        self.reads = 0
        self.name = "scripted"

    def read(self) -> BatteryReading:
        self.reads += 1
        t = self.clock()
        if self.fail_when(t):
            raise BatteryReadError("scripted gauge: I2C error 121")
        p = self.profile(t)
        v = 7.4
        measured = self.mode == "measured"
        return BatteryReading(
            t_monotonic=t, voltage_v=v, current_a=-p / v if measured else None,
            power_w=-p if self.mode in ("measured", "gauge-model") else None,
            soc_pct=self.soc(t) if self.soc else 50.0, charging=False, external_power=False,
            source=self.name, power_estimated=self.mode == "gauge-model")

    def close(self) -> None:
        pass


def drive(meter: EnergyMeter, clock: Clock, until: float, *, step: float = 0.1,
          skip: Callable[[float], bool] = lambda t: False) -> None:
    """Advance the clock in exact steps from its current time, polling the meter at each one."""
    start = clock.t
    n = round((until - start) / step)
    for i in range(n + 1):
        clock.t = start + i * step
        if not skip(clock.t):
            meter.poll()


def make(profile: Callable[[float], float], **kw: object) -> tuple[EnergyMeter, Clock, ScriptedGauge]:
    clock = Clock()
    gauge = ScriptedGauge(clock, profile, **kw)  # type: ignore[arg-type]
    return EnergyMeter(gauge, period_s=0.1, usable_energy_j=PACK_J, clock=clock), clock, gauge


def test_integrate_pure() -> None:
    assert integrate([]) == 0.0
    assert integrate([(0.0, 5.0)]) == 0.0
    assert integrate([(0.0, 5.0), (10.0, 5.0)]) == pytest.approx(50.0)
    assert integrate([(t / 10, t / 10) for t in range(101)]) == pytest.approx(50.0)  # ramp 0..10 W over 10 s
    assert integrate([(0.0, 2.0), (1.0, 2.0), (1.0, 99.0), (0.5, 7.0), (2.0, 4.0)]) == pytest.approx(2.0 + 0.0 + 0.0 + 8.25)


@pytest.mark.parametrize("profile,seconds,expected", [
    (lambda t: 4.0, 60.0, 240.0),                                  # constant
    (lambda t: 2.0 + 0.2 * (t - 1000.0), 30.0, 60.0 + 90.0),       # ramp 2 -> 8 W
    (lambda t: 3.0 if t < 1010.0 else 9.0, 20.0, 30.0 + 90.0),     # step at 10 s
    (lambda t: 5.0 + 2.0 * math.sin(t - 1000.0), 2 * math.pi * 5, 5.0 * 2 * math.pi * 5),  # ripple
])
def test_known_profiles_within_half_a_percent(profile: Callable[[float], float], seconds: float,
                                              expected: float) -> None:
    meter, clock, _ = make(profile)
    drive(meter, clock, clock.t + seconds)
    assert meter.total_j == pytest.approx(expected, rel=0.005)
    assert meter.gaps == 0 and meter.read_errors == 0 and not meter.estimated


def test_marks_between_samples_are_interpolated() -> None:
    meter, clock, _ = make(lambda t: t - 1000.0)  # P = t W: energy from a to b is (b^2 - a^2) / 2
    drive(meter, clock, 1010.0)
    clock.t = 1010.0
    end = meter.mark()
    marks = {}
    for rel in (2.05, 7.03):
        clock.t = 1000.0 + rel
        marks[rel] = meter.mark()
    span = meter.between(marks[2.05], marks[7.03])
    assert span.joules == pytest.approx((7.03**2 - 2.05**2) / 2, rel=1e-6)
    assert span.seconds == pytest.approx(4.98) and span.measured
    assert meter.between(marks[2.05], end).joules == pytest.approx((10**2 - 2.05**2) / 2, rel=1e-6)


def test_a_mark_after_the_last_sample_holds_the_last_power() -> None:
    meter, clock, _ = make(lambda t: 5.0)
    drive(meter, clock, 1002.0)
    a = meter.mark()
    clock.t += 0.07
    b = meter.mark()
    assert meter.between(a, b).joules == pytest.approx(0.35)
    assert b.measured


def test_turn_and_idle_attribution() -> None:
    meter, clock, _ = make(lambda t: 6.0 if 1010.0 <= t < 1020.0 else 3.0)
    drive(meter, clock, 1010.0)
    start = meter.mark()
    drive(meter, clock, 1020.0)
    end = meter.mark()
    drive(meter, clock, 1030.0)
    span = meter.record_turn(start, end)
    assert span.joules == pytest.approx(60.0, rel=0.01) and span.measured
    assert span.mean_w == pytest.approx(6.0, rel=0.01)
    assert meter.total_j == pytest.approx(120.0, rel=0.005)
    assert meter.idle_j == pytest.approx(60.0, rel=0.01)


def test_gap_is_logged_held_and_flagged(caplog: pytest.LogCaptureFixture) -> None:
    meter, clock, _ = make(lambda t: 4.0)
    with caplog.at_level(logging.WARNING, logger="assistant.power.energy"):
        drive(meter, clock, 1010.0, skip=lambda t: 1004.0 < t < 1007.0)
    assert meter.gaps == 1
    assert "between samples" in caplog.text
    assert meter.total_j == pytest.approx(40.0, rel=0.005)  # held at the previous 4 W
    clock.t = 1001.0
    a = meter.mark()
    clock.t = 1003.0
    b = meter.mark()
    clock.t = 1009.0
    c = meter.mark()
    assert meter.between(a, b).measured
    gap_span = meter.between(b, c)
    assert not gap_span.measured and gap_span.joules == pytest.approx(24.0, rel=0.01)


def test_gauge_errors_are_counted_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    meter, clock, gauge = make(lambda t: 5.0, fail_when=lambda t: 1002.0 < t < 1003.05)
    with caplog.at_level(logging.WARNING, logger="assistant.power.energy"):
        drive(meter, clock, 1003.0)
        last = meter.last_reading()
        assert last is not None and last.t_monotonic == pytest.approx(1002.0)
        assert meter.reading_age_s() == pytest.approx(1.0)
        drive(meter, clock, 1005.0)
    assert meter.read_errors == 11  # 1002.1 .. 1003.0, and 1003.0 polled again by the second drive
    assert caplog.text.count("gauge read failed") == 1  # once per streak
    assert meter.gaps == 1  # the outage ends in a held interval
    assert meter.total_j == pytest.approx(25.0, rel=0.005)


def test_a_driver_bug_does_not_kill_the_meter() -> None:
    meter, clock, gauge = make(lambda t: 1.0 / (t - 1001.0))  # ZeroDivisionError at t = 1001
    drive(meter, clock, 1000.5)
    clock.t = 1001.0
    meter.poll()
    assert meter.read_errors == 1


@pytest.mark.parametrize("mode", ["model", "gauge-model"])
def test_estimated_power_is_flagged(mode: str) -> None:
    clock = Clock()
    gauge = ScriptedGauge(clock, lambda t: 3.0, mode="gauge-model" if mode == "gauge-model" else "none")
    meter = EnergyMeter(gauge, usable_energy_j=PACK_J, clock=clock,
                        power_model=(lambda: 3.0) if mode == "model" else None)
    a = meter.mark()
    drive(meter, clock, 1010.0)
    b = meter.mark()
    span = meter.between(a, b)
    assert span.joules == pytest.approx(30.0, rel=0.005)
    assert not span.measured and not b.measured and meter.estimated


def test_soc_only_gauge_counts_soc_drops() -> None:
    # a 1 % drop every 10 s, no current or power at all
    meter, clock, _ = make(lambda t: 0.0, mode="none", soc=lambda t: 80.0 - math.floor((t - 1000.0) / 10.0))
    a = meter.mark()
    drive(meter, clock, 1030.0)
    span = meter.between(a, meter.mark())
    assert span.joules == pytest.approx(3 * 0.01 * PACK_J, rel=1e-6)
    assert not span.measured


def test_charging_draws_nothing_and_cached_readings_are_ignored() -> None:
    meter, clock, gauge = make(lambda t: -10.0)  # 10 W flowing into the pack
    drive(meter, clock, 1005.0)
    assert meter.total_j == 0.0
    meter2, clock2, _ = make(lambda t: 5.0)
    drive(meter2, clock2, 1001.0)
    before = meter2.total_j
    meter2.poll()  # same timestamp again
    assert meter2.total_j == before


def test_matches_the_simulated_pack() -> None:
    clock = Clock()
    pack = SimulatedPack(start_soc_pct=90.0, clock=clock, power_profile=lambda t: 3.0 + 0.1 * t)
    meter = EnergyMeter(pack, usable_energy_j=PACK_J, clock=clock)
    drive(meter, clock, clock.t + 60.0)
    truth_j = pack.energy_drawn_wh * 3600.0
    assert truth_j > 0 and meter.total_j == pytest.approx(truth_j, rel=0.005)


def test_thread_samples_at_its_period_without_hot_polling() -> None:
    gauge = ScriptedGauge(time.monotonic, lambda t: 5.0)  # type: ignore[arg-type]
    meter = EnergyMeter(gauge, period_s=0.05, usable_energy_j=PACK_J)
    t0 = time.monotonic()
    a = meter.mark()
    meter.start()
    meter.start()  # idempotent
    time.sleep(0.5)
    b = meter.mark()
    meter.stop()
    elapsed = time.monotonic() - t0
    assert 5 <= gauge.reads <= elapsed / 0.05 + 2
    last = meter.last_reading()
    assert last is not None
    span = meter.between(a, b)
    assert span.joules == pytest.approx(5.0 * span.seconds, rel=0.2)  # the first sample came after mark a
    reads = gauge.reads
    time.sleep(0.15)
    assert gauge.reads == reads  # stopped
