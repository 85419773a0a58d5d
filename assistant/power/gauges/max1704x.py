"""Battery gauge for Geekworm/SupTronics X120x and X728 UPS boards: MAX1704x fuel gauge plus power-loss GPIO."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.errors import BatteryReadError, ConfigError
from assistant.messages import BatteryReading
from assistant.power.cutoff import DEFAULT_EMPTY, EmptyPoint
from assistant.power.gauges.base import (
    GaugeBase,
    DEFAULT_LIMITS,
    LazySMBus,
    PlausibilityLimits,
    RegisterBus,
    check_plausible,
    retry_io,
    s16,
    swap16,
)

_LOG = logging.getLogger(__name__)

REG_VCELL, REG_SOC, REG_VERSION, REG_CRATE = 0x02, 0x04, 0x08, 0x16
VCELL_LSB_V = 78.125e-6
CRATE_LSB_PCT_H = 0.208
CHARGING_CRATE_PCT_H = 0.5
"""CRATE above this (%/h) counts as charging: two LSBs and a little, above the gauge's noise."""


@dataclass(frozen=True)
class Max1704xBoard:
    """How a board wires its power-loss-detect (PLD) line (hardware.md section 1.3)."""

    pld_pin: int
    """BCM GPIO number of the PLD line."""
    pld_active_high_means_power_ok: bool
    """True when a high PLD means external power is present."""
    empty: EmptyPoint
    """Where the board's pack counts as empty."""


BOARDS: dict[str, Max1704xBoard] = {
    "x120x": Max1704xBoard(pld_pin=6, pld_active_high_means_power_ok=True,
                           empty=EmptyPoint(10.0, 3.20, "board preset x120x: the vendor's script halts at 3.20 V")),
    "x728": Max1704xBoard(pld_pin=6, pld_active_high_means_power_ok=False,
                          empty=EmptyPoint(10.0, 3.20, "board preset x728: 3.20 V, above the cells' 3.0 V "
                                                       "protection, which the vendor's script waits for")),
}
"""X120x (Pi 5): GPIO6 high = AC OK. X728 v2.x (Pi 4): GPIO6 high = AC lost (opposite polarity)."""


class Max1704xGauge(GaugeBase):
    """Reads cell voltage and the ModelGauge SoC from a MAX1704x at 0x36, and mains presence from PLD.

    Wiring: the gauge sits on I2C-1 at 0x36 across the (parallel) cells; PLD is a GPIO input driven
    by the board. The chip measures no current, so ``current_a`` is None; ``power_w`` comes from
    ``model_power`` (a callable returning the pack power in W, + charging) when given, else from
    CRATE x ``capacity_wh`` on a MAX17048/49 when the capacity is known, flagged ``power_estimated``.
    Registers are big-endian, so every SMBus word is byte-swapped. The driver only reads: it never
    writes Quick-Start (MODE) or power-on reset (CMD), which would restart the SoC estimate.
    VERSION tells only whether CRATE exists (MAX17048/49); MAX17040/41/43 report other values.
    """

    poll_period_s = 0.5
    """The ModelGauge updates VCELL and SOC every 500 ms: reading faster only repeats them."""

    def __init__(
        self,
        *,
        bus: RegisterBus | None = None,
        bus_number: int = 1,
        address: int = 0x36,
        pld_pin: int | None = 6,
        pld_active_high_means_power_ok: bool = True,
        pin_factory: Any = None,
        model_power: Callable[[], float] | None = None,
        capacity_wh: float | None = None,
        cells_in_series: int = 1,
        empty_point: EmptyPoint = DEFAULT_EMPTY,
        limits: PlausibilityLimits = DEFAULT_LIMITS,
        retries: int = 3,
        backoff_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus: RegisterBus = bus if bus is not None else LazySMBus(bus_number)
        self.address = address
        self.model_power = model_power
        self.capacity_wh = capacity_wh
        self.cells_in_series = cells_in_series
        super().__init__(limits=limits, retries=retries, backoff_s=backoff_s, sleep=sleep, clock=clock,
                         empty_point=empty_point)
        self.version: int | None = None
        """VERSION register, read at the first successful reading."""
        self.name = f"max1704x@0x{address:02x}"
        self.pld_active_high_means_power_ok = pld_active_high_means_power_ok
        self._pld: Any = None
        if pld_pin is not None:
            self._pld = self._open_pld(pld_pin, pin_factory)

    @classmethod
    def for_board(cls, board: str, **overrides: Any) -> Max1704xGauge:
        """A gauge with the PLD wiring of ``board`` (``x120x`` or ``x728``); keywords override."""
        try:
            preset = BOARDS[board]
        except KeyError:
            raise ConfigError(f"MAX1704x: unknown board '{board}' (known: {', '.join(BOARDS)})") from None
        kwargs: dict[str, Any] = {
            "pld_pin": preset.pld_pin,
            "pld_active_high_means_power_ok": preset.pld_active_high_means_power_ok,
            "empty_point": preset.empty,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def _open_pld(self, pin: int, pin_factory: Any) -> Any:
        try:
            from gpiozero import DigitalInputDevice, GPIOZeroError
        except ImportError as exc:
            raise BatteryReadError(f"{self.name}: gpiozero is needed for the power-loss line GPIO{pin}") from exc
        try:
            return DigitalInputDevice(pin, pull_up=None, active_state=True, pin_factory=pin_factory)
        except (GPIOZeroError, OSError) as exc:
            raise BatteryReadError(f"{self.name}: cannot open power-loss line GPIO{pin}: {exc}") from exc

    @property
    def has_crate(self) -> bool:
        """True for MAX17048/49 (VERSION 0x001x), which have the CRATE register."""
        return self.version is not None and self.version & 0xFFF0 == 0x0010

    def _read_word(self, register: int) -> int:
        return swap16(self._bus.read_word_data(self.address, register))

    def _read_raw(self) -> tuple[int, int, int | None]:
        if self.version is None:
            version = self._read_word(REG_VERSION)
            self.version = version
            if version & 0xFFF0 == 0x0010:
                _LOG.info("%s: MAX17048/49 (VERSION 0x%04x): CRATE available", self.name, version)
            else:
                _LOG.info("%s: VERSION 0x%04x (older MAX1704x): no CRATE register", self.name, version)
        vcell = self._read_word(REG_VCELL)
        soc = self._read_word(REG_SOC)
        crate = self._read_word(REG_CRATE) if self.has_crate else None
        return vcell, soc, crate

    def external_power(self) -> bool | None:
        """Whether the PLD line reports external power; None without a PLD line."""
        if self._pld is None:
            return None
        high = bool(self._pld.value)
        return high if self.pld_active_high_means_power_ok else not high

    def read(self) -> BatteryReading:
        """One reading; BatteryReadError after ``retries`` failed attempts or when implausible."""
        with self._lock:
            vcell, soc_raw, crate_raw = retry_io(
                self._read_raw, what=self.name, retries=self.retries, backoff_s=self.backoff_s, sleep=self._sleep
            )
            t = self._clock()
            external = self.external_power()
        voltage = vcell * VCELL_LSB_V * self.cells_in_series
        soc = soc_raw / 256.0
        crate = s16(crate_raw) * CRATE_LSB_PCT_H if crate_raw is not None else None
        charging: bool | None = None
        if crate is not None:
            charging = crate > CHARGING_CRATE_PCT_H and external is not False
        elif external is False:
            charging = False
        power: float | None = None
        if self.model_power is not None:
            power = float(self.model_power())
        elif crate is not None and self.capacity_wh is not None:
            power = crate / 100.0 * self.capacity_wh
        _LOG.debug("%s: VCELL 0x%04x SOC 0x%04x CRATE %s PLD %s", self.name, vcell, soc_raw, crate_raw, external)
        reading = BatteryReading(
            t_monotonic=t,
            voltage_v=voltage,
            current_a=None,
            power_w=power,
            soc_pct=soc,
            charging=charging,
            external_power=external,
            source=self.name,
            soc_estimated=False,
            power_estimated=power is not None,
            cell_voltage_v=vcell * VCELL_LSB_V,
        )
        return check_plausible(
            reading, cells_in_series=self.cells_in_series, limits=self.limits, board_max_current_a=None
        )

    def close(self) -> None:
        """Release the I2C bus and the PLD line."""
        if self._pld is not None:
            self._pld.close()
            self._pld = None
        self._bus.close()
