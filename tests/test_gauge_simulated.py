"""Tests of the simulated pack: energy bookkeeping, time scaling, the CPU-driven load model, charging."""

from __future__ import annotations

import itertools
import logging
import time

import pytest

from assistant.errors import ConfigError
from assistant.power.gauges.ocv import LI_ION_REST, cell_voltage_from_soc
from assistant.sim.pack import SimulatedPack


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _profile(t: float) -> float:
    """5 W for the first half hour, 8 W after it (board power, W)."""
    return 5.0 if t < 1800.0 else 8.0


def test_known_profile_drains_the_expected_energy() -> None:
    clock = FakeClock()
    pack = SimulatedPack(
        capacity_wh=19.24,
        start_soc_pct=100.0,
        power_profile=_profile,
        time_scale=60.0,
        clock=clock,
        boost_efficiency=0.9,
    )
    readings = [pack.read()]
    wall = 0.0
    steps = [0.25, 0.5, 0.35]
    i = 0
    while wall < 60.0 - 1e-9:  # 60 s of wall time x 60 = one simulated hour
        dt = min(steps[i % 3], 60.0 - wall)
        clock.now += dt
        wall += dt
        i += 1
        readings.append(pack.read())
    expected_wh = (5.0 * 1800 + 8.0 * 1800) / 3600 / 0.9
    assert pack.sim_time_s == pytest.approx(3600.0)
    assert pack.energy_drawn_wh == pytest.approx(expected_wh, rel=0.01)
    final_soc = readings[-1].soc_pct
    assert final_soc is not None
    assert (100.0 - final_soc) / 100 * 19.24 == pytest.approx(expected_wh, rel=0.01)
    # what an energy meter integrating the reported power would find (trapezoid over readings)
    metered_wh = 0.0
    for a, b in itertools.pairwise(readings):
        assert a.power_w is not None and b.power_w is not None
        metered_wh += -(a.power_w + b.power_w) / 2 * (b.t_monotonic - a.t_monotonic) * 60.0 / 3600
    assert metered_wh == pytest.approx(expected_wh, rel=0.01)


def test_time_scale_multiplies_the_drain() -> None:
    drained = []
    for scale in (1.0, 120.0):
        clock = FakeClock()
        pack = SimulatedPack(power_profile=lambda t: 6.0, time_scale=scale, clock=clock)
        clock.now += 30.0
        pack.step()
        drained.append(pack.energy_drawn_wh)
    assert drained[0] == pytest.approx(6.0 / 0.9 * 30 / 3600)
    assert drained[1] / drained[0] == pytest.approx(120.0)


def test_a_full_discharge_takes_minutes_and_cuts_out(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    pack = SimulatedPack(power_profile=lambda t: 9.7, time_scale=600.0, clock=clock)
    hours = 19.24 / (9.7 / 0.9)
    with caplog.at_level(logging.WARNING):
        for _ in range(int(hours * 3600 / 600 / 5) + 5):  # a read every 5 wall seconds
            clock.now += 5.0
            reading = pack.read()
    assert pack.soc_pct == 0.0 and reading.soc_pct == 0.0
    assert reading.current_a == 0.0 and reading.power_w == 0.0
    assert pack.energy_drawn_wh == pytest.approx(19.24)
    assert "simulated pack is empty" in caplog.text
    assert hours * 3600 / 600 < 12 * 60  # under twelve wall minutes


def test_voltage_sags_by_ir_and_power_is_v_times_i() -> None:
    clock = FakeClock()
    pack = SimulatedPack(
        start_soc_pct=50.0, power_profile=lambda t: 9.0, clock=clock, internal_resistance_ohm=0.2, cells_in_series=2
    )
    reading = pack.read()
    ocv = 2 * cell_voltage_from_soc(LI_ION_REST, 50.0)
    assert reading.current_a is not None and reading.current_a < 0
    assert reading.voltage_v == pytest.approx(ocv + reading.current_a * 0.2)
    assert reading.power_w == pytest.approx(-9.0 / 0.9)
    assert reading.source == "simulated" and reading.soc_estimated is False
    assert reading.external_power is False and reading.charging is False


def test_cpu_time_drives_the_load_deterministically() -> None:
    clock = FakeClock()
    cpu = [0.0]
    pack = SimulatedPack(clock=clock, cpu_time_fn=lambda: cpu[0], idle_w=2.8, w_per_busy_core=1.7)
    clock.now += 1.0
    reading = pack.read()
    assert pack.busy_cores == 0.0 and reading.power_w == pytest.approx(-2.8 / 0.9)
    clock.now += 1.0
    cpu[0] += 2.0  # two cores busy for that second
    reading = pack.read()
    assert pack.busy_cores == pytest.approx(2.0) and reading.power_w == pytest.approx(-(2.8 + 3.4) / 0.9)
    clock.now += 1.0
    cpu[0] += 9.0  # more than the Pi has: capped at 4 cores = the 9.6-9.7 W stress figure
    pack.read()
    assert pack.busy_cores == 4.0 and pack.load_w == pytest.approx(2.8 + 4 * 1.7)


def test_cpu_driven_mode_rises_when_this_process_burns_cpu() -> None:
    pack = SimulatedPack()  # real clock, real time.process_time()
    time.sleep(0.3)
    idle = pack.read()
    assert pack.busy_cores < 0.2
    end = time.process_time() + 0.3  # burn 0.3 s of CPU, however long the machine takes to give it
    x = 0
    while time.process_time() < end:
        x += 1
    busy = pack.read()
    assert idle.power_w is not None and busy.power_w is not None
    assert pack.busy_cores > 0.25  # one busy thread on a shared machine: well above idle
    assert -busy.power_w > -idle.power_w + 0.25 * 1.7 / 0.9


def test_charging_on_external_power_with_taper() -> None:
    clock = FakeClock()
    pack = SimulatedPack(start_soc_pct=50.0, clock=clock, power_profile=lambda t: 5.0, charge_w=10.0)
    pack.set_external_power(True)
    clock.now += 360.0
    reading = pack.read()
    assert reading.charging is True and reading.external_power is True
    assert reading.current_a is not None and reading.current_a > 0
    assert reading.power_w == pytest.approx(10.0)
    assert pack.energy_charged_wh == pytest.approx(1.0)
    assert pack.energy_drawn_wh == 0.0
    clock.now += 3600.0 * 3
    pack.step()
    assert pack.soc_pct == pytest.approx(100.0, abs=0.5)
    assert pack.read().power_w == pytest.approx(0.0, abs=0.6)  # tapered off near full
    pack.set_external_power(False)
    clock.now += 10.0
    assert pack.read().power_w == pytest.approx(-5.0 / 0.9)


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="time_scale"):
        SimulatedPack(time_scale=0.0)
    with pytest.raises(ConfigError, match="start_soc_pct"):
        SimulatedPack(start_soc_pct=120.0)
