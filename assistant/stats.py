"""Summaries of measured figures: percentiles and ratios, one definition for every report."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], pct: float) -> float | None:
    """Linear-interpolated percentile between order statistics (numpy's default); None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def median(values: Iterable[float]) -> float | None:
    """The 50th percentile; None for no values."""
    return percentile(values, 50.0)


def p95(values: Iterable[float]) -> float | None:
    """The 95th percentile; None for no values."""
    return percentile(values, 95.0)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b
