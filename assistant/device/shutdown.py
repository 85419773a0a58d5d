"""Safe shutdown on an empty pack: when to do it (a pure policy) and doing it (a fixed command)."""

from __future__ import annotations

import logging
import math
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from assistant.device.device_config import ShutdownConfig
from assistant.messages import BatteryReading

_LOG = logging.getLogger(__name__)

PowerSource = Literal["external", "battery", "unknown"]
DecisionState = Literal["ok", "pending", "shutdown"]


@dataclass(frozen=True)
class ShutdownDecision:
    """What the policy concluded from the latest reading."""

    state: DecisionState
    """``ok``: nothing to do; ``pending``: empty on battery, waiting out ``hold_s``; ``shutdown``: now."""
    reason: str
    """One line for the log, e.g. ``on battery, SoC 4.0 % <= 5.0 % for 61 s``."""
    below_for_s: float
    """How long the readings have been continuously empty on battery (s); 0 when ``ok``."""


def power_source(reading: BatteryReading) -> PowerSource:
    """Where the appliance draws power from, by the best evidence in the reading.

    ``external_power`` decides when the gauge reports it (PLD line, VBUS flag, pisugar). Otherwise
    ``charging`` True means external power (a pack cannot charge from itself); then the sign of
    the current: below zero the pack is discharging (on battery), at or above zero it is not.
    With none of these (a fuel gauge without its power-loss line) the source is unknown.
    """
    if reading.external_power is not None:
        return "external" if reading.external_power else "battery"
    if reading.charging:
        return "external"
    if reading.current_a is not None and math.isfinite(reading.current_a):
        return "battery" if reading.current_a < 0 else "external"
    return "unknown"


class ShutdownPolicy:
    """Decides when the pack is empty for long enough, on battery, to power off.

    Empty means SoC <= ``soc_pct`` OR voltage per cell (``voltage_v / cells_in_series``) <=
    ``cell_voltage_v``. It must hold continuously for ``hold_s`` before the decision is
    ``shutdown``. Never on external power: a reading with external power present, or back above
    both thresholds, restarts the timer. When the power source is unknown (see ``power_source``)
    the rule is stricter: AND instead of OR, every indicator the reading has must be empty, so
    when it has both, a low SoC estimate alone or a sagging voltage alone never powers off a
    device that may be plugged in. A gap between readings longer than ``hold_s`` also restarts
    the timer: "continuously" needs evidence.
    """

    def __init__(self, cfg: ShutdownConfig, *, cells_in_series: int) -> None:
        """``cells_in_series``: series cells behind ``BatteryReading.voltage_v`` (1 for single-cell gauges)."""
        if cells_in_series < 1:
            raise ValueError(f"cells_in_series must be at least 1, got {cells_in_series}")
        self.cfg = cfg
        self.cells_in_series = cells_in_series
        self._since: float | None = None
        self._last: float | None = None

    def reset(self) -> None:
        """Forget the running timer."""
        self._since = None
        self._last = None

    def _empty(self, reading: BatteryReading, strict: bool) -> tuple[bool, str]:
        """Whether the reading counts as empty, and the evidence in words."""
        hits: list[str] = []
        misses: list[str] = []
        soc = reading.soc_pct
        if soc is not None and math.isfinite(soc):
            text = f"SoC {soc:.1f} % {'<=' if soc <= self.cfg.soc_pct else '>'} {self.cfg.soc_pct:g} %"
            (hits if soc <= self.cfg.soc_pct else misses).append(text)
        if math.isfinite(reading.voltage_v) and reading.voltage_v > 0:
            cell = reading.voltage_v / self.cells_in_series
            low = cell <= self.cfg.cell_voltage_v
            (hits if low else misses).append(f"cell {cell:.3f} V {'<=' if low else '>'} {self.cfg.cell_voltage_v:g} V")
        empty = bool(hits) and not (strict and misses)
        return empty, ", ".join(hits + misses) or "no SoC or voltage in the reading"

    def update(self, reading: BatteryReading, now: float) -> ShutdownDecision:
        """Take one reading (at ``time.monotonic()`` ``now``) and say what to do."""
        if not self.cfg.enabled:
            return ShutdownDecision("ok", "shutdown on empty battery is disabled", 0.0)
        gap = None if self._last is None else now - self._last
        self._last = now
        source = power_source(reading)
        if source == "external":
            self._since = None
            return ShutdownDecision("ok", "on external power", 0.0)
        empty, evidence = self._empty(reading, strict=source == "unknown")
        where = "on battery" if source == "battery" else "power source unknown"
        if not empty:
            self._since = None
            return ShutdownDecision("ok", f"{where}, {evidence}", 0.0)
        if self._since is None or gap is None or gap < 0 or gap > self.cfg.hold_s or now < self._since:
            if self._since is not None:
                _LOG.info("no battery reading for %.0f s; the empty-pack timer starts again", gap or 0.0)
            self._since = now
        below = now - self._since
        reason = f"{where}, {evidence} for {below:.0f} s"
        if below >= self.cfg.hold_s:
            return ShutdownDecision("shutdown", reason, below)
        return ShutdownDecision("pending", reason, below)


Runner = Callable[..., Any]


class Shutdowner:
    """Powers the device off with the configured command: a fixed argv, never a shell, never input.

    The reason is logged (journald keeps it) before the command runs. Failures (the program is
    missing, no permission, a non-zero exit, a timeout) are logged and reported as False, never
    raised: the appliance keeps running and may try again.
    """

    def __init__(self, cfg: ShutdownConfig, *, run: Runner = subprocess.run,
                 sync: Callable[[], None] = os.sync) -> None:
        """``run``: ``subprocess.run`` or a stand-in with its signature; ``sync``: flush file systems first."""
        self.argv: tuple[str, ...] = tuple(cfg.command)
        """The command, fixed when the appliance starts."""
        self.timeout_s = cfg.timeout_s
        self.announce = cfg.announce
        """What to say before calling ``execute``."""
        self._run = run
        self._sync = sync

    def execute(self, reason: str) -> bool:
        """Log ``reason`` and run the power-off command; True if it exited 0."""
        _LOG.critical("powering off: %s (running %s)", reason, " ".join(self.argv))
        try:
            self._sync()
        except OSError as exc:
            _LOG.warning("sync before power-off failed: %s", exc)
        try:
            result = self._run(list(self.argv), check=False, capture_output=True, text=True,
                               timeout=self.timeout_s, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            _LOG.error("power-off command %r not found", self.argv[0])
            return False
        except subprocess.TimeoutExpired:
            _LOG.error("power-off command did not return within %.0f s", self.timeout_s)
            return False
        except (OSError, subprocess.SubprocessError) as exc:
            _LOG.error("power-off command failed to run: %s", exc)
            return False
        if result.returncode != 0:
            detail = " ".join(((result.stderr or "") + " " + (result.stdout or "")).split())[:300]
            _LOG.error("power-off command exited with %d: %s", result.returncode, detail or "(no output)")
            return False
        _LOG.info("power-off command accepted")
        return True
