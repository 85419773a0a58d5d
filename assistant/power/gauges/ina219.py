"""Battery gauge for Waveshare UPS HATs (original/B, C, D) built on a TI INA219 shunt monitor."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.errors import ConfigError
from assistant.messages import BatteryReading
from assistant.power.gauges.base import (
    GaugeBase,
    DEFAULT_LIMITS,
    LazySMBus,
    PlausibilityLimits,
    RegisterBus,
    TransientGlitch,
    check_plausible,
    retry_io,
    s16,
    swap16,
)
from assistant.power.cutoff import DEFAULT_EMPTY, EmptyPoint
from assistant.power.gauges.ocv import LI_ION_REST, OcvCurve, soc_from_cell_voltage, validate_curve

_LOG = logging.getLogger(__name__)

REG_CONFIG, REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT, REG_CALIBRATION = range(6)
_ADC_12BIT_32X = 0xD
"""BADC/SADC setting: 12 bit, 32 samples averaged (17.02 ms per conversion), as the vendor code uses."""


@dataclass(frozen=True)
class Ina219Profile:
    """How a given board wires its INA219 (hardware.md section 1.1)."""

    address: int
    """7-bit I2C address."""
    shunt_ohms: float
    """Shunt resistor (ohm)."""
    max_current_a: float
    """Largest current the calibration is set up for, either way (A)."""
    current_lsb_a: float
    """Current register resolution the vendor code chose (A per LSB)."""
    cells_in_series: int
    """Li-ion cells in series in the pack."""
    empty: EmptyPoint
    """Where the board's pack counts as empty: above the point where the Pi browns out under load."""


PROFILES: dict[str, Ina219Profile] = {
    "waveshare_b": Ina219Profile(
        0x42, 0.1, 3.2, 100e-6, 2,
        EmptyPoint(12.0, 3.55, "board preset waveshare_b: a Pi 5 on it browns out near 6.96 V, 3.48 V per "
                               "cell under load, where the estimated SoC still reads 6-7 %")),
    "waveshare_cd": Ina219Profile(
        0x43, 0.01, 5.0, 152.4e-6, 1,
        EmptyPoint(10.0, 3.40, "board preset waveshare_cd: one cell boosted to 5 V sags hard under load")),
}
"""``waveshare_b``: UPS HAT (B) and the original UPS HAT, 2S 18650, vendor ``set_calibration_32V_2A``.
``waveshare_cd``: UPS HAT (C)/(D), 1S, vendor ``set_calibration_16V_5A`` (address 0x43; some (D)
units are reported at 0x42). The empty points are above each board's brown-out under load; a drain
test run to the brown-out measures the real one (``drain-test --until brownout``)."""


def calibration_for(shunt_ohms: float, current_lsb_a: float) -> int:
    """CALIBRATION register value: trunc(0.04096 / (Current_LSB x R_shunt)), bit 0 cleared."""
    exact = 0.04096 / (current_lsb_a * shunt_ohms)
    cal = int(exact + 1e-6) & 0xFFFE  # 1e-6: 4095.9999999 from float rounding is the datasheet's 4096
    if not 0 < cal <= 0xFFFE:
        raise ConfigError(
            f"INA219: shunt {shunt_ohms} ohm with current LSB {current_lsb_a} A gives calibration {cal}, "
            "outside 2..65534; check shunt_ohms and max_current_a"
        )
    return cal


def config_for(*, shunt_ohms: float, max_current_a: float, cells_in_series: int) -> int:
    """CONFIG word: 32 V range for multi-cell packs (16 V for 1S), the smallest shunt range that holds
    ``max_current_a``, 12-bit 32x averaging, shunt+bus continuous (0x3EEF for (B), 0x0EEF for (C)/(D))."""
    brng = 1 if cells_in_series >= 2 else 0
    needed_v = max_current_a * shunt_ohms
    pg = next((g for g in range(4) if 0.040 * (1 << g) >= needed_v - 1e-12), 3)
    return (brng << 13) | (pg << 11) | (_ADC_12BIT_32X << 7) | (_ADC_12BIT_32X << 3) | 0x7


class Ina219Gauge(GaugeBase):
    """Reads pack voltage and signed current from an INA219 on the HAT's battery side.

    Wiring: the HAT's INA219 sits on I2C-1 between the cells and the boost converter, IN- on the
    pack, so BUS_VOLTAGE is the pack voltage and positive current flows into the pack (charging).

    The driver writes CONFIG once (again whenever a read-back shows the chip was reset) and
    rewrites CALIBRATION before every reading, like the vendor code, because a load spike can reset
    the chip. Power is V_bus x I (the POWER register has no sign). SoC comes from the resting
    voltage per cell, ``(V - I x R_pack) / cells``, through an OCV curve (``soc_estimated=True``).
    ``charging`` is current above +``current_threshold_a``; ``external_power`` is current above
    -``current_threshold_a`` (on battery the Pi draws several hundred mA; near zero means the charger
    carries the load and the pack is full or idle). The 50 mA default is the figure the UPS HAT (E)
    vendor code uses to tell "discharging" from noise.
    """

    poll_period_s = 0.1
    """The chip converts every 17 ms (12 bit, 32 samples averaged): 10 Hz follows the load."""

    def __init__(
        self,
        *,
        bus: RegisterBus | None = None,
        bus_number: int = 1,
        address: int = 0x42,
        shunt_ohms: float = 0.1,
        max_current_a: float = 3.2,
        cells_in_series: int = 2,
        curve: OcvCurve = LI_ION_REST,
        current_lsb_a: float | None = None,
        pack_resistance_ohm: float | None = None,
        current_threshold_a: float = 0.05,
        empty_point: EmptyPoint = DEFAULT_EMPTY,
        limits: PlausibilityLimits = DEFAULT_LIMITS,
        retries: int = 3,
        backoff_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if shunt_ohms <= 0 or max_current_a <= 0 or cells_in_series < 1:
            raise ConfigError(
                f"INA219: shunt_ohms ({shunt_ohms}), max_current_a ({max_current_a}) and "
                f"cells_in_series ({cells_in_series}) must be positive"
            )
        self._bus: RegisterBus = bus if bus is not None else LazySMBus(bus_number)
        self.address = address
        self.shunt_ohms = shunt_ohms
        self.max_current_a = max_current_a
        self.cells_in_series = cells_in_series
        self.curve = validate_curve(curve)
        lsb = current_lsb_a if current_lsb_a is not None else max_current_a / 32768
        self.calibration = calibration_for(shunt_ohms, lsb)
        self.current_lsb_a = 0.04096 / (self.calibration * shunt_ohms)
        """The exact current resolution the truncated calibration gives (A per LSB)."""
        self.config = config_for(shunt_ohms=shunt_ohms, max_current_a=max_current_a, cells_in_series=cells_in_series)
        self.pack_resistance_ohm = pack_resistance_ohm if pack_resistance_ohm is not None else 0.05 * cells_in_series
        self.current_threshold_a = current_threshold_a
        super().__init__(limits=limits, retries=retries, backoff_s=backoff_s, sleep=sleep, clock=clock,
                         empty_point=empty_point)
        self._configured = False
        self.name = f"ina219@0x{address:02x}"

    @classmethod
    def for_board(cls, board: str, **overrides: Any) -> Ina219Gauge:
        """A gauge set up like the vendor code of ``board`` (a key of PROFILES); keywords override."""
        try:
            profile = PROFILES[board]
        except KeyError:
            raise ConfigError(f"INA219: unknown board '{board}' (known: {', '.join(PROFILES)})") from None
        kwargs: dict[str, Any] = {
            "address": profile.address,
            "shunt_ohms": profile.shunt_ohms,
            "max_current_a": profile.max_current_a,
            "current_lsb_a": profile.current_lsb_a,
            "cells_in_series": profile.cells_in_series,
            "empty_point": profile.empty,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def _write_reg(self, register: int, value: int) -> None:
        self._bus.write_word_data(self.address, register, swap16(value))  # the chip takes MSB first

    def _read_reg(self, register: int) -> int:
        return swap16(self._bus.read_word_data(self.address, register))

    def _read_raw(self) -> tuple[int, int, int]:
        if not self._configured:
            self._write_reg(REG_CONFIG, self.config)
            self._configured = True
        self._write_reg(REG_CALIBRATION, self.calibration)
        config = self._read_reg(REG_CONFIG)
        if config != self.config:
            _LOG.info(
                "%s: CONFIG reads 0x%04x, expected 0x%04x: the chip was reset; reconfiguring",
                self.name,
                config,
                self.config,
            )
            self._configured = False
            raise TransientGlitch(f"{self.name} was reset (CONFIG 0x{config:04x})")
        bus_raw = self._read_reg(REG_BUS)
        shunt_raw = self._read_reg(REG_SHUNT)
        current_raw = self._read_reg(REG_CURRENT)
        if bus_raw & 0x1:
            raise TransientGlitch(f"{self.name}: math overflow flag set (BUS_VOLTAGE 0x{bus_raw:04x})")
        current = s16(current_raw) * self.current_lsb_a
        shunt_current = s16(shunt_raw) * 10e-6 / self.shunt_ohms
        tolerance = 3 * max(self.current_lsb_a, 10e-6 / self.shunt_ohms) + 0.02 * abs(shunt_current)
        if abs(current - shunt_current) > tolerance:
            raise TransientGlitch(
                f"{self.name}: CURRENT {current:+.4f} A disagrees with SHUNT_VOLTAGE/R {shunt_current:+.4f} A"
            )
        return bus_raw, shunt_raw, current_raw

    def read(self) -> BatteryReading:
        """One reading of the pack; BatteryReadError after ``retries`` failed attempts or when implausible."""
        with self._lock:
            bus_raw, shunt_raw, current_raw = retry_io(
                self._read_raw, what=self.name, retries=self.retries, backoff_s=self.backoff_s, sleep=self._sleep
            )
            t = self._clock()
        voltage = (bus_raw >> 3) * 0.004
        current = s16(current_raw) * self.current_lsb_a
        rest_cell_v = (voltage - current * self.pack_resistance_ohm) / self.cells_in_series
        _LOG.debug(
            "%s: bus 0x%04x shunt 0x%04x current 0x%04x -> %.3f V %+.4f A",
            self.name,
            bus_raw,
            shunt_raw,
            current_raw,
            voltage,
            current,
        )
        reading = BatteryReading(
            t_monotonic=t,
            voltage_v=voltage,
            current_a=current,
            power_w=voltage * current,
            soc_pct=soc_from_cell_voltage(self.curve, rest_cell_v),
            charging=current > self.current_threshold_a,
            external_power=current > -self.current_threshold_a,
            source=self.name,
            soc_estimated=True,
            cell_voltage_v=voltage / self.cells_in_series,
        )
        chip_max = 32.0 if self.config & 0x2000 else 16.0
        return check_plausible(
            reading,
            cells_in_series=self.cells_in_series,
            limits=self.limits,
            board_max_current_a=self.max_current_a,
            chip_max_voltage_v=chip_max,
        )

    def close(self) -> None:
        """Release the I2C bus."""
        self._bus.close()
