"""Register-level emulation of a Maxim MAX1704x ModelGauge fuel gauge (Geekworm/SupTronics X120x, X728)."""

from __future__ import annotations

import logging
from typing import Literal

from assistant.messages import BatteryReading
from assistant.sim.chips.bus import RegisterChip

_LOG = logging.getLogger(__name__)

REG_VCELL = 0x02
REG_SOC = 0x04
REG_MODE = 0x06
REG_VERSION = 0x08
REG_HIBRT = 0x0A
REG_CONFIG = 0x0C
REG_VALRT = 0x14
REG_CRATE = 0x16
REG_VRESET_ID = 0x18
REG_STATUS = 0x1A
REG_CMD = 0xFE

VCELL_LSB_V = 78.125e-6
"""VCELL scale (V per LSB); MAX17040/41 use only bits 15..4 (1.25 mV steps)."""
CRATE_LSB_PCT_H = 0.208
"""CRATE scale (% per hour per LSB), MAX17048/49 only."""
QUICK_START = 0x4000
POWER_ON_RESET = 0x5400


Variant = Literal["MAX17048", "MAX17040", "MAX17041", "MAX17043"]

OLD_PARTS = ("MAX17040", "MAX17041", "MAX17043")
"""The 12-bit parts (1.25 mV VCELL steps, no CRATE) that Geekworm's X728 and X120x carry."""


class EmulatedMax1704x(RegisterChip):
    """A MAX17048 or an older MAX17040/41/43 fuel gauge on the emulated bus.

    The older parts have no CRATE, HIBRT, VALRT, VRESET or STATUS registers, a 12-bit VCELL, and a
    VERSION that is not the MAX17048's 0x001x: datasheets only say "IC version"; boards in the field
    are reported with 0x0002 and 0x0003, and the value is not something a driver may depend on (the
    default here is 0x0003; tests try others).

    Registers are 16 bit, sent MSB first, at even addresses; the register address auto-increments
    after each byte, so a block read walks through consecutive registers. State: ``cell_voltage_v``,
    ``soc_pct`` and (MAX17048 only) ``crate_pct_per_h``. Writes of Quick-Start to MODE and of the
    power-on-reset command to CMD are recorded in ``commands`` (a driver must never send them: on
    the real chip they restart the SoC estimate from the loaded voltage); a reset sets STATUS.RI.
    """

    def __init__(
        self,
        *,
        variant: Variant = "MAX17048",
        version: int | None = None,
        cell_voltage_v: float = 3.8,
        soc_pct: float = 60.0,
        crate_pct_per_h: float = 0.0,
    ) -> None:
        super().__init__()
        self.variant = variant
        self.version = version if version is not None else (0x0012 if variant == "MAX17048" else 0x0003)
        """VERSION content: 0x001x for MAX17048/49; older parts report other values."""
        self.cell_voltage_v = cell_voltage_v
        self.soc_pct = soc_pct
        self.crate_pct_per_h = crate_pct_per_h
        self.commands: list[tuple[int, int]] = []
        """``(register, value)`` of every MODE/CMD word written."""
        self._config = 0x971C
        self._hibrt = 0x8030
        self._valrt = 0x00FF
        self._vreset = 0x9600
        self._status = 0x0100  # RI (reset indicator) set after power-up
        self._pointer_reg = 0
        self._partial: dict[int, int] = {}

    def set_state(
        self,
        *,
        cell_voltage_v: float | None = None,
        soc_pct: float | None = None,
        crate_pct_per_h: float | None = None,
    ) -> None:
        """Set what the gauge reports next."""
        with self._lock:
            if cell_voltage_v is not None:
                self.cell_voltage_v = cell_voltage_v
            if soc_pct is not None:
                self.soc_pct = soc_pct
            if crate_pct_per_h is not None:
                self.crate_pct_per_h = crate_pct_per_h

    def _pull_state(self, reading: BatteryReading) -> None:
        self.cell_voltage_v = reading.voltage_v
        if reading.soc_pct is not None:
            self.soc_pct = reading.soc_pct

    @property
    def has_crate(self) -> bool:
        """Whether this part implements the CRATE register."""
        return self.variant == "MAX17048"

    def _register_value(self, register: int) -> int:
        if register == REG_VCELL:
            raw = max(0, min(0xFFFF, round(self.cell_voltage_v / VCELL_LSB_V)))
            return raw & 0xFFF0 if self.variant in OLD_PARTS else raw
        if register == REG_SOC:
            return max(0, min(0xFFFF, round(self.soc_pct * 256)))
        if register == REG_VERSION:
            return self.version
        if register == REG_CONFIG:
            return self._config
        if self.variant == "MAX17048":
            if register == REG_CRATE:
                return round(self.crate_pct_per_h / CRATE_LSB_PCT_H) & 0xFFFF
            if register == REG_HIBRT:
                return self._hibrt
            if register == REG_VALRT:
                return self._valrt
            if register == REG_VRESET_ID:
                return self._vreset
            if register == REG_STATUS:
                return self._status
        return 0x0000  # MODE and CMD read back 0; unimplemented addresses too

    def _pointer(self) -> int:
        return self._pointer_reg

    def _read(self, register: int, count: int) -> bytes:
        self._refresh()
        cache: dict[int, int] = {}
        out = bytearray()
        addr = register
        for _ in range(count):
            word = self._word(addr & 0xFE, cache)
            out.append(word >> 8 if addr % 2 == 0 else word & 0xFF)  # MSB at the even address
            addr = (addr + 1) & 0xFF
        self._pointer_reg = addr
        return bytes(out)

    def _write(self, register: int, data: bytes) -> None:
        addr = register
        for byte in data:
            self._store_byte(addr, byte)
            addr = (addr + 1) & 0xFF
        self._pointer_reg = addr

    def _store_byte(self, addr: int, byte: int) -> None:
        """Registers latch when their LSB (odd address) arrives after the MSB."""
        if addr % 2 == 0:
            self._partial[addr] = byte
            return
        msb = self._partial.pop(addr - 1, None)
        if msb is None:
            return
        word = (msb << 8) | byte
        reg = addr - 1
        if reg in (REG_MODE, REG_CMD):
            self.commands.append((reg, word))
            if reg == REG_CMD and word == POWER_ON_RESET:
                _LOG.debug("MAX1704x emulation: power-on reset received")
                self._status |= 0x0100
        elif reg == REG_CONFIG:
            self._config = word
        elif reg == REG_HIBRT:
            self._hibrt = word
        elif reg == REG_VALRT:
            self._valrt = word
        elif reg == REG_VRESET_ID:
            self._vreset = (word & 0xFF00) | (self._vreset & 0x00FF)
        elif reg == REG_STATUS:
            self._status = word
