"""Tests of the shared gauge pieces: byte helpers, retries, plausibility, OCV curves, the emulated bus."""

from __future__ import annotations

import errno
import logging

import pytest

from assistant.errors import BatteryReadError
from assistant.messages import BatteryReading
from assistant.power.gauges.base import (
    LazySMBus,
    PlausibilityLimits,
    TransientGlitch,
    check_plausible,
    retry_io,
    s16,
    swap16,
)
from assistant.sim.chips.bus import EmulatedBus
from assistant.sim.chips.ina219 import EmulatedIna219
from assistant.power.gauges.ocv import (
    LI_ION_REST,
    PISUGAR_SERVER,
    cell_voltage_from_soc,
    soc_from_cell_voltage,
    validate_curve,
)


def _reading(**overrides: object) -> BatteryReading:
    values: dict[str, object] = dict(
        t_monotonic=1.0,
        voltage_v=7.4,
        current_a=-0.5,
        power_w=-3.7,
        soc_pct=50.0,
        charging=False,
        external_power=False,
        source="test@0x42",
    )
    values.update(overrides)
    return BatteryReading(**values)  # type: ignore[arg-type]


def test_swap16_and_s16() -> None:
    assert swap16(0x1234) == 0x3412
    assert swap16(swap16(0xBEEF)) == 0xBEEF
    assert s16(0xFFFF) == -1
    assert s16(0x8000) == -32768
    assert s16(0x7FFF) == 32767
    assert s16(0xFB2E) == -1234


def test_retry_recovers_and_backs_off_doubling() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return "ok"

    assert retry_io(flaky, what="g", retries=3, backoff_s=0.05, sleep=sleeps.append) == "ok"
    assert len(calls) == 3
    assert sleeps == pytest.approx([0.05, 0.1])


def test_retry_gives_up_with_battery_read_error() -> None:
    sleeps: list[float] = []

    def broken() -> None:
        raise TransientGlitch("CURRENT disagrees")

    with pytest.raises(BatteryReadError, match=r"g: read failed after 3 attempts: CURRENT disagrees"):
        retry_io(broken, what="g", retries=2, backoff_s=0.01, sleep=sleeps.append)
    assert sleeps == pytest.approx([0.01, 0.02])


def test_retry_does_not_swallow_other_errors() -> None:
    def bad() -> None:
        raise ValueError("a bug, not an I2C error")

    with pytest.raises(ValueError):
        retry_io(bad, what="g", retries=5, backoff_s=0.0)


def test_plausible_reading_passes_unchanged() -> None:
    reading = _reading()
    assert check_plausible(reading, cells_in_series=2, limits=PlausibilityLimits(), board_max_current_a=3.2) is reading


@pytest.mark.parametrize(
    ("overrides", "cells", "fragment"),
    [
        ({"voltage_v": 12.0}, 2, "voltage 12.000 V outside 5.00..8.80 V"),
        ({"voltage_v": 0.0}, 1, "voltage 0.000 V"),
        ({"current_a": -4.5}, 2, "current -4.500 A beyond the board's limit of 3.20 A"),
        ({"soc_pct": -0.5}, 2, "state of charge -0.50 %"),
        ({"soc_pct": 255.99}, 2, "state of charge 255.99 %"),
    ],
)
def test_implausible_readings_are_rejected_and_logged(
    overrides: dict[str, object], cells: int, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    reading = _reading(**overrides)
    with caplog.at_level(logging.WARNING), pytest.raises(BatteryReadError) as info:
        check_plausible(reading, cells_in_series=cells, limits=PlausibilityLimits(), board_max_current_a=3.2)
    assert fragment in str(info.value)
    assert "test@0x42" in str(info.value)
    assert any(fragment in r.getMessage() for r in caplog.records)


def test_chip_range_caps_the_pack_range() -> None:
    with pytest.raises(BatteryReadError, match=r"outside 2\.50\.\.4\.00 V"):
        check_plausible(
            _reading(voltage_v=4.2),
            cells_in_series=1,
            limits=PlausibilityLimits(),
            board_max_current_a=None,
            chip_max_voltage_v=4.0,
        )


def test_small_soc_overshoot_is_clamped_and_limit_override_applies() -> None:
    fixed = check_plausible(
        _reading(soc_pct=101.2), cells_in_series=2, limits=PlausibilityLimits(), board_max_current_a=None
    )
    assert fixed.soc_pct == 100.0
    strict = PlausibilityLimits(soc_overshoot_pct=0.0, max_current_a=0.4)
    with pytest.raises(BatteryReadError, match=r"101\.20"):
        check_plausible(
            _reading(soc_pct=101.2, current_a=0.1), cells_in_series=2, limits=strict, board_max_current_a=None
        )
    with pytest.raises(BatteryReadError, match=r"limit of 0\.40 A"):
        check_plausible(_reading(), cells_in_series=2, limits=strict, board_max_current_a=3.2)


def test_limits_validate_themselves() -> None:
    with pytest.raises(ValueError, match="min_cell_v"):
        PlausibilityLimits(min_cell_v=4.5)
    with pytest.raises(ValueError, match="max_current_a"):
        PlausibilityLimits(max_current_a=0.0)


def test_lazy_smbus_touches_nothing_until_used_and_fails_clearly() -> None:
    bus = LazySMBus(97)
    bus.close()  # never opened: nothing to do
    with pytest.raises(BatteryReadError, match=r"/dev/i2c-97"):
        bus.read_byte_data(0x42, 0)


def test_ocv_curve_round_trip_and_clamping() -> None:
    for curve in (LI_ION_REST, PISUGAR_SERVER):
        validate_curve(curve)
        for soc in (0.0, 3.0, 17.5, 50.0, 88.0, 99.0, 100.0):
            assert soc_from_cell_voltage(curve, cell_voltage_from_soc(curve, soc)) == pytest.approx(soc)
    assert soc_from_cell_voltage(LI_ION_REST, 2.0) == 0.0
    assert soc_from_cell_voltage(LI_ION_REST, 4.5) == 100.0
    assert cell_voltage_from_soc(LI_ION_REST, 50.0) == pytest.approx(3.82)
    assert soc_from_cell_voltage(PISUGAR_SERVER, 3.70) == pytest.approx(65.0)
    with pytest.raises(ValueError, match="increase"):
        validate_curve(((0.0, 3.0), (50.0, 2.9)))
    with pytest.raises(ValueError, match="two"):
        validate_curve(((0.0, 3.0),))


def test_emulated_bus_nacks_absent_addresses_like_linux() -> None:
    bus = EmulatedBus({0x42: EmulatedIna219()})
    with pytest.raises(OSError) as info:
        bus.read_byte_data(0x40, 0)
    assert info.value.errno == errno.EREMOTEIO
    with pytest.raises(OSError):
        bus.write_word_data(0x41, 0, 0)
    assert bus.read_byte(0x42) == 0x39  # CONFIG power-on value 0x399F, MSB first
    with pytest.raises(ValueError):
        bus.read_i2c_block_data(0x42, 0, 33)
    bus.close()
    assert bus.closed


def test_emulated_faults_hit_the_next_transactions_only() -> None:
    chip = EmulatedIna219()
    bus = EmulatedBus({0x42: chip})
    chip.fail_next_reads(2)
    for _ in range(2):
        with pytest.raises(OSError):
            bus.read_word_data(0x42, 0)
    assert bus.read_word_data(0x42, 0) == swap16(0x399F)
    chip.fail_next_writes(1)
    with pytest.raises(OSError):
        bus.write_word_data(0x42, 5, swap16(4096))
    bus.write_word_data(0x42, 5, swap16(4096))
    assert chip.calibration == 4096
    chip.inject_garbage(0x00, 0xABCD, count=1)
    assert bus.read_word_data(0x42, 0) == 0xCDAB
    assert bus.read_word_data(0x42, 0) == swap16(0x399F)
