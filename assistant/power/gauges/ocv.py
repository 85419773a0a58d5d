"""Open-circuit-voltage curves of a Li-ion cell: voltage to state of charge and back."""

from __future__ import annotations

import bisect
import itertools
import logging

_LOG = logging.getLogger(__name__)

OcvCurve = tuple[tuple[float, float], ...]
"""Points ``(soc_pct, cell_volts)`` with both columns strictly increasing; linear between points."""

LI_ION_REST: OcvCurve = (
    (0.0, 3.00),
    (5.0, 3.45),
    (10.0, 3.68),
    (20.0, 3.74),
    (30.0, 3.77),
    (40.0, 3.79),
    (50.0, 3.82),
    (60.0, 3.87),
    (70.0, 3.92),
    (80.0, 3.98),
    (90.0, 4.06),
    (100.0, 4.20),
)
"""A typical resting curve of an NMC 18650/21700 cell (3.0 V cut-off, 4.2 V full). It is approximate:
the appliance's own drain test gives a better one for a given pack."""

PISUGAR_SERVER: OcvCurve = (
    (0.0, 3.10),
    (4.5, 3.32),
    (25.6, 3.49),
    (65.0, 3.70),
    (88.0, 3.90),
    (100.0, 4.16),
)
"""The points of pisugar-server's ``BATTERY_CURVE`` (loaded voltage, hardware.md section 1.5)."""


def validate_curve(curve: OcvCurve) -> OcvCurve:
    """Return ``curve`` if it has at least two points and both columns strictly increase, else raise ValueError."""
    if len(curve) < 2:
        raise ValueError("an OCV curve needs at least two (soc_pct, volts) points")
    for (s0, v0), (s1, v1) in itertools.pairwise(curve):
        if not (s1 > s0 and v1 > v0):
            raise ValueError(f"OCV curve must increase in both SoC and voltage: ({s0}, {v0}) -> ({s1}, {v1})")
    return curve


def soc_from_cell_voltage(curve: OcvCurve, cell_v: float) -> float:
    """State of charge (%) for a resting cell voltage, clamped to the curve's ends."""
    volts = [v for _, v in curve]
    if cell_v <= volts[0]:
        return curve[0][0]
    if cell_v >= volts[-1]:
        return curve[-1][0]
    i = bisect.bisect_right(volts, cell_v)
    (s0, v0), (s1, v1) = curve[i - 1], curve[i]
    return s0 + (s1 - s0) * (cell_v - v0) / (v1 - v0)


def cell_voltage_from_soc(curve: OcvCurve, soc_pct: float) -> float:
    """Resting cell voltage (V) at a state of charge, clamped to the curve's ends."""
    socs = [s for s, _ in curve]
    if soc_pct <= socs[0]:
        return curve[0][1]
    if soc_pct >= socs[-1]:
        return curve[-1][1]
    i = bisect.bisect_right(socs, soc_pct)
    (s0, v0), (s1, v1) = curve[i - 1], curve[i]
    return v0 + (v1 - v0) * (soc_pct - s0) / (s1 - s0)
