"""Tests of the MAX1704x driver against the register-level fuel-gauge emulation and gpiozero mock pins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from assistant.errors import BatteryReadError, ConfigError
from assistant.power.gauges.base import swap16
from assistant.sim.chips.bus import EmulatedBus
from assistant.sim.chips.max1704x import (
    POWER_ON_RESET,
    QUICK_START,
    REG_CMD,
    REG_CRATE,
    REG_MODE,
    REG_SOC,
    REG_VCELL,
    REG_VERSION,
    EmulatedMax1704x,
)
from assistant.power.gauges.max1704x import Max1704xGauge

VCELL_LSB = 78.125e-6


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.reset()


def _gauge(chip: EmulatedMax1704x, **kw: object) -> Max1704xGauge:
    kw.setdefault("pld_pin", None)
    return Max1704xGauge(bus=EmulatedBus({0x36: chip}), sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def test_vcell_and_soc_decode_within_one_lsb() -> None:
    chip = EmulatedMax1704x(cell_voltage_v=3.9123, soc_pct=71.3)
    reading = _gauge(chip).read()
    assert reading.voltage_v == pytest.approx(3.9123, abs=VCELL_LSB)
    assert reading.soc_pct == pytest.approx(71.3, abs=1 / 256)
    assert reading.current_a is None
    assert reading.source == "max1704x@0x36"
    assert not reading.soc_estimated


def test_registers_are_big_endian_on_the_wire() -> None:
    chip = EmulatedMax1704x(cell_voltage_v=3.9123, soc_pct=71.3)
    bus = EmulatedBus({0x36: chip})
    vcell = round(3.9123 / VCELL_LSB)
    assert vcell == 0xC39D
    assert bus.read_word_data(0x36, REG_VCELL) == 0x9DC3  # SMBus little-endian word of an MSB-first register
    assert bus.read_word_data(0x36, REG_SOC) == swap16(round(71.3 * 256))
    # the address auto-increments: one block read walks VCELL then SOC
    assert bus.read_i2c_block_data(0x36, REG_VCELL, 4) == [0xC3, 0x9D, round(71.3 * 256) >> 8, round(71.3 * 256) & 0xFF]
    assert swap16(bus.read_word_data(0x36, REG_VERSION)) == 0x0012


def test_crate_gives_estimated_power_and_charging() -> None:
    chip = EmulatedMax1704x(cell_voltage_v=3.8, soc_pct=50.0, crate_pct_per_h=-12.5)
    gauge = _gauge(chip, capacity_wh=19.24)
    reading = gauge.read()
    assert gauge.has_crate
    crate = round(-12.5 / 0.208) * 0.208
    assert reading.power_w == pytest.approx(crate / 100 * 19.24)
    assert reading.power_w is not None and reading.power_w < 0 and reading.power_estimated
    assert reading.charging is False
    chip.set_state(crate_pct_per_h=20.0)
    assert gauge.read().charging is True
    assert swap16(EmulatedBus({0x36: chip}).read_word_data(0x36, REG_CRATE)) == round(20.0 / 0.208)


def test_injected_power_model_wins() -> None:
    chip = EmulatedMax1704x(crate_pct_per_h=-12.5)
    reading = _gauge(chip, capacity_wh=19.24, model_power=lambda: -6.5).read()
    assert reading.power_w == -6.5 and reading.power_estimated


def test_no_power_without_model_or_capacity() -> None:
    reading = _gauge(EmulatedMax1704x()).read()
    assert reading.power_w is None and not reading.power_estimated


def test_older_part_without_crate() -> None:
    chip = EmulatedMax1704x(variant="MAX17040", cell_voltage_v=3.7771, soc_pct=40.0)
    gauge = _gauge(chip, capacity_wh=19.24)
    reading = gauge.read()
    assert gauge.version == 0x0003 and not gauge.has_crate
    assert reading.voltage_v == pytest.approx(3.7771, abs=1.25e-3)  # 12-bit VCELL
    assert reading.power_w is None and reading.charging is None


def test_driver_never_writes_reset_or_quick_start() -> None:
    chip = EmulatedMax1704x()
    gauge = _gauge(chip)
    for _ in range(5):
        gauge.read()
    assert chip.writes == [] and chip.commands == []


def test_emulation_records_command_writes_in_chip_byte_order() -> None:
    chip = EmulatedMax1704x()
    bus = EmulatedBus({0x36: chip})
    bus.write_word_data(0x36, REG_CMD, swap16(POWER_ON_RESET))
    bus.write_word_data(0x36, REG_MODE, swap16(QUICK_START))
    assert chip.commands == [(REG_CMD, 0x5400), (REG_MODE, 0x4000)]


def test_pld_polarity_x120x(factory: MockFactory) -> None:
    gauge = Max1704xGauge.for_board("x120x", bus=EmulatedBus({0x36: EmulatedMax1704x()}), pin_factory=factory)
    factory.pin(6).drive_high()
    assert gauge.read().external_power is True
    factory.pin(6).drive_low()
    reading = gauge.read()
    assert reading.external_power is False and reading.charging is False
    gauge.close()


def test_pld_polarity_x728(factory: MockFactory) -> None:
    chip = EmulatedMax1704x(crate_pct_per_h=15.0)
    gauge = Max1704xGauge.for_board("x728", bus=EmulatedBus({0x36: chip}), pin_factory=factory)
    factory.pin(6).drive_high()  # X728: high = power lost
    reading = gauge.read()
    assert reading.external_power is False and reading.charging is False
    factory.pin(6).drive_low()
    reading = gauge.read()
    assert reading.external_power is True and reading.charging is True
    gauge.close()


def test_unknown_board_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="x999"):
        Max1704xGauge.for_board("x999")


def test_pld_without_pin_factory_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(BatteryReadError, match="GPIO6"):
        Max1704xGauge(bus=EmulatedBus({0x36: EmulatedMax1704x()}), pld_pin=6)


def test_i2c_errors_retry_then_fail() -> None:
    chip = EmulatedMax1704x()
    gauge = _gauge(chip, retries=2)
    chip.fail_next_reads(2)
    assert gauge.read().soc_pct == pytest.approx(60.0, abs=1 / 256)
    chip.fail_next_reads(3)
    with pytest.raises(BatteryReadError, match="after 3 attempts"):
        gauge.read()


def test_garbage_soc_and_voltage_are_rejected() -> None:
    chip = EmulatedMax1704x()
    gauge = _gauge(chip)
    chip.inject_garbage(REG_SOC, 0xFFFF)
    with pytest.raises(BatteryReadError, match=r"state of charge 256\.00 %"):
        gauge.read()
    chip.inject_garbage(REG_VCELL, 0x0000)
    with pytest.raises(BatteryReadError, match=r"voltage 0\.000 V"):
        gauge.read()
    chip.set_state(soc_pct=100.9)  # a small ModelGauge overshoot after a charge
    assert gauge.read().soc_pct == 100.0
