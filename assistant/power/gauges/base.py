"""What every battery gauge offers, the I2C bus it talks through, and the checks all gauges share."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar, runtime_checkable

from assistant.errors import BatteryReadError
from assistant.messages import BatteryReading
from assistant.power.battery_config import PlausibilityLimits
from assistant.power.cutoff import DEFAULT_EMPTY, EmptyPoint

_LOG = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "DEFAULT_LIMITS",
    "Gauge",
    "LazySMBus",
    "PlausibilityLimits",
    "RegisterBus",
    "check_plausible",
    "retry_io",
    "s16",
    "swap16",
]


@runtime_checkable
class Gauge(Protocol):
    """A source of battery readings: a UPS HAT driver, a daemon client or the simulated pack."""

    @property
    def name(self) -> str:
        """Short label used in logs and as ``BatteryReading.source``, e.g. ``ina219@0x42``."""
        ...

    @property
    def empty_point(self) -> EmptyPoint:
        """Where this board's pack counts as empty (its preset; the configuration may override it)."""
        ...

    @property
    def poll_period_s(self) -> float:
        """How often a reading is worth taking (s): the chip's or the daemon's own update rate."""
        ...

    def read(self) -> BatteryReading:
        """Take one reading; raises BatteryReadError when the gauge cannot be read or is implausible."""
        ...

    def close(self) -> None:
        """Release the bus, socket or GPIO line the gauge holds."""
        ...

    def arm_power_restore(self) -> bool:
        """After a low-battery power-off was accepted: have the board cut its output and restart the
        device when external power returns, where the board can (UPS HAT (E)); True if it was armed."""
        ...


class RegisterBus(Protocol):
    """The subset of ``smbus2.SMBus`` the drivers use; the emulated bus implements the same calls."""

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int: ...

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None: ...

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None: ...

    def close(self) -> None: ...


class GaugeBase:
    """What every driver keeps: plausibility limits, retry policy, clock and a lock for its bus."""

    poll_period_s: float = 1.0
    """How often a reading is worth taking (s); drivers of faster chips set less."""

    def __init__(self, *, limits: PlausibilityLimits, retries: int, backoff_s: float,
                 sleep: Callable[[float], None], clock: Callable[[], float],
                 empty_point: EmptyPoint = DEFAULT_EMPTY) -> None:
        self.empty_point = empty_point
        """Where this board's pack counts as empty."""
        self.limits = limits
        self.retries = retries
        """Extra attempts after an I/O error (count)."""
        self.backoff_s = backoff_s
        """Wait before the first retry, doubled for each further one (s)."""
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()

    def arm_power_restore(self) -> bool:
        """Most boards cannot restart the device by themselves: nothing to arm."""
        return False


class LazySMBus:
    """``smbus2.SMBus(bus_number)`` opened on first use, so constructing a driver touches no device."""

    def __init__(self, bus_number: int) -> None:
        self.bus_number = bus_number
        self._bus: Any = None

    def _open(self) -> Any:
        if self._bus is None:
            try:
                import smbus2
            except ImportError as exc:
                raise BatteryReadError(f"I2C bus {self.bus_number}: the smbus2 package is not installed") from exc
            try:
                self._bus = smbus2.SMBus(self.bus_number)
            except OSError as exc:
                raise BatteryReadError(f"cannot open /dev/i2c-{self.bus_number}: {exc}") from exc
        return self._bus

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return int(self._open().read_byte(i2c_addr, force))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return int(self._open().read_byte_data(i2c_addr, register, force))

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._open().write_byte_data(i2c_addr, register, value, force)

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return int(self._open().read_word_data(i2c_addr, register, force))

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._open().write_word_data(i2c_addr, register, value, force)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        return list(self._open().read_i2c_block_data(i2c_addr, register, length, force))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        self._open().write_i2c_block_data(i2c_addr, register, list(data), force)

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None


def swap16(value: int) -> int:
    """Swap the two bytes of a 16-bit word (SMBus words are little-endian, many chips send MSB first)."""
    return ((value & 0xFF) << 8) | ((value >> 8) & 0xFF)


def s16(value: int) -> int:
    """Interpret a 16-bit word as two's complement."""
    value &= 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


class TransientGlitch(Exception):
    """A reading that is inconsistent in itself (e.g. lost calibration); worth one more try, like an I2C error."""


DEFAULT_LIMITS = PlausibilityLimits()
"""The default bounds (frozen, so one shared instance is safe)."""


def _reject(name: str, message: str) -> BatteryReadError:
    _LOG.warning("%s: implausible reading rejected: %s", name, message)
    return BatteryReadError(f"battery gauge {name}: implausible reading: {message}")


def check_plausible(
    reading: BatteryReading,
    *,
    cells_in_series: int,
    limits: PlausibilityLimits,
    board_max_current_a: float | None,
    chip_max_voltage_v: float | None = None,
) -> BatteryReading:
    """Return the reading (SoC overshoot clamped to 100 %) or raise BatteryReadError naming the bad value."""
    name = reading.source
    for label, value in (
        ("voltage", reading.voltage_v),
        ("current", reading.current_a),
        ("power", reading.power_w),
        ("state of charge", reading.soc_pct),
    ):
        if value is not None and not math.isfinite(value):
            raise _reject(name, f"{label} {value}")
    low = cells_in_series * limits.min_cell_v
    high = cells_in_series * limits.max_cell_v
    if chip_max_voltage_v is not None:
        high = min(high, chip_max_voltage_v)
    if not low <= reading.voltage_v <= high:
        raise _reject(
            name, f"voltage {reading.voltage_v:.3f} V outside {low:.2f}..{high:.2f} V for a {cells_in_series}S pack"
        )
    max_a = limits.max_current_a if limits.max_current_a is not None else board_max_current_a
    if reading.current_a is not None and max_a is not None and abs(reading.current_a) > max_a:
        raise _reject(name, f"current {reading.current_a:+.3f} A beyond the board's limit of {max_a:.2f} A")
    soc = reading.soc_pct
    if soc is not None:
        if soc < 0.0 or soc > 100.0 + limits.soc_overshoot_pct:
            raise _reject(name, f"state of charge {soc:.2f} % outside 0..100 %")
        if soc > 100.0:
            reading = replace(reading, soc_pct=100.0)
    return reading


def retry_io(
    operation: Callable[[], T],
    *,
    what: str,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation``; on OSError (an I2C or socket error) retry ``retries`` times with doubling back-off."""
    attempt = 0
    while True:
        try:
            return operation()
        except (OSError, TransientGlitch) as exc:
            if attempt >= retries:
                _LOG.warning("%s: giving up after %d attempts: %s", what, attempt + 1, exc)
                raise BatteryReadError(f"{what}: read failed after {attempt + 1} attempts: {exc}") from exc
            delay = backoff_s * (2**attempt)
            _LOG.debug("%s: attempt %d failed (%s); retrying in %.3f s", what, attempt + 1, exc, delay)
            attempt += 1
            if delay > 0:
                sleep(delay)
