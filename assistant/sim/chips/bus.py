"""An emulated I2C bus with SMBus semantics, and the fault-injecting base of the emulated gauge chips."""

from __future__ import annotations

import abc
import errno
import logging
import threading
from collections.abc import Callable, Sequence

from assistant.messages import BatteryReading

_LOG = logging.getLogger(__name__)


def _nack(addr: int, what: str) -> OSError:
    return OSError(errno.EREMOTEIO, f"Remote I/O error ({what} at 0x{addr:02x})")


class RegisterChip(abc.ABC):
    """Base of an emulated I2C chip: byte-level transfers plus fault injection and a write log.

    Subclasses implement ``_read(register, count) -> bytes`` (the bytes the chip clocks out after the
    register pointer was set, in the chip's own byte order) and ``_write(register, data)``. A
    register's 16-bit *content* (what the datasheet tables show) is produced by ``_word(register)``,
    which injected garbage overrides.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._fail_reads = 0
        self._fail_writes = 0
        self._garbage: dict[int, list[int]] = {}
        self.writes: list[tuple[int, bytes]] = []
        """Every write the chip received: ``(register, data bytes as on the wire)``."""
        self.reads = 0
        """Number of read transactions served (failed ones included)."""
        self.state_source: Callable[[], BatteryReading] | None = None
        """When set, the chip pulls pack voltage, current and SoC from it before each conversion
        (e.g. ``SimulatedPack.read``), so a driver can run over a simulated pack."""

    # ---- fault injection -------------------------------------------------------------------
    def fail_next_reads(self, count: int) -> None:
        """Make the next ``count`` read transactions fail with OSError (EREMOTEIO, as a NACK does)."""
        with self._lock:
            self._fail_reads = count

    def fail_next_writes(self, count: int) -> None:
        """Make the next ``count`` write transactions fail with OSError."""
        with self._lock:
            self._fail_writes = count

    def inject_garbage(self, register: int, value: int, count: int = 1) -> None:
        """Make the next ``count`` reads of ``register`` return raw content ``value`` (16-bit)."""
        with self._lock:
            self._garbage.setdefault(register, []).extend([value & 0xFFFF] * count)

    # ---- what subclasses provide -----------------------------------------------------------
    @abc.abstractmethod
    def _register_value(self, register: int) -> int:
        """Provided by each chip."""

    @abc.abstractmethod
    def _read(self, register: int, count: int) -> bytes:
        """Provided by each chip."""

    @abc.abstractmethod
    def _write(self, register: int, data: bytes) -> None:
        """Provided by each chip."""

    def _pull_state(self, reading: BatteryReading) -> None:
        """Take pack voltage/current/SoC from a reading (called before a conversion when attached)."""

    # ---- used by subclasses ----------------------------------------------------------------
    def _word(self, register: int, cache: dict[int, int]) -> int:
        """Register content for this transaction: injected garbage first, else the live value."""
        if register not in cache:
            queued = self._garbage.get(register)
            if queued:
                cache[register] = queued.pop(0)
                _LOG.debug("emulated chip: garbage 0x%04x served from register 0x%02x", cache[register], register)
            else:
                cache[register] = self._register_value(register) & 0xFFFF
        return cache[register]

    def _refresh(self) -> None:
        if self.state_source is not None:
            self._pull_state(self.state_source())

    # ---- bus-facing ------------------------------------------------------------------------
    def bus_read(self, addr: int, register: int, count: int) -> bytes:
        with self._lock:
            self.reads += 1
            if self._fail_reads > 0:
                self._fail_reads -= 1
                raise _nack(addr, f"injected read fault, register 0x{register:02x}")
            return self._read(register, count)

    def bus_write(self, addr: int, register: int, data: bytes) -> None:
        with self._lock:
            if self._fail_writes > 0:
                self._fail_writes -= 1
                raise _nack(addr, f"injected write fault, register 0x{register:02x}")
            self.writes.append((register, bytes(data)))
            self._write(register, bytes(data))

    def bus_receive(self, addr: int) -> int:
        """SMBus "receive byte": the first byte at the chip's current register pointer."""
        with self._lock:
            return self.bus_read(addr, self._pointer(), 1)[0]

    def _pointer(self) -> int:
        return 0


class EmulatedBus:
    """An I2C bus holding emulated chips by address; implements the RegisterBus (smbus2) calls.

    SMBus word transfers are little-endian: ``read_word_data`` returns the first byte on the wire in
    bits 7..0 and the second in bits 15..8, and ``write_word_data`` sends the low byte first. A
    big-endian chip therefore reads back byte-swapped, exactly as through ``smbus2`` on a Pi.
    Addresses without a chip NACK with OSError(EREMOTEIO), as the Linux i2c driver reports them.
    """

    def __init__(self, chips: dict[int, RegisterChip] | None = None) -> None:
        self.chips: dict[int, RegisterChip] = dict(chips or {})
        self.closed = False

    def _chip(self, addr: int, what: str) -> RegisterChip:
        chip = self.chips.get(addr)
        if chip is None:
            raise _nack(addr, what)
        return chip

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self._chip(i2c_addr, "receive byte").bus_receive(i2c_addr)

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._chip(i2c_addr, "read byte").bus_read(i2c_addr, register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._chip(i2c_addr, "write byte").bus_write(i2c_addr, register, bytes([value & 0xFF]))

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        data = self._chip(i2c_addr, "read word").bus_read(i2c_addr, register, 2)
        return data[0] | (data[1] << 8)

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        data = bytes([value & 0xFF, (value >> 8) & 0xFF])
        self._chip(i2c_addr, "write word").bus_write(i2c_addr, register, data)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        if not 0 < length <= 32:
            raise ValueError(f"I2C block length must be 1..32, got {length}")
        return list(self._chip(i2c_addr, "read block").bus_read(i2c_addr, register, length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        self._chip(i2c_addr, "write block").bus_write(i2c_addr, register, bytes(b & 0xFF for b in data))

    def close(self) -> None:
        self.closed = True
