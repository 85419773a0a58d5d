"""A simulated battery pack whose drain follows this process's real CPU use, or a given power profile."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from assistant.errors import ConfigError
from assistant.messages import BatteryReading
from assistant.power.battery_config import REFERENCE_PACK_WH, SimulatedPackConfig
from assistant.power.cutoff import DEFAULT_EMPTY, EmptyPoint
from assistant.power.gauges.base import DEFAULT_LIMITS, PlausibilityLimits, check_plausible
from assistant.power.gauges.ocv import LI_ION_REST, OcvCurve, cell_voltage_from_soc, validate_curve

_LOG = logging.getLogger(__name__)

_DEFAULTS = SimulatedPackConfig()
"""The pack's physical defaults are the configuration's (battery.simulated), sources cited there."""


class SimulatedPack:
    """A Li-ion pack feeding a Pi 5 through a boost converter, for running the appliance without a HAT.

    Board power is ``idle_w + w_per_busy_core x busy cores``, where busy cores is the CPU time this
    process really used (``cpu_time_fn``, default ``time.process_time``, which counts every thread)
    over the wall time between two steps, capped at ``max_cores``; or, when ``power_profile`` is
    given, ``power_profile(t)`` with ``t`` the simulated seconds since start. The pack supplies
    board power / ``boost_efficiency``. Energy is integrated at every ``read()``/``step()`` over the
    elapsed wall time x ``time_scale`` (so a full discharge can take minutes), in sub-steps of at
    most ``max_step_s`` simulated seconds. Terminal voltage is OCV(SoC) x cells -/+ I x R, the
    current solving P = V x I. With ``external_power`` the board runs from the charger and the pack
    charges at ``charge_w`` (tapering linearly to 0 between 90 and 100 %). An empty pack cuts out:
    current and power read 0. Every reading says ``simulated=True`` (and its power is a model,
    ``power_estimated=True``): nothing in it was measured.
    Readings keep wall-clock timestamps and physical V, I and P, so with ``time_scale`` != 1 a meter
    integrating them over wall time must multiply by ``time_scale``; ``energy_drawn_wh`` is exact.
    """

    poll_period_s = 0.1
    """The model is stepped at every reading: 10 Hz follows the CPU load closely."""

    def __init__(
        self,
        *,
        capacity_wh: float = REFERENCE_PACK_WH,
        start_soc_pct: float = 100.0,
        cells_in_series: int = 2,
        ocv_curve: OcvCurve = LI_ION_REST,
        internal_resistance_ohm: float = _DEFAULTS.internal_resistance_ohm,
        idle_w: float = _DEFAULTS.idle_w,
        w_per_busy_core: float = _DEFAULTS.w_per_busy_core,
        boost_efficiency: float = _DEFAULTS.boost_efficiency,
        time_scale: float = 1.0,
        cpu_time_fn: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        external_power: bool = False,
        power_profile: Callable[[float], float] | None = None,
        charge_w: float = _DEFAULTS.charge_w,
        max_cores: int = 4,
        max_step_s: float = 1.0,
        limits: PlausibilityLimits = DEFAULT_LIMITS,
        empty_point: EmptyPoint = DEFAULT_EMPTY,
    ) -> None:
        if capacity_wh <= 0 or time_scale <= 0 or not 0 < boost_efficiency <= 1 or cells_in_series < 1:
            raise ConfigError(
                f"simulated pack: capacity_wh ({capacity_wh}), time_scale ({time_scale}) and cells_in_series "
                f"({cells_in_series}) must be positive and boost_efficiency ({boost_efficiency}) in (0, 1]"
            )
        if not 0 <= start_soc_pct <= 100:
            raise ConfigError(f"simulated pack: start_soc_pct {start_soc_pct} is outside 0..100")
        self.capacity_wh = capacity_wh
        self.cells_in_series = cells_in_series
        self.curve = validate_curve(ocv_curve)
        self.internal_resistance_ohm = internal_resistance_ohm
        self.idle_w = idle_w
        self.w_per_busy_core = w_per_busy_core
        self.boost_efficiency = boost_efficiency
        self.time_scale = time_scale
        self.power_profile = power_profile
        self.charge_w = charge_w
        self.max_cores = max_cores
        self.max_step_s = max_step_s
        self.limits = limits
        self.empty_point = empty_point
        """Where the simulated pack counts as empty."""
        self._cpu = cpu_time_fn if cpu_time_fn is not None else time.process_time
        self._clock = clock
        self._external = external_power
        self._lock = threading.Lock()
        self._energy_wh = capacity_wh * start_soc_pct / 100.0
        self._t_wall = clock()
        self._t_cpu = self._cpu()
        self.sim_time_s = 0.0
        """Simulated seconds since the pack was created."""
        self.energy_drawn_wh = 0.0
        """Energy taken out of the pack so far (Wh), converter losses included."""
        self.energy_charged_wh = 0.0
        """Energy put into the pack so far (Wh)."""
        self.busy_cores = 0.0
        """Busy cores measured over the last step (CPU-driven mode)."""
        self.load_w = idle_w
        """Board power at the end of the last step (W, at the 5 V side)."""
        self._empty_logged = False
        self.name = "simulated"

    @property
    def soc_pct(self) -> float:
        """State of charge (%): remaining energy over capacity."""
        return 100.0 * self._energy_wh / self.capacity_wh

    @property
    def external_power(self) -> bool:
        """Whether the simulated charger is plugged in."""
        return self._external

    def set_external_power(self, present: bool) -> None:
        """Plug (True) or unplug (False) the simulated charger, settling the energy up to now first."""
        with self._lock:
            self._advance()
            self._external = present

    def _board_w(self, t_sim: float) -> float:
        if self.power_profile is not None:
            return float(self.power_profile(t_sim))
        return self.idle_w + self.w_per_busy_core * self.busy_cores

    def _pack_w(self, t_sim: float) -> float:
        """Net pack power (W): + into the pack while charging, - out of it while supplying the board."""
        if self._external:
            soc = self.soc_pct
            taper = 1.0 if soc < 90.0 else max(0.0, (100.0 - soc) / 10.0)
            return self.charge_w * taper
        if self._energy_wh <= 0.0:
            return 0.0
        return -self._board_w(t_sim) / self.boost_efficiency

    def _advance(self) -> None:
        now = self._clock()
        wall_dt = now - self._t_wall
        if wall_dt <= 0:
            return
        cpu_now = self._cpu()
        if self.power_profile is None:
            self.busy_cores = max(0.0, min(float(self.max_cores), (cpu_now - self._t_cpu) / wall_dt))
        self._t_wall, self._t_cpu = now, cpu_now
        sim_dt = wall_dt * self.time_scale
        steps = max(1, min(100_000, math.ceil(sim_dt / self.max_step_s)))
        h = sim_dt / steps
        for i in range(steps):
            p = self._pack_w(self.sim_time_s + (i + 0.5) * h)  # midpoint rule
            wh = p * h / 3600.0
            if wh < 0:
                wh = max(wh, -self._energy_wh)
                self.energy_drawn_wh -= wh
            else:
                wh = min(wh, self.capacity_wh - self._energy_wh)
                self.energy_charged_wh += wh
            self._energy_wh += wh
        self.sim_time_s += sim_dt
        self.load_w = self._board_w(self.sim_time_s)
        if self._energy_wh <= 0.0 and not self._external and not self._empty_logged:
            _LOG.warning("simulated pack is empty after %.0f simulated s; its output is cut", self.sim_time_s)
            self._empty_logged = True
        elif self._energy_wh > 0.0:
            self._empty_logged = False

    def step(self) -> None:
        """Integrate the energy drawn (or charged) from the last step up to now."""
        with self._lock:
            self._advance()

    def _terminal(self, pack_w: float) -> tuple[float, float]:
        """Terminal voltage and current (+ charging) for a net pack power, solving P = V x I."""
        ocv = cell_voltage_from_soc(self.curve, self.soc_pct) * self.cells_in_series
        r = self.internal_resistance_ohm
        if pack_w == 0.0:
            return ocv, 0.0
        if r <= 0.0:
            return ocv, pack_w / ocv
        if pack_w > 0:  # charging: P = (OCV + I R) I
            current = (-ocv + math.sqrt(ocv * ocv + 4 * r * pack_w)) / (2 * r)
        else:  # discharging: P = (OCV - I R) I
            disc = ocv * ocv - 4 * r * -pack_w
            if disc < 0:
                _LOG.warning("simulated pack cannot deliver %.1f W at %.2f V OCV; current limited", -pack_w, ocv)
                disc = 0.0
            current = -(ocv - math.sqrt(disc)) / (2 * r)
        return ocv + current * r, current

    def read(self) -> BatteryReading:
        """Step the simulation to now and report the pack (source ``simulated``)."""
        with self._lock:
            self._advance()
            pack_w = self._pack_w(self.sim_time_s)
            voltage, current = self._terminal(pack_w)
            reading = BatteryReading(
                t_monotonic=self._t_wall,
                voltage_v=voltage,
                current_a=current,
                power_w=voltage * current,
                soc_pct=self.soc_pct,
                charging=self._external and pack_w > 0,
                external_power=self._external,
                source=self.name,
                soc_estimated=False,
                power_estimated=True,
                cell_voltage_v=voltage / self.cells_in_series,
                simulated=True,
            )
        return check_plausible(
            reading, cells_in_series=self.cells_in_series, limits=self.limits, board_max_current_a=None
        )

    def arm_power_restore(self) -> bool:
        """A simulation has no output to cut."""
        return False

    def close(self) -> None:
        """Nothing to release."""
