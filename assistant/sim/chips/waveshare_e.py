"""Register-level emulation of the Waveshare UPS HAT (E) management MCU at I2C address 0x2D."""

from __future__ import annotations

import logging

from assistant.messages import BatteryReading
from assistant.sim.chips.bus import RegisterChip

_LOG = logging.getLogger(__name__)

CHIP_ID = 0x0A
POWER_OFF_MAGIC = 0x55

CHARGER_STANDBY, CHARGER_TRICKLE, CHARGER_CC, CHARGER_CV, CHARGER_PENDING, CHARGER_FULL, CHARGER_TIMEOUT = range(7)
"""Values of bits 2..0 of register 0x02 (charger state)."""


class EmulatedUpsHatE(RegisterChip):
    """The UPS HAT (E) MCU that fronts its BQ4050 gas gauge and IP2368 charger.

    Byte-addressed registers with auto-increment; 16-bit values are stored little-endian (low byte
    at the lower address), as the vendor sample reads them (``data[0] | data[1] << 8``). Byte
    registers: 0x00 ID (0x0A), 0x01 power-off (0x55 written is recorded in ``power_off_requests``),
    0x02 charge flags, 0x03 link flags. Words: 0x10 VBUS mV, 0x12 VBUS mA, 0x14 VBUS mW, 0x20 pack
    mV, 0x22 pack mA (signed, + charging), 0x24 %, 0x26 remaining mAh, 0x28 minutes to empty,
    0x2A minutes to full, 0x30..0x36 cell 1..4 mV.
    """

    def __init__(
        self,
        *,
        pack_voltage_v: float = 15.2,
        current_a: float = -0.8,
        soc_pct: float = 70.0,
        capacity_mah: float = 5000.0,
        vbus_v: float = 0.0,
        vbus_a: float = 0.0,
        cells_v: tuple[float, ...] | None = None,
        charger_state: int = CHARGER_STANDBY,
    ) -> None:
        super().__init__()
        self.pack_voltage_v = pack_voltage_v
        self.current_a = current_a
        self.soc_pct = soc_pct
        self.capacity_mah = capacity_mah
        """Full-charge capacity the gas gauge has learned (mAh)."""
        self.vbus_v = vbus_v
        self.vbus_a = vbus_a
        self.cells_v = cells_v
        """Per-cell voltages (V); None: the pack voltage split evenly over four cells."""
        self.charger_state = charger_state
        self.gauge_link_ok = True
        """Bit 1 of 0x03: the MCU talks to the BQ4050."""
        self.charger_link_ok = True
        """Bit 0 of 0x03: the MCU talks to the IP2368."""
        self.power_off_requests = 0
        self._pointer_reg = 0

    def set_state(self, **values: object) -> None:
        """Set any of the constructor's state attributes, e.g. ``set_state(current_a=0.5, vbus_v=5.1)``."""
        with self._lock:
            for key, value in values.items():
                if key not in (
                    "pack_voltage_v",
                    "current_a",
                    "soc_pct",
                    "capacity_mah",
                    "vbus_v",
                    "vbus_a",
                    "cells_v",
                    "charger_state",
                    "gauge_link_ok",
                    "charger_link_ok",
                ):
                    raise AttributeError(f"EmulatedUpsHatE has no state '{key}'")
                setattr(self, key, value)

    def _pull_state(self, reading: BatteryReading) -> None:
        self.pack_voltage_v = reading.voltage_v
        self.current_a = reading.current_a or 0.0
        if reading.soc_pct is not None:
            self.soc_pct = reading.soc_pct
        self.vbus_v = 5.1 if reading.external_power else 0.0
        self.charger_state = CHARGER_CC if reading.charging else CHARGER_STANDBY

    def _status_byte(self) -> int:
        charging = self.current_a > 0.05 and self.charger_state in (CHARGER_TRICKLE, CHARGER_CC, CHARGER_CV)
        value = self.charger_state & 0x7
        if charging:
            value |= 0x80
        if charging and self.charger_state == CHARGER_CC and self.current_a > 1.0:
            value |= 0x40
        if self.vbus_v > 4.0:
            value |= 0x20
        return value

    def _remaining_mah(self) -> float:
        return self.capacity_mah * max(0.0, min(100.0, self.soc_pct)) / 100.0

    def _register_value(self, register: int) -> int:
        """Content of a byte register (0x00..0x03) or of the word starting at an even address."""
        if register == 0x00:
            return CHIP_ID
        if register == 0x01:
            return 0
        if register == 0x02:
            return self._status_byte()
        if register == 0x03:
            return (0x2 if self.gauge_link_ok else 0) | (0x1 if self.charger_link_ok else 0)
        cells = self.cells_v or (self.pack_voltage_v / 4,) * 4
        ma = self.current_a * 1000.0
        words = {
            0x10: self.vbus_v * 1000.0,
            0x12: self.vbus_a * 1000.0,
            0x14: self.vbus_v * self.vbus_a * 1000.0,
            0x20: self.pack_voltage_v * 1000.0,
            0x22: ma,
            0x24: self.soc_pct,
            0x26: self._remaining_mah(),
            0x28: self._remaining_mah() / -ma * 60.0 if ma < -1.0 else 0xFFFF,
            0x2A: (self.capacity_mah - self._remaining_mah()) / ma * 60.0 if ma > 1.0 else 0xFFFF,
        }
        for i, cell in enumerate(cells[:4]):
            words[0x30 + 2 * i] = cell * 1000.0
        value = words.get(register)
        if value is None:
            return 0
        return round(value) & 0xFFFF

    def _pointer(self) -> int:
        return self._pointer_reg

    def _read(self, register: int, count: int) -> bytes:
        self._refresh()
        cache: dict[int, int] = {}
        out = bytearray()
        addr = register
        for _ in range(count):
            if addr < 0x10:
                out.append(self._word(addr, cache) & 0xFF)
            else:
                word = self._word(addr & 0xFE, cache)
                out.append(word & 0xFF if addr % 2 == 0 else word >> 8)  # low byte at the even address
            addr = (addr + 1) & 0xFF
        self._pointer_reg = addr
        return bytes(out)

    def _write(self, register: int, data: bytes) -> None:
        self._pointer_reg = register
        if register == 0x01 and data[:1] == bytes([POWER_OFF_MAGIC]):
            self.power_off_requests += 1
            _LOG.debug("UPS HAT (E) emulation: power-off requested")
