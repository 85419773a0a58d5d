"""Configuration of the battery gauge: which UPS HAT, how it is wired, and the simulated pack."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

_LOG = logging.getLogger(__name__)

GaugeKind = Literal["auto", "ina219", "max1704x", "waveshare_e", "pisugar", "simulated"]
BoardPreset = Literal["default", "waveshare_b", "waveshare_cd", "x120x", "x728"]


REFERENCE_PACK_WH = 19.24
"""The reference pack: 2x 18650 in series, 3.7 V x 2.6 Ah = 19.24 Wh nominal (hardware.md section 1.9);
the default capacity, and the pack W/BL is quoted on."""


@dataclass(frozen=True)
class PlausibilityLimits:
    """Bounds outside which a reading is rejected as a bus glitch or a broken gauge."""

    min_cell_v: float = 2.5
    """Lowest believable voltage per series cell (V); Li-ion protection cuts off around 2.5-3.0 V."""
    max_cell_v: float = 4.4
    """Highest believable voltage per series cell (V); a full Li-ion cell is 4.2 V, LiHV 4.35 V."""
    max_current_a: float | None = None
    """Largest believable pack current either way (A); None uses the board's own limit."""
    soc_overshoot_pct: float = 2.0
    """How far above 100 % a state of charge may read and still be taken as 100 % (%-points);
    ModelGauge chips can overshoot a little just after a full charge. Anything beyond is rejected."""

    def __post_init__(self) -> None:
        if not 0.0 < self.min_cell_v < self.max_cell_v:
            raise ValueError(f"min_cell_v {self.min_cell_v} must be above 0 and below max_cell_v {self.max_cell_v}")
        if self.max_current_a is not None and self.max_current_a <= 0:
            raise ValueError(f"max_current_a must be positive, got {self.max_current_a}")
        if self.soc_overshoot_pct < 0:
            raise ValueError(f"soc_overshoot_pct must not be negative, got {self.soc_overshoot_pct}")


_BOARDS_OF_KIND: dict[str, tuple[str, ...]] = {
    "auto": ("default", "waveshare_b", "waveshare_cd", "x120x", "x728"),
    "ina219": ("default", "waveshare_b", "waveshare_cd"),
    "max1704x": ("default", "x120x", "x728"),
    "waveshare_e": ("default",),
    "pisugar": ("default",),
    "simulated": ("default",),
}


@dataclass(frozen=True)
class SimulatedPackConfig:
    """The simulated pack used when no HAT answers (or ``kind: simulated``)."""

    start_soc_pct: float = 100.0
    """State of charge at start (%)."""
    time_scale: float = 1.0
    """Simulated seconds per real second; 60 drains a pack an hour faster per minute."""
    idle_w: float = 2.8
    """Board power at idle (W); Pi 5 at the wall, geerlingguy/sbc-reviews."""
    w_per_busy_core: float = 1.7
    """Extra board power per fully busy CPU core (W); (9.7 W stress - 2.8 W idle) / 4 cores."""
    boost_efficiency: float = 0.9
    """Pack-to-5 V converter efficiency (0..1]."""
    internal_resistance_ohm: float = 0.1
    """Pack internal resistance (ohm): the voltage sag under load."""
    external_power: bool = False
    """Start with the simulated charger plugged in."""
    charge_w: float = 10.0
    """Charging power into the pack while plugged in (W)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_soc_pct <= 100.0:
            raise ValueError(f"start_soc_pct must be within 0..100, got {self.start_soc_pct}")
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {self.time_scale}")
        if self.idle_w < 0 or self.w_per_busy_core < 0 or self.charge_w < 0:
            raise ValueError("idle_w, w_per_busy_core and charge_w must not be negative")
        if not 0.0 < self.boost_efficiency <= 1.0:
            raise ValueError(f"boost_efficiency must be within (0, 1], got {self.boost_efficiency}")
        if self.internal_resistance_ohm < 0:
            raise ValueError(f"internal_resistance_ohm must not be negative, got {self.internal_resistance_ohm}")


@dataclass(frozen=True)
class BatteryConfig:
    """The battery gauge (YAML section ``battery``)."""

    kind: GaugeKind = "auto"
    """Gauge to use. ``auto`` probes I2C (UPS HAT E at 0x2D, MAX1704x at 0x36, INA219 at 0x42/0x43),
    then pisugar-server. With none found, ``assistant run`` runs as on external power and keeps
    looking (an alarm, never a simulation); the demo, drain test and bench use the simulated pack
    and label every figure simulated. ``simulated`` asks for the simulated pack."""
    board: BoardPreset = "default"
    """Board wiring preset: ``waveshare_b`` (INA219 0x42, 0.1 ohm, 2S), ``waveshare_cd`` (INA219
    0x43, 0.01 ohm, 1S), ``x120x`` (PLD GPIO6 high = power OK), ``x728`` (PLD GPIO6 high = power
    lost); ``default`` picks by address (INA219) or X120x (MAX1704x)."""
    i2c_bus: int = 1
    """I2C bus number (``/dev/i2c-N``)."""
    address: int | None = None
    """7-bit I2C address of the gauge; empty uses the board's (e.g. 0x42)."""
    shunt_ohms: float | None = None
    """INA219 shunt resistor (ohm); empty uses the board's."""
    cells_in_series: int | None = None
    """Li-ion cells in series (count); empty uses the board's (2 for B, 1 for C/D and MAX1704x, 4 for E)."""
    pld_pin: int | None = 6
    """MAX1704x boards: BCM GPIO of the power-loss-detect line; empty reads no PLD line."""
    pisugar_host: str = "127.0.0.1"
    """Host of pisugar-server's TCP interface."""
    pisugar_port: int = 8423
    """TCP port of pisugar-server."""
    pisugar_socket: Path | None = None
    """Unix socket of pisugar-server (e.g. /tmp/pisugar-server.sock); empty uses TCP."""
    pisugar_timeout_s: float = 1.0
    """Time to wait for a pisugar-server reply (s)."""
    capacity_wh: float = REFERENCE_PACK_WH
    """Nominal pack energy (Wh); 2x 18650 3.7 V 2.6 Ah = 19.24 Wh."""
    usable_fraction: float = 0.85
    """Share of the nominal energy usable before the cut-off (0..1]; new cells give 0.8-0.9."""
    retries: int = 3
    """Extra attempts after an I2C or socket error before a reading fails (count)."""
    retry_backoff_s: float = 0.05
    """Wait before the first retry, doubled for each further one (s)."""
    current_threshold_a: float = 0.05
    """INA219: current beyond which the pack counts as charging / discharging (A)."""
    empty_soc_pct: float | None = None
    """The pack counts as empty at or below this state of charge (%): the appliance powers off
    there, the tier policy answers "shutdown" and a drain run ends there. Empty uses the point a
    drain run to the brown-out measured (``drain-test --until brownout``), else the board's own
    (e.g. 12 % on a UPS HAT (B), 10 % on an X120x, 5 % on a UPS HAT (E))."""
    empty_cell_v: float | None = None
    """... or at or below this voltage of the weakest cell, under load (V); empty uses the measured
    or the board's point (e.g. 3.55 V on a UPS HAT (B), 3.20 V on an X120x)."""
    silent_alarm_s: float = 120.0
    """A gauge that has given no reading for this long is an alarm (LED, log, systemd status, and
    spoken once when it was last seen on battery) (s)."""
    limits: PlausibilityLimits = field(default_factory=PlausibilityLimits)
    """Readings outside these bounds are rejected."""
    simulated: SimulatedPackConfig = field(default_factory=SimulatedPackConfig)
    """The simulated pack."""

    def __post_init__(self) -> None:
        allowed = _BOARDS_OF_KIND[self.kind]
        if self.board not in allowed:
            raise ValueError(f"board '{self.board}' does not fit kind '{self.kind}' (use one of {', '.join(allowed)})")
        if self.address is not None and not 0x03 <= self.address <= 0x77:
            raise ValueError(f"address must be a 7-bit I2C address 0x03..0x77, got {self.address}")
        if self.i2c_bus < 0:
            raise ValueError(f"i2c_bus must not be negative, got {self.i2c_bus}")
        if self.shunt_ohms is not None and self.shunt_ohms <= 0:
            raise ValueError(f"shunt_ohms must be positive, got {self.shunt_ohms}")
        if self.cells_in_series is not None and not 1 <= self.cells_in_series <= 8:
            raise ValueError(f"cells_in_series must be within 1..8, got {self.cells_in_series}")
        if not 0 < self.pisugar_port < 65536:
            raise ValueError(f"pisugar_port must be within 1..65535, got {self.pisugar_port}")
        if self.capacity_wh <= 0:
            raise ValueError(f"capacity_wh must be positive, got {self.capacity_wh}")
        if not 0.0 < self.usable_fraction <= 1.0:
            raise ValueError(f"usable_fraction must be within (0, 1], got {self.usable_fraction}")
        if self.retries < 0 or self.retry_backoff_s < 0 or self.pisugar_timeout_s <= 0:
            raise ValueError("retries and retry_backoff_s must not be negative, pisugar_timeout_s must be positive")
        if self.current_threshold_a < 0:
            raise ValueError(f"current_threshold_a must not be negative, got {self.current_threshold_a}")
        if self.empty_soc_pct is not None and not 0.0 <= self.empty_soc_pct < 100.0:
            raise ValueError(f"empty_soc_pct must be within 0..100, got {self.empty_soc_pct}")
        if self.empty_cell_v is not None and not 2.5 <= self.empty_cell_v <= 4.2:
            raise ValueError(f"empty_cell_v must be within 2.5..4.2 V, got {self.empty_cell_v}")
        if self.silent_alarm_s <= 0:
            raise ValueError(f"silent_alarm_s must be positive, got {self.silent_alarm_s}")

    @property
    def usable_wh(self) -> float:
        """Energy the appliance can expect from a full pack (Wh)."""
        return self.capacity_wh * self.usable_fraction
