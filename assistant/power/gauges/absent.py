"""The appliance's gauge on a device: the real one, or an honest absence that keeps looking for it.

On a device the battery must never be simulated: with no gauge the appliance runs as on external
power (richest tier, no power-off) and says so, while ``AbsentGauge`` probes again in the
background, so a HAT that appears or a pisugar-server that starts late is picked up without a
restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from assistant.errors import BatteryReadError
from assistant.messages import BatteryReading
from assistant.power.battery_config import BatteryConfig
from assistant.power.cutoff import DEFAULT_EMPTY, EmptyPoint
from assistant.power.gauges.base import Gauge
from assistant.power.gauges.detect import open_gauge

_LOG = logging.getLogger(__name__)

REPROBE_S = 30.0
"""How often a missing gauge is looked for again (s)."""

NAME = "none"
"""``Gauge.name`` while no gauge is found."""


class AbsentGauge:
    """Stands where the gauge should be: every read raises until ``reopen`` finds the real gauge,
    tried at most every ``reprobe_s`` seconds (the energy meter's polling drives it); from then on
    it reads through that gauge."""

    def __init__(self, why: str, reopen: Callable[[], Gauge], *, reprobe_s: float = REPROBE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.why = why
        """Why no gauge is there (the last probe's error)."""
        self._reopen = reopen
        self.reprobe_s = reprobe_s
        self._clock = clock
        self._next_probe = clock() + reprobe_s
        self._lock = threading.Lock()
        self.found: Gauge | None = None
        """The real gauge once a probe found it."""
        self.probes = 0
        """Probes tried since the start."""

    @property
    def name(self) -> str:
        return self.found.name if self.found is not None else NAME

    @property
    def empty_point(self) -> EmptyPoint:
        return self.found.empty_point if self.found is not None else DEFAULT_EMPTY

    @property
    def poll_period_s(self) -> float:
        return self.found.poll_period_s if self.found is not None else 1.0

    def _probe(self) -> None:
        now = self._clock()
        if now < self._next_probe:
            return
        self._next_probe = now + self.reprobe_s
        self.probes += 1
        try:
            gauge = self._reopen()
        except BatteryReadError as exc:
            if str(exc) != self.why:
                _LOG.info("battery gauge still missing: %s", exc)
            self.why = str(exc)
            return
        self.found = gauge
        _LOG.warning("battery gauge %s found after %d probes: battery decisions are live again", gauge.name,
                     self.probes)

    def read(self) -> BatteryReading:
        """The real gauge's reading; BatteryReadError while there is none."""
        with self._lock:
            if self.found is None:
                self._probe()
            gauge = self.found
        if gauge is None:
            raise BatteryReadError(f"no battery gauge: {self.why}")
        return gauge.read()

    def arm_power_restore(self) -> bool:
        return self.found.arm_power_restore() if self.found is not None else False

    def close(self) -> None:
        with self._lock:
            if self.found is not None:
                self.found.close()


def open_device_gauge(cfg: BatteryConfig, *, clock: Callable[[], float] = time.monotonic,
                      **probe: object) -> Gauge:
    """The gauge the appliance runs on: the configured or detected one, or an ``AbsentGauge`` that
    keeps looking (never the simulated pack, unless the configuration asks for ``kind: simulated``).
    ``probe`` goes to ``open_gauge`` (an emulated bus, a pin factory, the device directory)."""
    def reopen() -> Gauge:
        return open_gauge(cfg, when_missing="raise", clock=clock, **probe)  # type: ignore[arg-type]

    try:
        return reopen()
    except BatteryReadError as exc:
        _LOG.error("%s: running as on external power (richest tier, no power-off on an empty pack) and "
                   "looking for it again every %.0f s", exc, REPROBE_S)
        return AbsentGauge(str(exc), reopen, clock=clock)
