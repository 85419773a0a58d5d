"""Tests of the UPS HAT (E) driver against the emulation of its register map at 0x2D."""

from __future__ import annotations

import pytest

from assistant.errors import BatteryReadError
from assistant.sim.chips.bus import EmulatedBus
from assistant.sim.chips.waveshare_e import CHARGER_CC, CHARGER_FULL, EmulatedUpsHatE
from assistant.power.gauges.waveshare_e import WaveshareEGauge


def _gauge(chip: EmulatedUpsHatE, **kw: object) -> WaveshareEGauge:
    return WaveshareEGauge(bus=EmulatedBus({0x2D: chip}), sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def test_discharging_pack_is_decoded() -> None:
    chip = EmulatedUpsHatE(
        pack_voltage_v=15.234, current_a=-1.234, soc_pct=67, capacity_mah=5000, cells_v=(3.801, 3.812, 3.809, 3.812)
    )
    gauge = _gauge(chip)
    status = gauge.read_status()
    assert status.pack_v == 15.234 and status.current_a == -1.234
    assert status.soc_pct == 67 and status.remaining_mah == 3350
    assert status.minutes_to_empty == round(3350 / 1234 * 60) and status.minutes_to_full is None
    assert status.cells_v == (3.801, 3.812, 3.809, 3.812)
    assert status.gauge_link_ok and status.charger_link_ok
    reading = gauge.read()
    assert reading.voltage_v == 15.234 and reading.current_a == -1.234
    assert reading.power_w == pytest.approx(-15.234 * 1.234)
    assert reading.charging is False and reading.external_power is False
    assert reading.source == "ups_hat_e@0x2d" and not reading.soc_estimated


def test_registers_are_little_endian_and_current_is_twos_complement() -> None:
    chip = EmulatedUpsHatE(pack_voltage_v=15.234, current_a=-1.234)
    bus = EmulatedBus({0x2D: chip})
    assert bus.read_i2c_block_data(0x2D, 0x20, 4) == [0x82, 0x3B, 0x2E, 0xFB]  # 15234 = 0x3B82, -1234 = 0xFB2E
    assert bus.read_word_data(0x2D, 0x20) == 15234  # an SMBus word is already the value
    assert bus.read_byte_data(0x2D, 0x00) == 0x0A
    # the vendor's "current -= 0xFFFF" would give -1233 here; the driver must not
    assert _gauge(chip).read().current_a == -1.234


def test_charging_from_usb_c() -> None:
    chip = EmulatedUpsHatE(
        pack_voltage_v=16.1, current_a=1.8, soc_pct=80, vbus_v=5.12, vbus_a=3.0, charger_state=CHARGER_CC
    )
    status = _gauge(chip).read_status()
    assert status.charging and status.fast_charging and status.vbus_flag
    assert status.charger_state == "constant current"
    assert status.vbus_v == 5.12 and status.vbus_a == 3.0 and status.vbus_w == pytest.approx(15.36)
    assert status.minutes_to_full == round(1000 / 1800 * 60)
    reading = _gauge(chip).read()
    assert reading.charging is True and reading.external_power is True and reading.current_a == 1.8


def test_full_on_external_power_is_not_charging() -> None:
    chip = EmulatedUpsHatE(pack_voltage_v=16.6, current_a=0.0, soc_pct=100, vbus_v=5.1, charger_state=CHARGER_FULL)
    reading = _gauge(chip).read()
    assert reading.charging is False and reading.external_power is True


def test_wrong_id_is_refused() -> None:
    chip = EmulatedUpsHatE()
    chip.inject_garbage(0x00, 0x0B)
    with pytest.raises(BatteryReadError, match="not a UPS HAT"):
        _gauge(chip).read()


def test_lost_gas_gauge_link_is_refused() -> None:
    chip = EmulatedUpsHatE()
    chip.set_state(gauge_link_ok=False)
    with pytest.raises(BatteryReadError, match=r"BQ4050|gas gauge"):
        _gauge(chip).read()


def test_faults_retry_then_fail_and_garbage_is_rejected() -> None:
    chip = EmulatedUpsHatE()
    gauge = _gauge(chip, retries=1)
    chip.fail_next_reads(1)
    assert gauge.read().soc_pct == 70
    chip.fail_next_reads(2)
    with pytest.raises(BatteryReadError, match="after 2 attempts"):
        gauge.read()
    chip.inject_garbage(0x24, 250)
    with pytest.raises(BatteryReadError, match=r"state of charge 250\.00 %"):
        gauge.read()
    chip.inject_garbage(0x20, 40000)
    with pytest.raises(BatteryReadError, match=r"voltage 40\.000 V outside 10\.00\.\.17\.60 V for a 4S pack"):
        gauge.read()
    chip.inject_garbage(0x22, 0x8000)  # -32.768 A
    with pytest.raises(BatteryReadError, match=r"current -32\.768 A"):
        gauge.read()


def test_driver_never_writes() -> None:
    chip = EmulatedUpsHatE()
    gauge = _gauge(chip)
    gauge.read()
    gauge.read()
    assert chip.writes == [] and chip.power_off_requests == 0


def test_emulation_records_power_off_command() -> None:
    chip = EmulatedUpsHatE()
    EmulatedBus({0x2D: chip}).write_byte_data(0x2D, 0x01, 0x55)
    assert chip.power_off_requests == 1
    with pytest.raises(AttributeError):
        chip.set_state(no_such_thing=1)


def test_vbus_with_a_discharging_pack_is_not_external_power() -> None:
    """The (E)'s USB-C port is bidirectional: charging a phone, or an under-rated supply that cannot
    carry a Pi 5, reads VBUS 5 V while the pack feeds the Pi. Taking VBUS alone for external power
    turned off the safe shutdown on exactly such a pack."""
    from assistant.power.cutoff import power_source

    chip = EmulatedUpsHatE(pack_voltage_v=13.0, current_a=-1.6, soc_pct=4, vbus_v=5.05, vbus_a=0.9)
    status = _gauge(chip).read_status()
    assert status.vbus_flag and status.vbus_v == 5.05  # the HAT says VBUS is powered ...
    reading = _gauge(chip).read()
    assert reading.external_power is False and power_source(reading) == "battery"  # ... the current says battery
    chip.set_state(current_a=0.8, charger_state=CHARGER_CC)
    assert power_source(_gauge(chip).read()) == "external"


def test_the_weakest_cell_is_the_cell_voltage() -> None:
    chip = EmulatedUpsHatE(pack_voltage_v=14.4, current_a=-1.0, cells_v=(3.70, 3.62, 3.14, 3.66))
    assert _gauge(chip).read().cell_voltage_v == pytest.approx(3.14)
    chip.set_state(cells_v=(3.70, 0.0, 3.60, 3.66))  # a cell the MCU does not report: fall back to the average
    assert _gauge(chip).read().cell_voltage_v == pytest.approx(14.4 / 4)


def test_fast_charging_alone_counts_as_charging() -> None:
    chip = EmulatedUpsHatE(pack_voltage_v=15.6, current_a=2.5, vbus_v=9.0, charger_state=CHARGER_CC)
    bus = EmulatedBus({0x2D: chip})
    real_read = bus.read_i2c_block_data

    def only_bit6(addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        data = real_read(addr, register, length, force)
        if register == 0x02:
            data[0] = (data[0] & ~0x80) | 0x40  # the vendor sample tests bit 6 before bit 7
        return data

    bus.read_i2c_block_data = only_bit6  # type: ignore[method-assign]
    gauge = WaveshareEGauge(bus=bus, sleep=lambda s: None)
    assert gauge.read().charging is True


def test_arming_the_power_restore_writes_0x55_to_0x01() -> None:
    chip = EmulatedUpsHatE()
    gauge = _gauge(chip)
    assert gauge.arm_power_restore() is True
    assert chip.power_off_requests == 1
    chip.fail_next_writes(10)
    assert gauge.arm_power_restore() is False and chip.power_off_requests == 1
