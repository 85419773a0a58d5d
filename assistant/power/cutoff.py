"""When the pack counts as empty, and where the power comes from: the one cut-off every decision reads.

The tier policy (its ``shutdown`` tier), the appliance's power-off and the drain test all ask
``is_empty`` with the same ``EmptyPoint``. Pure: no I/O (the measured point is stored by
``power/empty_store.py``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Literal

from assistant.messages import BatteryReading

_LOG = logging.getLogger(__name__)

PowerSource = Literal["external", "battery", "unknown"]

DISCHARGE_A = 0.05
"""A pack current below minus this (A) is a discharge: the pack feeds the device, whatever an
external-power flag says. The UPS HAT (E) vendor code uses the same 50 mA to tell discharge from noise."""

MARGIN_SOC_PCT = 2.0
"""Leaving "empty" (the low-battery alarm, the shutdown tier) needs this much state of charge
above the empty point (%-points), so a reading wandering around the threshold switches once."""
MARGIN_CELL_V = 0.05
"""The same margin on the cell voltage (V per cell)."""


@dataclass(frozen=True)
class EmptyPoint:
    """The pack is empty at or below either figure (on battery): the appliance powers off there,
    the tier policy answers "shutdown" there and a drain run ends there."""

    soc_pct: float | None
    """State of charge at which the pack counts as empty (%); None: the voltage alone decides."""
    cell_voltage_v: float | None
    """Voltage of the weakest cell at which the pack counts as empty (V, under the load of the
    moment); None: the state of charge alone decides."""
    source: str = "built-in"
    """Where the figures come from, for the log and the reports (a board preset, the config file,
    a drain run that measured the pack's brown-out)."""

    def __post_init__(self) -> None:
        if self.soc_pct is None and self.cell_voltage_v is None:
            raise ValueError("an empty point needs a state of charge, a cell voltage or both")
        if self.soc_pct is not None and not 0.0 <= self.soc_pct < 100.0:
            raise ValueError(f"empty state of charge {self.soc_pct} is outside 0..100 %")
        if self.cell_voltage_v is not None and not 2.5 <= self.cell_voltage_v <= 4.2:
            raise ValueError(f"empty cell voltage {self.cell_voltage_v} V is outside 2.5..4.2 V")

    def raised(self) -> EmptyPoint:
        """The point plus the margins: a pack is back above "empty" only once it is above this."""
        return replace(
            self,
            soc_pct=None if self.soc_pct is None else min(99.0, self.soc_pct + MARGIN_SOC_PCT),
            cell_voltage_v=None if self.cell_voltage_v is None else self.cell_voltage_v + MARGIN_CELL_V,
        )

    def describe(self) -> str:
        """``SoC 5 % or 3.20 V per cell (board preset x120x)``."""
        parts = []
        if self.soc_pct is not None:
            parts.append(f"SoC {self.soc_pct:g} %")
        if self.cell_voltage_v is not None:
            parts.append(f"{self.cell_voltage_v:.2f} V per cell")
        return f"{' or '.join(parts)} ({self.source})"


DEFAULT_EMPTY = EmptyPoint(soc_pct=5.0, cell_voltage_v=3.2, source="built-in default")
"""For a gauge with no board preset of its own: 5 % or 3.20 V per cell (the X120x vendor's figure)."""


def merge(preset: EmptyPoint, *, soc_pct: float | None, cell_voltage_v: float | None, where: str) -> EmptyPoint:
    """``preset`` with the figures a configuration sets (each one that is not None) put in its place."""
    if soc_pct is None and cell_voltage_v is None:
        return preset
    return EmptyPoint(
        soc_pct=soc_pct if soc_pct is not None else preset.soc_pct,
        cell_voltage_v=cell_voltage_v if cell_voltage_v is not None else preset.cell_voltage_v,
        source=where if (soc_pct is not None and cell_voltage_v is not None) else f"{where}, else {preset.source}",
    )


def power_source(reading: BatteryReading) -> PowerSource:
    """Where the device draws its power from, by the best evidence in one reading.

    A measured discharge (current below ``-DISCHARGE_A``) means battery whatever the flags say: an
    external supply too weak for the load, or a USB-C port that is sourcing power (the UPS HAT (E)'s
    is bidirectional), leaves the pack feeding the device. Otherwise ``charging`` means external
    power (a pack cannot charge from itself); then the gauge's external-power flag decides (PLD line,
    VBUS, pisugar-server); then the sign of the current. With none of these the source is unknown.
    """
    current = reading.current_a
    known_current = current is not None and math.isfinite(current)
    if known_current and current is not None and current < -DISCHARGE_A:
        return "battery"
    if reading.charging:
        return "external"
    if reading.external_power is not None:
        return "external" if reading.external_power else "battery"
    if known_current and current is not None:
        return "battery" if current < 0 else "external"
    return "unknown"


def is_empty(reading: BatteryReading, point: EmptyPoint, *, strict: bool = False) -> tuple[bool, str]:
    """Whether the reading is at or below the empty point, and the evidence in words.

    Either figure at or below its threshold makes the pack empty; with ``strict`` (the power source
    is unknown, so the device may be plugged in) every figure the reading has must be, so a low SoC
    estimate alone or a sagging voltage alone never counts. A reading with neither figure is not empty.
    """
    hits: list[str] = []
    misses: list[str] = []
    soc = reading.soc_pct
    if point.soc_pct is not None and soc is not None and math.isfinite(soc):
        low = soc <= point.soc_pct
        (hits if low else misses).append(f"SoC {soc:.1f} % {'<=' if low else '>'} {point.soc_pct:g} %")
    cell = reading.cell_voltage_v
    if point.cell_voltage_v is not None and cell is not None and math.isfinite(cell) and cell > 0:
        low = cell <= point.cell_voltage_v
        (hits if low else misses).append(f"cell {cell:.3f} V {'<=' if low else '>'} {point.cell_voltage_v:.2f} V")
    empty = bool(hits) and not (strict and misses)
    return empty, ", ".join(hits + misses) or "no SoC or cell voltage in the reading"
