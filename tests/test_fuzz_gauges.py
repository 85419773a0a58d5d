"""Fuzzing the gauge decoders: arbitrary register contents and bus behaviour through every driver give a plausible
reading or a BatteryReadError, never another exception or a hang."""

from __future__ import annotations

import errno
import math
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.errors import AssistantError, BatteryReadError
from assistant.messages import BatteryReading
from assistant.power.gauges.base import DEFAULT_LIMITS, RegisterBus
from assistant.sim.chips.bus import EmulatedBus, RegisterChip
from assistant.sim.chips.ina219 import EmulatedIna219
from assistant.sim.chips.max1704x import EmulatedMax1704x
from assistant.sim.chips.waveshare_e import EmulatedUpsHatE
from assistant.power.gauges.ina219 import Ina219Gauge
from assistant.power.gauges.max1704x import Max1704xGauge
from assistant.power.gauges.waveshare_e import WaveshareEGauge
from fuzzing import result_or_our_error

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

no_sleep: Callable[[float], None] = lambda s: None  # noqa: E731


def ina219_b(bus: RegisterBus) -> Ina219Gauge:
    return Ina219Gauge.for_board("waveshare_b", bus=bus, sleep=no_sleep)


def ina219_cd(bus: RegisterBus) -> Ina219Gauge:
    return Ina219Gauge.for_board("waveshare_cd", bus=bus, sleep=no_sleep)


def max17048(bus: RegisterBus) -> Max1704xGauge:
    return Max1704xGauge(bus=bus, pld_pin=None, capacity_wh=9.6, sleep=no_sleep)


def ups_hat_e(bus: RegisterBus) -> WaveshareEGauge:
    return WaveshareEGauge(bus=bus, sleep=no_sleep)


DRIVERS: dict[str, tuple[Callable[[RegisterBus], Any], int, int, float | None]] = {
    # name: (driver factory, address, cells in series, board current limit (A))
    "ina219_b": (ina219_b, 0x42, 2, 3.2),
    "ina219_cd": (ina219_cd, 0x43, 1, 5.0),
    "max17048": (max17048, 0x36, 1, None),
    "ups_hat_e": (ups_hat_e, 0x2D, 4, 6.0),
}

CHIPS: dict[str, tuple[Callable[[], RegisterChip], list[int]]] = {
    # name: (emulated chip, registers whose content is replaced)
    "ina219_b": (lambda: EmulatedIna219(shunt_ohms=0.1, pack_voltage_v=7.6, current_a=-0.8), list(range(6))),
    "ina219_cd": (lambda: EmulatedIna219(shunt_ohms=0.01, pack_voltage_v=3.9, current_a=1.2), list(range(6))),
    "max17048": (lambda: EmulatedMax1704x(), [0x02, 0x04, 0x08, 0x0C, 0x16]),
    "ups_hat_e": (lambda: EmulatedUpsHatE(), [0x00, 0x02, 0x03, 0x10, 0x12, 0x14, 0x20, 0x22, 0x24, 0x26, 0x28,
                                             0x2A, 0x30, 0x32, 0x34, 0x36]),
}


def assert_plausible(outcome: BatteryReading | AssistantError, name: str) -> None:
    """A reading that got through must be one the appliance can act on."""
    if isinstance(outcome, AssistantError):
        assert isinstance(outcome, BatteryReadError), outcome
        assert str(outcome)
        return
    _, _, cells, max_a = DRIVERS[name]
    assert isinstance(outcome, BatteryReading)
    assert math.isfinite(outcome.voltage_v)
    assert cells * DEFAULT_LIMITS.min_cell_v <= outcome.voltage_v <= cells * DEFAULT_LIMITS.max_cell_v
    if outcome.soc_pct is not None:
        assert 0.0 <= outcome.soc_pct <= 100.0
    if outcome.current_a is not None:
        assert math.isfinite(outcome.current_a)
        if max_a is not None:
            assert abs(outcome.current_a) <= max_a
    if outcome.power_w is not None:
        assert math.isfinite(outcome.power_w)


@FUZZ
@given(name=st.sampled_from(sorted(CHIPS)), data=st.data())
def test_arbitrary_register_contents_through_the_emulated_chip(name: str, data: st.DataObject) -> None:
    make_chip, registers = CHIPS[name]
    chip = make_chip()
    for register in registers:
        values = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=5), label=f"reg 0x{register:02x}")
        for value in values:
            chip.inject_garbage(register, value)
    chip.fail_next_reads(data.draw(st.integers(0, 5), label="failed reads"))
    factory, address, _, _ = DRIVERS[name]
    gauge = factory(EmulatedBus({address: chip}))
    for _ in range(3):  # consecutive readings: the drivers keep state (configured, version, chip id)
        assert_plausible(result_or_our_error(gauge.read), name)
    gauge.close()


class FuzzBus:
    """An SMBus whose every transfer is drawn by hypothesis: any bytes, or an I/O error."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def _fail(self) -> None:
        if self.data.draw(st.integers(0, 9), label="error?") == 0:
            raise OSError(self.data.draw(st.sampled_from([errno.EREMOTEIO, errno.EIO, errno.ETIMEDOUT, errno.ENXIO])),
                          "fuzzed bus error")

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        self._fail()
        return self.data.draw(st.integers(0, 0xFF))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        self._fail()
        return self.data.draw(st.integers(0, 0xFF))

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._fail()

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        self._fail()
        return self.data.draw(st.integers(0, 0xFFFF))

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._fail()

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        self._fail()
        return self.data.draw(st.lists(st.integers(0, 0xFF), min_size=length, max_size=length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int],
                             force: bool | None = None) -> None:
        self._fail()

    def close(self) -> None:
        pass


@FUZZ
@given(name=st.sampled_from(sorted(DRIVERS)), data=st.data())
def test_arbitrary_bus_transfers_through_every_driver(name: str, data: st.DataObject) -> None:
    factory, _, _, _ = DRIVERS[name]
    gauge = factory(FuzzBus(data))
    for _ in range(2):
        assert_plausible(result_or_our_error(gauge.read), name)


def test_an_absurd_voltage_is_rejected_not_reported() -> None:
    chip = EmulatedIna219(shunt_ohms=0.1, pack_voltage_v=7.6, current_a=-0.8)
    chip.inject_garbage(2, 0xFFF8)  # BUS_VOLTAGE at full scale: 32.76 V on a 2S pack
    gauge = ina219_b(EmulatedBus({0x42: chip}))
    outcome = result_or_our_error(gauge.read)
    assert isinstance(outcome, BatteryReadError) and "voltage 32.764 V" in str(outcome)
    assert abs(gauge.read().voltage_v - 7.6) < 0.01  # the next conversion is good again
