"""Battery gauge for the Waveshare UPS HAT (E): its MCU at 0x2D reports the BQ4050 gas gauge and charger state."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from assistant.errors import BatteryReadError
from assistant.messages import BatteryReading
from assistant.power.cutoff import DISCHARGE_A, EmptyPoint
from assistant.power.gauges.base import (
    GaugeBase,
    DEFAULT_LIMITS,
    LazySMBus,
    PlausibilityLimits,
    RegisterBus,
    check_plausible,
    retry_io,
)

_LOG = logging.getLogger(__name__)

CHIP_ID = 0x0A
REG_POWER_OFF = 0x01
POWER_OFF_RESTORE = 0x55
"""Written to 0x01: the MCU cuts its output about 30 s later and powers the Pi again when input
power returns (Waveshare's register table and sample)."""
EMPTY = EmptyPoint(5.0, 3.15, "board preset waveshare_e: the vendor halts when a cell is below 3.15 V "
                              "while the pack discharges")
CHARGER_STATES = ("standby", "trickle", "constant current", "constant voltage", "pending", "full", "timeout")


@dataclass(frozen=True)
class UpsHatEStatus:
    """Everything one poll of the UPS HAT (E) registers gives."""

    charging: bool
    """Bit 7 of 0x02."""
    fast_charging: bool
    """Bit 6 of 0x02."""
    vbus_flag: bool
    """Bit 5 of 0x02: "VBUS powered" in the register table; the vendor sample prints it as
    "Discharge state". ``external_power`` therefore uses ``vbus_v`` instead."""
    charger_state: str
    """Bits 2..0 of 0x02, named (``standby``, ``trickle``, ``constant current``, ... ``timeout``)."""
    gauge_link_ok: bool
    """Bit 1 of 0x03: the MCU talks to the BQ4050 gas gauge."""
    charger_link_ok: bool
    """Bit 0 of 0x03: the MCU talks to the IP2368 charger."""
    vbus_v: float
    """USB-C input voltage (V)."""
    vbus_a: float
    """USB-C input current (A)."""
    vbus_w: float
    """USB-C input power (W)."""
    pack_v: float
    """Pack voltage (V)."""
    current_a: float
    """Pack current (A), + charging."""
    soc_pct: float
    """Gas-gauge state of charge (%)."""
    remaining_mah: float
    """Remaining capacity (mAh)."""
    minutes_to_empty: int | None
    """Run time to empty (min), while discharging; None when the gauge says it is not valid."""
    minutes_to_full: int | None
    """Average time to full (min), while charging; None when not valid."""
    cells_v: tuple[float, ...]
    """Cell 1..4 voltages (V)."""


def _le(data: list[int], offset: int) -> int:
    return data[offset] | (data[offset + 1] << 8)


def _le_signed(data: list[int], offset: int) -> int:
    value = _le(data, offset)
    return value - 0x10000 if value & 0x8000 else value


class WaveshareEGauge(GaugeBase):
    """UPS HAT (E) for Pi 5/4 (4x 21700): pack V, signed current and gas-gauge % from the MCU at 0x2D.

    Registers are byte-addressed and 16-bit values little-endian (the vendor sample's
    ``data[0] | data[1] << 8``); the driver reads them as blocks like the sample does. Current is
    signed two's complement (the sample's ``-= 0xFFFF`` is one LSB off). A cleared BQ4050 link bit
    means the numbers are stale, and the reading is refused.

    External power needs VBUS above 4 V *and* a pack that is not discharging: the USB-C port is
    bidirectional (it can be charging a phone), and an under-rated supply leaves the pack feeding the
    Pi while VBUS reads 5 V. The cell voltage of a reading is the lowest of the four cells.
    """

    poll_period_s = 1.0
    """The MCU refreshes its registers from the gas gauge about once a second (the vendor polls every 2 s)."""

    def __init__(
        self,
        *,
        bus: RegisterBus | None = None,
        bus_number: int = 1,
        address: int = 0x2D,
        cells_in_series: int = 4,
        max_current_a: float = 6.0,
        limits: PlausibilityLimits = DEFAULT_LIMITS,
        retries: int = 3,
        backoff_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus: RegisterBus = bus if bus is not None else LazySMBus(bus_number)
        self.address = address
        self.cells_in_series = cells_in_series
        self.max_current_a = max_current_a
        super().__init__(limits=limits, retries=retries, backoff_s=backoff_s, sleep=sleep, clock=clock,
                         empty_point=EMPTY)
        self._id_checked = False
        self.name = f"ups_hat_e@0x{address:02x}"

    def _read_blocks(self) -> tuple[list[int], list[int], list[int], list[int]]:
        if not self._id_checked:
            chip_id = self._bus.read_byte_data(self.address, 0x00)
            if chip_id != CHIP_ID:
                raise BatteryReadError(
                    f"{self.name}: ID register 0x00 reads 0x{chip_id:02x}, not 0x{CHIP_ID:02x}: not a UPS HAT (E)"
                )
            self._id_checked = True
        flags = self._bus.read_i2c_block_data(self.address, 0x02, 2)
        vbus = self._bus.read_i2c_block_data(self.address, 0x10, 6)
        pack = self._bus.read_i2c_block_data(self.address, 0x20, 12)
        cells = self._bus.read_i2c_block_data(self.address, 0x30, 8)
        return flags, vbus, pack, cells

    def read_status(self) -> UpsHatEStatus:
        """Poll every register once; BatteryReadError after ``retries`` failed attempts."""
        with self._lock:
            flags, vbus, pack, cells = retry_io(
                self._read_blocks, what=self.name, retries=self.retries, backoff_s=self.backoff_s, sleep=self._sleep
            )
        state = flags[0] & 0x7
        tte, ttf = _le(pack, 8), _le(pack, 10)
        status = UpsHatEStatus(
            charging=bool(flags[0] & 0x80),
            fast_charging=bool(flags[0] & 0x40),
            vbus_flag=bool(flags[0] & 0x20),
            charger_state=CHARGER_STATES[state] if state < len(CHARGER_STATES) else f"unknown ({state})",
            gauge_link_ok=bool(flags[1] & 0x2),
            charger_link_ok=bool(flags[1] & 0x1),
            vbus_v=_le(vbus, 0) / 1000.0,
            vbus_a=_le(vbus, 2) / 1000.0,
            vbus_w=_le(vbus, 4) / 1000.0,
            pack_v=_le(pack, 0) / 1000.0,
            current_a=_le_signed(pack, 2) / 1000.0,
            soc_pct=float(_le(pack, 4)),
            remaining_mah=float(_le(pack, 6)),
            minutes_to_empty=None if tte == 0xFFFF else tte,
            minutes_to_full=None if ttf == 0xFFFF else ttf,
            cells_v=tuple(_le(cells, 2 * i) / 1000.0 for i in range(4)),
        )
        _LOG.debug("%s: %s", self.name, status)
        return status

    def read(self) -> BatteryReading:
        """One reading of the pack; BatteryReadError when unreadable, stale or implausible."""
        status = self.read_status()
        if not status.gauge_link_ok:
            _LOG.warning("%s: the MCU reports no link to its BQ4050 gas gauge", self.name)
            raise BatteryReadError(f"{self.name}: the HAT's MCU has lost its gas gauge (0x03 bit 1 clear)")
        reading = BatteryReading(
            t_monotonic=self._clock(),
            voltage_v=status.pack_v,
            current_a=status.current_a,
            power_w=status.pack_v * status.current_a,
            soc_pct=status.soc_pct,
            charging=status.charging or status.fast_charging,
            external_power=status.vbus_v > 4.0 and status.current_a > -DISCHARGE_A,
            source=self.name,
            soc_estimated=False,
            cell_voltage_v=self._weakest_cell(status),
        )
        return check_plausible(
            reading, cells_in_series=self.cells_in_series, limits=self.limits, board_max_current_a=self.max_current_a
        )

    def _weakest_cell(self, status: UpsHatEStatus) -> float:
        """The lowest cell voltage; the pack voltage per cell when a cell reads implausibly (not wired)."""
        cells = status.cells_v[: self.cells_in_series]
        if len(cells) == self.cells_in_series and all(
                self.limits.min_cell_v <= v <= self.limits.max_cell_v for v in cells):
            return min(cells)
        _LOG.debug("%s: cell voltages %s not all plausible; using the pack average", self.name, cells)
        return status.pack_v / self.cells_in_series

    def arm_power_restore(self) -> bool:
        """Write 0x55 to 0x01: the HAT cuts its output about 30 s from now (time for the halt) and
        powers the Pi on again when input power returns. True when the write went through."""
        with self._lock:
            try:
                retry_io(lambda: self._bus.write_byte_data(self.address, REG_POWER_OFF, POWER_OFF_RESTORE),
                         what=self.name, retries=self.retries, backoff_s=self.backoff_s, sleep=self._sleep)
            except BatteryReadError as exc:
                _LOG.error("%s: cannot arm the power cut and restart: %s", self.name, exc)
                return False
        _LOG.warning("%s: output cut armed (about 30 s); the Pi restarts when input power returns", self.name)
        return True

    def close(self) -> None:
        """Release the I2C bus."""
        self._bus.close()
