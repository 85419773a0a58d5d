"""The energy meter: samples the battery gauge in a thread, integrates discharge power, attributes joules."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from assistant.errors import BatteryReadError
from assistant.messages import BatteryReading

_LOG = logging.getLogger(__name__)

GAP_FACTOR = 5.0
"""A sample interval longer than this many periods is a gap: logged, held, flagged as estimated."""


class ReadingSource(Protocol):
    """What the meter needs from a gauge."""

    def read(self) -> BatteryReading: ...


@dataclass(frozen=True)
class EnergyMark:
    """A point on the meter's cumulative discharge-energy curve."""

    t: float
    """Meter clock (``time.monotonic()``) when the mark was taken (s)."""
    joules: float
    """Cumulative discharge energy at ``t`` (J), extrapolated from the last sample."""
    estimated_segments: int
    """Cumulative count of sample intervals whose power was estimated (or held over a gap)."""
    measured: bool
    """The power at the mark came from a current measurement (not a model, a SoC step or a gap)."""


@dataclass(frozen=True)
class EnergySpan:
    """Energy drawn from the pack between two marks."""

    joules: float
    """Discharge energy (J)."""
    seconds: float
    """Length of the span (s)."""
    measured: bool
    """True when every sample interval in the span had measured power (V x I from the gauge)."""

    @property
    def mean_w(self) -> float:
        """Mean discharge power over the span (W)."""
        return self.joules / self.seconds if self.seconds > 0 else 0.0


def _segment(p0: float, p1: float, dt: float) -> float:
    return 0.5 * (p0 + p1) * dt


def integrate(samples: Sequence[tuple[float, float]]) -> float:
    """Trapezoid integral of ``(t_s, power_w)`` samples (J); intervals with dt <= 0 are ignored."""
    total = 0.0
    for (t0, p0), (t1, p1) in zip(samples, samples[1:]):
        if t1 > t0:
            total += _segment(p0, p1, t1 - t0)
    return total


@dataclass(frozen=True)
class _Sample:
    t: float
    """Sample time (s)."""
    p: float
    """Discharge power (W), >= 0."""
    p_est: bool
    """The power was estimated, not measured."""
    e: float
    """Cumulative discharge energy at t (J)."""
    est: int
    """Cumulative count of estimated intervals up to t."""
    kind: str
    """How the interval ending here was integrated: ``trap``, ``hold`` (gap) or ``soc`` (SoC step)."""


class EnergyMeter:
    """Samples ``gauge.read()`` at ``1/period_s`` Hz in a background thread and integrates discharge power.

    Power of a reading, in order of preference:

    - measured: ``power_w`` (or ``voltage_v * current_a``) from a gauge with a current sensor (never
      from a ``simulated`` reading, whose figures are all its model's);
    - estimated: ``power_model()`` (discharge watts, e.g. from what the appliance is doing);
    - estimated: the reading's own modelled ``power_w``;
    - estimated: the drop in state of charge times ``usable_energy_j`` (coarse: the energy arrives
      in steps of the gauge's SoC resolution; good for long totals, not for one turn).

    Discharge power is ``max(0, -P)`` (readings are negative while discharging). Energy is the
    trapezoid rule between samples; an interval longer than ``GAP_FACTOR`` periods is held at the
    previous power and flagged estimated. Gauge errors are counted and never reach the caller: the
    last good reading is kept with its age. ``mark()``/``between()`` attribute energy to turns.
    """

    def __init__(
        self,
        gauge: ReadingSource,
        *,
        period_s: float = 0.1,
        usable_energy_j: float,
        power_model: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        history_s: float = 900.0,
    ) -> None:
        if period_s <= 0 or usable_energy_j <= 0:
            raise ValueError("period_s and usable_energy_j must be positive")
        self.gauge = gauge
        self.period_s = period_s
        """Nominal sampling period (s)."""
        self.usable_energy_j = usable_energy_j
        """Usable pack energy (J), used to turn a SoC drop into joules."""
        self.power_model = power_model
        self.clock = clock
        self.read_errors = 0
        """Gauge reads that failed."""
        self.gaps = 0
        """Sample intervals longer than ``GAP_FACTOR`` periods."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._history: deque[_Sample] = deque(maxlen=max(16, int(history_s / period_s)))
        self._last_reading: BatteryReading | None = None
        self._last_soc: float | None = None
        self._error_streak = 0
        self._turn_j = 0.0

    # -- sampling -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sampling thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="energy-meter", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the sampling thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _LOG.warning("energy meter thread did not stop within %.1f s", timeout_s)
            self._thread = None

    def _run(self) -> None:
        next_at = self.clock()
        while not self._stop.is_set():
            self.poll()
            next_at += self.period_s
            now = self.clock()
            if next_at < now:  # fell behind (slow gauge, busy CPU): do not try to catch up
                next_at = now
            self._stop.wait(next_at - now)

    def poll(self) -> None:
        """Take one sample now (the thread calls this; tests may call it directly). Never raises."""
        try:
            reading = self.gauge.read()
        except BatteryReadError as exc:
            self._read_failed(str(exc))
            return
        except Exception as exc:  # a driver bug must not kill the meter thread
            _LOG.exception("energy meter: unexpected error from the gauge")
            self._read_failed(f"{type(exc).__name__}: {exc}")
            return
        if self._error_streak:
            _LOG.info("energy meter: gauge readable again after %d failed reads", self._error_streak)
            self._error_streak = 0
        self.add_reading(reading)

    def _read_failed(self, message: str) -> None:
        with self._lock:
            self.read_errors += 1
            self._error_streak += 1
        if self._error_streak == 1:
            _LOG.warning("energy meter: gauge read failed (%s); keeping the last good reading", message)

    def _power(self, reading: BatteryReading) -> tuple[float, bool] | None:
        """(discharge W, estimated?) for one reading; None when only the SoC can tell."""
        measured = not reading.simulated  # a simulated pack's V, I and P are all its model's
        if measured and reading.power_w is not None and not reading.power_estimated:
            return max(0.0, -reading.power_w), False
        if measured and reading.current_a is not None:
            return max(0.0, -reading.voltage_v * reading.current_a), False
        if self.power_model is not None:
            return max(0.0, float(self.power_model())), True
        if reading.power_w is not None:
            return max(0.0, -reading.power_w), True
        return None

    def add_reading(self, reading: BatteryReading) -> None:
        """Integrate one reading, timestamped by its ``t_monotonic``."""
        t = reading.t_monotonic
        power = self._power(reading)
        with self._lock:
            prev = self._history[-1] if self._history else None
            self._last_reading = reading
            if prev is not None and t <= prev.t:
                return  # a cached reading handed back again: nothing new to integrate
            soc, last_soc = reading.soc_pct, self._last_soc
            if soc is not None:
                self._last_soc = soc
            if prev is None:
                p, p_est = power if power is not None else (0.0, True)
                self._history.append(_Sample(t, p, p_est, 0.0, 0, "trap"))
                return
            dt = t - prev.t
            if power is None:
                drop = 0.0
                if soc is not None and last_soc is not None:
                    drop = max(0.0, last_soc - soc) / 100.0 * self.usable_energy_j
                self._history.append(_Sample(t, drop / dt, True, prev.e + drop, prev.est + 1, "soc"))
                return
            p, p_est = power
            if dt > GAP_FACTOR * self.period_s:
                self.gaps += 1
                _LOG.warning("energy meter: %.2f s between samples (period %.2f s); holding %.2f W over the gap",
                             dt, self.period_s, prev.p)
                energy, kind, est = prev.p * dt, "hold", True
            else:
                energy, kind, est = _segment(prev.p, p, dt), "trap", p_est or prev.p_est
            self._history.append(_Sample(t, p, p_est, prev.e + energy, prev.est + int(est), kind))

    # -- attribution --------------------------------------------------------------------------

    def _at(self, t: float) -> tuple[float, int, int]:
        """(cumulative J at t, estimated intervals before t's interval, through t's interval)."""
        h = self._history
        if not h:
            return 0.0, 0, 0
        last = h[-1]
        if t >= last.t:
            held = last.kind == "soc" or t - last.t > GAP_FACTOR * self.period_s
            rate = 0.0 if last.kind == "soc" else last.p
            extra = int(t > last.t and (held or last.p_est))
            return last.e + rate * (t - last.t), last.est, last.est + extra
        if t <= h[0].t:
            return h[0].e, h[0].est, h[0].est
        lo, hi = 0, len(h) - 1  # find the interval (h[lo].t, h[hi].t] holding t
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if h[mid].t < t:
                lo = mid
            else:
                hi = mid
        a, b = h[lo], h[hi]
        if t == b.t:
            return b.e, b.est, b.est
        tau, span = t - a.t, b.t - a.t
        if b.kind == "trap":
            e = a.e + a.p * tau + (b.p - a.p) * tau * tau / (2 * span)
        else:
            e = a.e + (b.e - a.e) * tau / span
        return e, a.est, b.est

    def mark(self) -> EnergyMark:
        """The cumulative energy now (extrapolated from the last sample at its power)."""
        t = self.clock()
        with self._lock:
            e, _, through = self._at(t)
            last = self._history[-1] if self._history else None
            measured = (last is not None and not last.p_est and last.kind == "trap"
                        and t - last.t <= GAP_FACTOR * self.period_s)
        return EnergyMark(t=t, joules=e, estimated_segments=through, measured=measured)

    def between(self, a: EnergyMark, b: EnergyMark) -> EnergySpan:
        """Energy drawn between two marks, re-evaluated from the samples when they are still held."""
        with self._lock:
            h = self._history
            if h and h[0].t <= a.t:
                ea, est_a, _ = self._at(a.t)
                eb, _, est_b = self._at(b.t)
            else:
                ea, est_a, eb, est_b = a.joules, a.estimated_segments, b.joules, b.estimated_segments
        joules = max(0.0, eb - ea)
        return EnergySpan(joules=joules, seconds=max(0.0, b.t - a.t), measured=bool(h) and est_b == est_a)

    def record_turn(self, a: EnergyMark, b: EnergyMark) -> EnergySpan:
        """``between(a, b)``, also counted as turn energy (the rest of ``total_j`` is idle)."""
        span = self.between(a, b)
        with self._lock:
            self._turn_j += span.joules
        return span

    @property
    def total_j(self) -> float:
        """Discharge energy since the first sample (J)."""
        with self._lock:
            return self._history[-1].e if self._history else 0.0

    @property
    def idle_j(self) -> float:
        """``total_j`` minus the energy of the turns passed to ``record_turn`` (J)."""
        with self._lock:
            total = self._history[-1].e if self._history else 0.0
            return max(0.0, total - self._turn_j)

    @property
    def estimated(self) -> bool:
        """The latest power figure is an estimate (no current sensor, or a gap)."""
        with self._lock:
            return not self._history or self._history[-1].p_est or self._history[-1].kind != "trap"

    def last_reading(self) -> BatteryReading | None:
        """The last good reading (possibly old when the gauge fails; see ``reading_age_s``)."""
        with self._lock:
            return self._last_reading

    def reading_age_s(self) -> float | None:
        """Seconds since the last good reading was taken; None before the first one."""
        with self._lock:
            r = self._last_reading
        return None if r is None else max(0.0, self.clock() - r.t_monotonic)
