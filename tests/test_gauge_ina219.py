"""Tests of the INA219 driver against the register-level INA219 emulation."""

from __future__ import annotations

import logging

import pytest

from assistant.errors import BatteryReadError, ConfigError
from assistant.messages import BatteryReading
from assistant.power.gauges.base import PlausibilityLimits, swap16
from assistant.sim.chips.bus import EmulatedBus
from assistant.sim.chips.ina219 import (
    CONFIG_POR,
    REG_BUS,
    REG_CALIBRATION,
    REG_CONFIG,
    REG_CURRENT,
    REG_POWER,
    REG_SHUNT,
    EmulatedIna219,
)
from assistant.power.gauges.ina219 import Ina219Gauge, calibration_for, config_for

BUS_LSB = 0.004
SHUNT_LSB = 10e-6


def _board_b(
    voltage: float = 7.62, current: float = -0.873, **kw: object
) -> tuple[EmulatedIna219, Ina219Gauge, list[float]]:
    chip = EmulatedIna219(shunt_ohms=0.1, pack_voltage_v=voltage, current_a=current)
    sleeps: list[float] = []
    gauge = Ina219Gauge.for_board("waveshare_b", bus=EmulatedBus({0x42: chip}), sleep=sleeps.append, **kw)
    return chip, gauge, sleeps


def _board_cd(voltage: float = 3.951, current: float = 1.2345, **kw: object) -> tuple[EmulatedIna219, Ina219Gauge]:
    chip = EmulatedIna219(shunt_ohms=0.01, pack_voltage_v=voltage, current_a=current)
    gauge = Ina219Gauge.for_board("waveshare_cd", bus=EmulatedBus({0x43: chip}), sleep=lambda s: None, **kw)
    return chip, gauge


def test_vendor_profiles_give_the_vendor_register_words() -> None:
    assert calibration_for(0.1, 100e-6) == 4096
    assert calibration_for(0.01, 152.4e-6) == 26876  # the formula; the vendor demo hard-codes 26868
    assert config_for(shunt_ohms=0.1, max_current_a=3.2, cells_in_series=2) == 0x3EEF
    assert config_for(shunt_ohms=0.01, max_current_a=5.0, cells_in_series=1) == 0x0EEF
    with pytest.raises(ConfigError, match="calibration"):
        calibration_for(0.1, 1e-9)


def test_board_b_reads_pack_within_one_lsb_and_writes_calibration_msb_first() -> None:
    chip, gauge, _ = _board_b()
    reading = gauge.read()
    assert reading.voltage_v == pytest.approx(7.62, abs=BUS_LSB)
    assert reading.current_a == pytest.approx(-0.873, abs=1e-4 + SHUNT_LSB / 0.1)
    assert reading.power_w is not None and reading.current_a is not None
    assert reading.power_w == pytest.approx(reading.voltage_v * reading.current_a)
    assert reading.power_w < 0
    assert reading.source == "ina219@0x42"
    assert reading.soc_estimated and not reading.power_estimated
    assert chip.config == 0x3EEF
    assert chip.calibration == 4096
    # on the wire: register pointer, then MSB, then LSB
    assert (REG_CALIBRATION, bytes([0x10, 0x00])) in chip.writes
    assert (REG_CONFIG, bytes([0x3E, 0xEF])) in chip.writes


def test_board_cd_reads_with_the_computed_calibration() -> None:
    chip, gauge = _board_cd()
    reading = gauge.read()
    assert chip.calibration == 26876
    assert (REG_CALIBRATION, bytes([0x68, 0xFC])) in chip.writes
    assert chip.config == 0x0EEF
    assert reading.voltage_v == pytest.approx(3.951, abs=BUS_LSB)
    assert reading.current_a == pytest.approx(1.2345, abs=gauge.current_lsb_a + SHUNT_LSB / 0.01)
    assert reading.charging is True and reading.external_power is True
    assert reading.source == "ina219@0x43"


def test_byte_order_is_proven_by_asymmetric_register_words() -> None:
    chip, gauge, _ = _board_b(voltage=7.62, current=-0.873)
    gauge.read()
    bus = EmulatedBus({0x42: chip})
    expected_bus = (round(7.62 / BUS_LSB) << 3) | 0x2  # 0x3B8A: value, CNVR set
    smbus_word = bus.read_word_data(0x42, REG_BUS)
    assert smbus_word == swap16(expected_bus) == 0x8A3B
    assert smbus_word != expected_bus
    assert (smbus_word >> 3) * BUS_LSB == pytest.approx(17.692)  # what a driver forgetting the swap would see
    shunt = swap16(bus.read_word_data(0x42, REG_SHUNT))
    assert shunt == (-8730) & 0xFFFF  # -87.30 mV across 0.1 ohm
    current = swap16(bus.read_word_data(0x42, REG_CURRENT))
    assert current == (-8730) & 0xFFFF  # Cal 4096: CURRENT = SHUNT * 4096 / 4096


def test_chip_arithmetic_power_register_and_cnvr() -> None:
    t = [0.0]
    chip = EmulatedIna219(shunt_ohms=0.1, pack_voltage_v=7.62, current_a=0.873, clock=lambda: t[0])
    bus = EmulatedBus({0x42: chip})
    Ina219Gauge.for_board("waveshare_b", bus=bus).read()
    assert chip.conversion_time_s == pytest.approx(2 * 17.024e-3)  # shunt + bus, 32 samples each
    assert swap16(bus.read_word_data(0x42, REG_BUS)) & 0x2  # CNVR after a conversion
    power = swap16(bus.read_word_data(0x42, REG_POWER))
    assert power == 8730 * 1905 // 5000
    assert power * 2e-3 == pytest.approx(7.62 * 0.873, rel=1e-3)  # Power_LSB = 20 x Current_LSB
    assert not chip.conversion_ready  # reading POWER clears CNVR
    bus.read_word_data(0x42, REG_SHUNT)
    assert not chip.conversion_ready  # still inside the same conversion period
    t[0] += 0.035
    bus.read_word_data(0x42, REG_SHUNT)
    assert chip.conversion_ready  # a new conversion has completed
    bus.write_word_data(0x42, REG_CONFIG, swap16(0x3EEF))
    assert not chip.conversion_ready  # writing CONFIG clears it too


def test_reads_within_one_conversion_period_see_one_sample() -> None:
    t = [0.0]
    chip = EmulatedIna219(shunt_ohms=0.1, pack_voltage_v=7.5, current_a=-1.0, clock=lambda: t[0])
    samples = iter([-1.0, -2.0])
    chip.state_source = lambda: _pack_reading(next(samples))
    gauge = Ina219Gauge.for_board("waveshare_b", bus=EmulatedBus({0x42: chip}))
    assert gauge.read().current_a == pytest.approx(-1.0, abs=2e-4)  # SHUNT and CURRENT from one sample
    t[0] += 0.035
    assert gauge.read().current_a == pytest.approx(-2.0, abs=2e-4)


def _pack_reading(current: float) -> BatteryReading:
    return BatteryReading(
        t_monotonic=0.0,
        voltage_v=7.5,
        current_a=current,
        power_w=7.5 * current,
        soc_pct=50.0,
        charging=False,
        external_power=False,
        source="simulated",
    )


def test_calibration_bit0_reads_zero_and_reset_bit_restores_defaults() -> None:
    chip = EmulatedIna219()
    bus = EmulatedBus({0x42: chip})
    bus.write_word_data(0x42, REG_CALIBRATION, swap16(0x1235))
    assert swap16(bus.read_word_data(0x42, REG_CALIBRATION)) == 0x1234
    bus.write_word_data(0x42, REG_CONFIG, swap16(0x8000))
    assert chip.config == CONFIG_POR and chip.calibration == 0 and chip.resets == 1


def test_power_down_mode_stops_conversions() -> None:
    chip = EmulatedIna219(pack_voltage_v=7.0)
    bus = EmulatedBus({0x42: chip})
    first = swap16(bus.read_word_data(0x42, REG_BUS)) >> 3
    bus.write_word_data(0x42, REG_CONFIG, swap16(0x3EE8))  # MODE 0: power-down
    chip.set_state(pack_voltage_v=8.0)
    assert swap16(bus.read_word_data(0x42, REG_BUS)) >> 3 == first


def test_calibration_is_rewritten_before_every_reading() -> None:
    chip, gauge, _ = _board_b()
    for _ in range(3):
        gauge.read()
    assert sum(1 for reg, _ in chip.writes if reg == REG_CALIBRATION) == 3
    assert sum(1 for reg, _ in chip.writes if reg == REG_CONFIG) == 1


def test_a_brownout_reset_is_noticed_and_repaired(caplog: pytest.LogCaptureFixture) -> None:
    chip, gauge, _ = _board_b(voltage=7.9, current=-1.5)
    gauge.read()
    chip.brownout()
    with caplog.at_level(logging.INFO):
        reading = gauge.read()
    assert chip.config == 0x3EEF and chip.calibration == 4096
    assert reading.current_a == pytest.approx(-1.5, abs=2e-4)
    assert "was reset" in caplog.text


def test_current_sign_sets_charging_and_external_power_with_threshold() -> None:
    chip, gauge, _ = _board_b()
    cases = [(-0.6, False, False), (0.6, True, True), (0.02, False, True), (-0.02, False, True)]
    for current, charging, external in cases:
        chip.set_state(current_a=current)
        reading = gauge.read()
        assert (reading.charging, reading.external_power) == (charging, external), current


def test_soc_is_estimated_from_resting_voltage_per_cell() -> None:
    chip, gauge, _ = _board_b(voltage=2 * 3.82, current=0.0)
    assert gauge.read().soc_pct == pytest.approx(50.0, abs=1.0)
    # under load the terminal sags by I x R; the estimate adds it back (R = 0.05 ohm x 2 cells)
    chip.set_state(pack_voltage_v=2 * 3.82 - 1.0 * 0.1, current_a=-1.0)
    assert gauge.read().soc_pct == pytest.approx(50.0, abs=1.0)


def test_i2c_errors_are_retried_with_backoff() -> None:
    chip, gauge, sleeps = _board_b()
    gauge.read()
    chip.fail_next_reads(2)
    assert gauge.read().voltage_v == pytest.approx(7.62, abs=BUS_LSB)
    assert sleeps == pytest.approx([0.05, 0.1])


def test_persistent_i2c_errors_end_in_battery_read_error() -> None:
    chip, gauge, sleeps = _board_b(retries=3)
    chip.fail_next_reads(50)
    with pytest.raises(BatteryReadError, match=r"ina219@0x42: read failed after 4 attempts"):
        gauge.read()
    assert len(sleeps) == 3


def test_failed_config_write_is_retried() -> None:
    chip, gauge, _ = _board_b()
    chip.fail_next_writes(1)
    assert gauge.read().voltage_v == pytest.approx(7.62, abs=BUS_LSB)
    assert chip.config == 0x3EEF


def test_garbage_bus_voltage_is_rejected_naming_the_value() -> None:
    chip, gauge, _ = _board_b()
    chip.inject_garbage(REG_BUS, 0xFFF8)
    with pytest.raises(BatteryReadError, match=r"voltage 32\.764 V outside 5\.00\.\.8\.80 V"):
        gauge.read()


def test_garbage_current_is_a_glitch_retried_then_refused() -> None:
    chip, gauge, _ = _board_b(retries=2)
    chip.inject_garbage(REG_CURRENT, 0x1234, count=1)
    assert gauge.read().current_a == pytest.approx(-0.873, abs=2e-4)
    chip.inject_garbage(REG_CURRENT, 0x1234, count=3)
    with pytest.raises(BatteryReadError, match="disagrees with SHUNT_VOLTAGE"):
        gauge.read()


def test_math_overflow_is_refused() -> None:
    _, gauge = _board_cd(current=6.0)  # 60 mV fits the 80 mV range, CURRENT does not fit 16 bits
    with pytest.raises(BatteryReadError, match="overflow"):
        gauge.read()


def test_current_beyond_limit_is_rejected() -> None:
    _, gauge, _ = _board_b(current=-2.5, limits=PlausibilityLimits(max_current_a=2.0))
    with pytest.raises(BatteryReadError, match=r"current -2\.50\d A beyond the board's limit of 2\.00 A"):
        gauge.read()


def test_attached_state_source_feeds_the_chip() -> None:
    from assistant.sim.pack import SimulatedPack

    t = [0.0]
    pack = SimulatedPack(start_soc_pct=60.0, power_profile=lambda s: 6.0, clock=lambda: t[0])
    chip = EmulatedIna219(shunt_ohms=0.1)
    chip.state_source = pack.read
    gauge = Ina219Gauge.for_board("waveshare_b", bus=EmulatedBus({0x42: chip}))
    t[0] = 10.0
    truth = pack.read()
    reading = gauge.read()
    assert reading.voltage_v == pytest.approx(truth.voltage_v, abs=BUS_LSB)
    assert reading.current_a == pytest.approx(truth.current_a, abs=2e-4)


def test_no_device_gives_a_clear_error() -> None:
    gauge = Ina219Gauge(bus_number=97, retries=0)
    with pytest.raises(BatteryReadError, match="/dev/i2c-97"):
        gauge.read()
    gauge.close()


def _drain_board_b(load_a: float, empty: object) -> tuple[str, float, float]:
    """A 2S 18650 pack on a UPS HAT (B) drained at ``load_a`` until the safe shutdown or the brown-out.

    Returns how it ended (``shutdown`` or ``brownout``), the pack voltage then, and the seconds of
    drain left before the brown-out at that moment (0 at a brown-out)."""
    from assistant.device.device_config import ShutdownConfig
    from assistant.device.shutdown import ShutdownPolicy
    from assistant.sim.chips.ina219 import BOARD_B_BROWNOUT_V
    from assistant.sim.pack import SimulatedPack

    now = [0.0]
    board_w = load_a * 7.1 * 0.9  # what the Pi takes so that the pack gives about load_a
    pack = SimulatedPack(capacity_wh=19.24, start_soc_pct=16.0, cells_in_series=2, power_profile=lambda t: board_w,
                         clock=lambda: now[0], cpu_time_fn=lambda: 0.0)
    chip = EmulatedIna219(shunt_ohms=0.1, clock=lambda: now[0], dies_below_v=BOARD_B_BROWNOUT_V)
    chip.state_source = pack.read
    gauge = Ina219Gauge.for_board("waveshare_b", bus=EmulatedBus({0x42: chip}), clock=lambda: now[0],
                                  sleep=lambda s: None, retries=0)
    policy = ShutdownPolicy(ShutdownConfig(hold_s=60.0), empty=gauge.empty_point if empty is None else empty)  # type: ignore[arg-type]
    while now[0] < 20_000:
        now[0] += 2.0
        try:
            reading = gauge.read()
        except BatteryReadError:
            return "brownout", pack.read().voltage_v, 0.0
        if policy.update(reading).state == "shutdown":
            v = reading.voltage_v
            left = 0.0
            probe = SimulatedPack(capacity_wh=19.24, start_soc_pct=pack.soc_pct, cells_in_series=2,
                                  power_profile=lambda t: board_w, clock=lambda: left, cpu_time_fn=lambda: 0.0)
            while probe.read().voltage_v >= BOARD_B_BROWNOUT_V and left < 20_000:
                left += 1.0
            return "shutdown", v, left
    raise AssertionError("the pack neither shut down nor browned out")


@pytest.mark.parametrize("load_a", [0.4, 0.8, 1.2])
def test_board_b_powers_off_before_its_brownout(load_a: float) -> None:
    """A Pi 5 on a UPS HAT (B) dies near 6.96 V under load, where the compensated SoC still reads 6-7 %
    and the cells 3.48 V: with 5 % / 3.2 V the pack cut out mid-write. The board's own empty point
    powers off in time, with minutes to spare for the hold and the halt."""
    from assistant.power.cutoff import EmptyPoint

    ended, volts, left_s = _drain_board_b(load_a, None)
    assert ended == "shutdown" and volts > 6.96 and left_s > 120.0
    old, _, _ = _drain_board_b(load_a, EmptyPoint(5.0, 3.2, "the old one-size default"))
    assert old == "brownout"
