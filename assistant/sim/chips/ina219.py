"""Register-level emulation of a TI INA219 current/power monitor, as fitted to Waveshare UPS HATs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from assistant.messages import BatteryReading
from assistant.sim.chips.bus import RegisterChip, _nack

_LOG = logging.getLogger(__name__)

REG_CONFIG = 0x00
REG_SHUNT = 0x01
REG_BUS = 0x02
REG_POWER = 0x03
REG_CURRENT = 0x04
REG_CALIBRATION = 0x05

_ADC_TIME_S = (84e-6, 148e-6, 276e-6, 532e-6)
"""Conversion time at 9, 10, 11 and 12 bit without averaging; averaging n samples takes n x 532 us."""

CONFIG_POR = 0x399F
"""CONFIG after power-on or reset: 32 V range, /8 gain (320 mV), 12-bit, shunt+bus continuous."""

BOARD_B_BROWNOUT_V = 6.96
"""Pack voltage under load at which a Pi 5 on a Waveshare UPS HAT (B) dies (a measured build, hardware
research §1.1: the pack read 8.09 V full and the Pi died at about 6.96 V)."""


def _to_u16(value: int) -> int:
    return value & 0xFFFF


class EmulatedIna219(RegisterChip):
    """An INA219 on the emulated bus.

    Physical state: ``pack_voltage_v`` (at IN-, the battery side of the shunt, which the bus-voltage
    ADC measures) and ``current_a`` through the shunt (+ into the pack, i.e. charging). The chip:

    - stores 16-bit registers sent MSB first (no pointer auto-increment, a longer read repeats the word);
    - CONFIG bit 15 resets every register; BRNG chooses the 16/32 V range and PG the 40..320 mV
      shunt range (readings clamp at full scale); MODE 0 and 4 stop conversions;
    - SHUNT_VOLTAGE: signed, 10 uV/LSB; BUS_VOLTAGE: value in bits 15..3 at 4 mV/LSB, CNVR in bit 1
      (cleared by reading POWER or writing CONFIG), OVF in bit 0;
    - CURRENT = trunc(shunt_raw * CALIBRATION / 4096), POWER = trunc(|CURRENT| * bus_raw / 5000), both
      0 while CALIBRATION is 0; OVF is set when either does not fit its register;
    - CALIBRATION bit 0 is not implemented and reads 0;
    - a conversion samples the state at most once per conversion time (e.g. 2 x 17.02 ms with the
      boards' 32-sample averaging), so reads close together see one conversion, as on the chip;
      ``set_state`` and a CONFIG write make the next read take a fresh conversion.

    ADC resolution below 12 bit is not modelled (the boards use 12-bit averaging modes).
    """

    def __init__(
        self,
        *,
        shunt_ohms: float = 0.1,
        pack_voltage_v: float = 7.4,
        current_a: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        dies_below_v: float | None = None,
    ) -> None:
        super().__init__()
        self.dies_below_v = dies_below_v
        """The board's brown-out: below this pack voltage the Pi (and the bus with it) is dead, and
        nothing answers any more (e.g. ``BOARD_B_BROWNOUT_V``); None: never."""
        self._clock = clock
        self._last_conversion: float | None = None
        self.shunt_ohms = shunt_ohms
        """The board's shunt resistor (ohm): a property of the board, not of the chip."""
        self.pack_voltage_v = pack_voltage_v
        self.current_a = current_a
        self._regs: dict[int, int] = {}
        self._pointer_reg = 0
        self._cnvr = False
        self._ovf = False
        self.resets = 0
        """How many times the chip was reset (by CONFIG bit 15 or a brown-out)."""
        self._power_on()

    def _power_on(self) -> None:
        self._regs = {
            REG_CONFIG: CONFIG_POR,
            REG_SHUNT: 0,
            REG_BUS: 0,
            REG_POWER: 0,
            REG_CURRENT: 0,
            REG_CALIBRATION: 0,
        }
        self._cnvr = False
        self._ovf = False
        self._last_conversion = None

    # ---- state a test or simulator sets ----------------------------------------------------
    def set_state(self, *, pack_voltage_v: float | None = None, current_a: float | None = None) -> None:
        """Set what the chip will measure at its next conversion."""
        with self._lock:
            if pack_voltage_v is not None:
                self.pack_voltage_v = pack_voltage_v
            if current_a is not None:
                self.current_a = current_a
            self._last_conversion = None  # as if a whole conversion period had passed

    def bus_read(self, addr: int, register: int, count: int) -> bytes:
        with self._lock:  # judged on the last conversion: the Pi dies right after the pack sags past it
            if self.dies_below_v is not None and self.pack_voltage_v < self.dies_below_v:
                raise _nack(addr, f"the board browned out at {self.pack_voltage_v:.3f} V")
        return super().bus_read(addr, register, count)

    def brownout(self) -> None:
        """Emulate a load spike that resets the chip: every register back to its power-on value."""
        with self._lock:
            self.resets += 1
            self._power_on()

    def _pull_state(self, reading: BatteryReading) -> None:
        self.pack_voltage_v = reading.voltage_v
        self.current_a = reading.current_a or 0.0

    @property
    def calibration(self) -> int:
        """Content of the CALIBRATION register."""
        return self._regs[REG_CALIBRATION]

    @property
    def conversion_ready(self) -> bool:
        """The CNVR flag as it stands (without starting a conversion)."""
        return self._cnvr

    @property
    def config(self) -> int:
        """Content of the CONFIG register."""
        return self._regs[REG_CONFIG]

    @property
    def conversion_time_s(self) -> float:
        """Time one round of conversions takes with the present CONFIG (datasheet table 5)."""
        config = self._regs[REG_CONFIG]
        total = 0.0
        for enabled, adc in ((config & 0x1, (config >> 3) & 0xF), (config & 0x2, (config >> 7) & 0xF)):
            if enabled:
                total += _ADC_TIME_S[adc & 0x3] if adc < 8 else 532e-6 * (1 << (adc & 0x7))
        return total

    # ---- the chip's arithmetic -------------------------------------------------------------
    def _convert(self) -> None:
        """Sample the state when a conversion has finished since the last one (continuous modes)."""
        config = self._regs[REG_CONFIG]
        mode = config & 0x7
        if mode in (0, 4):
            return
        now = self._clock()
        if self._last_conversion is not None and now - self._last_conversion < self.conversion_time_s:
            return  # reads within one conversion period see the same result
        self._last_conversion = now
        self._refresh()
        if mode & 0x1:
            full_scale = 4000 << ((config >> 11) & 0x3)  # 40/80/160/320 mV in 10 uV steps
            raw = round(self.current_a * self.shunt_ohms / 10e-6)
            self._regs[REG_SHUNT] = _to_u16(max(-full_scale, min(full_scale, raw)))
        if mode & 0x2:
            bus_max = 8000 if config & 0x2000 else 4000  # 32 V or 16 V range, 4 mV steps
            bus_raw = max(0, min(bus_max, round(self.pack_voltage_v / 4e-3)))
            self._regs[REG_BUS] = bus_raw << 3
        self._cnvr = True
        self._compute()

    def _compute(self) -> None:
        shunt_raw = self._regs[REG_SHUNT]
        shunt_raw = shunt_raw - 0x10000 if shunt_raw & 0x8000 else shunt_raw
        cal = self._regs[REG_CALIBRATION]
        bus_raw = self._regs[REG_BUS] >> 3
        self._ovf = False
        if cal == 0:
            self._regs[REG_CURRENT] = 0
            self._regs[REG_POWER] = 0
            return
        product = shunt_raw * cal
        current = abs(product) // 4096 * (1 if product >= 0 else -1)  # the chip truncates toward zero
        if not -32768 <= current <= 32767:
            self._ovf = True
            current = 32767 if current > 0 else -32768
        power = abs(current) * bus_raw // 5000
        if power > 0xFFFF:
            self._ovf = True
            power = 0xFFFF
        self._regs[REG_CURRENT] = _to_u16(current)
        self._regs[REG_POWER] = power

    def _register_value(self, register: int) -> int:
        if register == REG_BUS:
            return self._regs[REG_BUS] | (0x2 if self._cnvr else 0) | (0x1 if self._ovf else 0)
        return self._regs.get(register, 0)

    # ---- wire --------------------------------------------------------------------------------
    def _pointer(self) -> int:
        return self._pointer_reg

    def _read(self, register: int, count: int) -> bytes:
        self._pointer_reg = register
        if register in (REG_SHUNT, REG_BUS, REG_CURRENT, REG_POWER):
            self._convert()
        word = self._word(register, {})
        if register == REG_POWER:
            self._cnvr = False
        pair = bytes([word >> 8, word & 0xFF])  # MSB first on the wire
        return (pair * (count // 2 + 1))[:count]

    def _write(self, register: int, data: bytes) -> None:
        self._pointer_reg = register
        if len(data) == 0:
            return  # a pointer-only write
        if len(data) != 2:
            _LOG.debug("INA219 emulation: ignoring %d-byte write to 0x%02x", len(data), register)
            return
        value = (data[0] << 8) | data[1]  # the first byte on the wire is the MSB
        if register == REG_CONFIG:
            if value & 0x8000:
                self.resets += 1
                self._power_on()
                return
            self._regs[REG_CONFIG] = value
            self._cnvr = False
            self._last_conversion = None
        elif register == REG_CALIBRATION:
            self._regs[REG_CALIBRATION] = value & 0xFFFE
            self._compute()
        # SHUNT, BUS, POWER and CURRENT are read-only: writes are ignored as by the chip
