"""Energy of a span of work: from the battery gauge when it measures current, else the simulated pack's power model."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from assistant.power.battery_config import BatteryConfig
from assistant.power.energy import EnergyMark, EnergyMeter
from assistant.errors import BatteryReadError
from assistant.power.gauges import Gauge, open_gauge
from assistant.power.gauges.detect import simulated_pack
from assistant.sim.pack import SimulatedPack

_LOG = logging.getLogger(__name__)


def power_model_label(battery: BatteryConfig) -> str:
    """How energy is computed without a gauge, said plainly (the constants are the simulated pack's)."""
    sim = battery.simulated
    return (f"power model, not measured: board {sim.idle_w:g} W idle + {sim.w_per_busy_core:g} W per busy core "
            f"(Raspberry Pi 5 figures) over this process's CPU use, boost efficiency {sim.boost_efficiency:g}")


@dataclass(frozen=True)
class SpanEnergy:
    """Energy drawn from the pack over one span of work."""

    joules: float
    """Pack-side energy (J), converter losses included."""
    seconds: float
    """Length of the span (s)."""
    busy_cores: float | None
    """CPU time of this process over the span's wall time (power model only)."""
    measured: bool
    """True when a gauge measured current over the whole span."""


class EnergyProbe:
    """Measures spans with ``start()``/``stop()``.

    With a gauge that has a current sensor (a UPS HAT on the Pi) an ``EnergyMeter`` samples it in a
    thread and the span's joules are the board's measured draw. Without one (``battery.kind``
    resolves to the simulated pack), the pack's own power model is integrated over the span with
    ``time_scale`` 1 and the charger unplugged: board power = idle + per-core power x the busy cores
    this process really used (CPU time / wall time, every thread counted), divided by the boost
    efficiency. The figures are then labelled as a model, never as a measurement.
    """

    def __init__(self, battery: BatteryConfig, *, gauge: Gauge | None = None) -> None:
        self.battery = battery
        self._gauge: Gauge = gauge if gauge is not None else open_gauge(battery)
        self._pack: SimulatedPack | None = None
        self._meter: EnergyMeter | None = None
        if _simulated(self._gauge):
            self._gauge.close()
            sim = replace(battery.simulated, time_scale=1.0, external_power=False, start_soc_pct=100.0)
            self._pack = simulated_pack(replace(battery, simulated=sim))
            self.source = power_model_label(battery)
        else:
            self._meter = EnergyMeter(self._gauge, usable_energy_j=battery.usable_wh * 3600.0)
            self._meter.start()
            self.source = f"measured by the battery gauge {self._gauge.name}"
        self._start_wh = 0.0
        self._start_t = 0.0
        self._start_cpu = 0.0
        self._mark: EnergyMark | None = None

    @property
    def modelled(self) -> bool:
        """True when the figures come from the power model."""
        return self._pack is not None

    def start(self) -> None:
        """Begin a span."""
        if self._pack is not None:
            self._pack.step()
            self._start_wh = self._pack.energy_drawn_wh
        else:
            assert self._meter is not None
            self._meter.poll()
            self._mark = self._meter.mark()
        self._start_t = time.monotonic()
        self._start_cpu = time.process_time()

    def stop(self) -> SpanEnergy:
        """End the span begun by ``start()`` and return its energy."""
        seconds = time.monotonic() - self._start_t
        if self._pack is not None:
            self._pack.step()
            joules = (self._pack.energy_drawn_wh - self._start_wh) * 3600.0
            busy = (time.process_time() - self._start_cpu) / seconds if seconds > 0 else 0.0
            return SpanEnergy(joules=joules, seconds=seconds, busy_cores=busy, measured=False)
        assert self._meter is not None and self._mark is not None
        self._meter.poll()
        span = self._meter.between(self._mark, self._meter.mark())
        if not span.measured:
            self.source = f"estimated by the battery gauge {self._gauge.name} (no current sensor or a gap)"
        return SpanEnergy(joules=span.joules, seconds=span.seconds, busy_cores=None, measured=span.measured)

    def close(self) -> None:
        """Stop the meter and release the gauge."""
        if self._meter is not None:
            self._meter.stop()
        self._gauge.close()


def _simulated(gauge: Gauge) -> bool:
    """The gauge's readings say they are a simulation (a gauge that cannot be read is not one)."""
    try:
        return gauge.read().simulated
    except BatteryReadError:
        return False
