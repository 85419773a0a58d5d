"""Safe shutdown on an empty pack: when to do it (a pure policy) and doing it (a fixed command)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from assistant.device.device_config import ShutdownConfig
from assistant.messages import BatteryReading
from assistant.power.cutoff import EmptyPoint, is_empty, power_source

_LOG = logging.getLogger(__name__)

DecisionState = Literal["ok", "pending", "shutdown"]


@dataclass(frozen=True)
class ShutdownDecision:
    """What the policy concluded from the latest reading."""

    state: DecisionState
    """``ok``: nothing to do; ``pending``: empty on battery, waiting out ``hold_s``; ``shutdown``: now."""
    reason: str
    """One line for the log, e.g. ``on battery, SoC 4.0 % <= 5 % for 61 s``."""
    below_for_s: float
    """How long the readings have been continuously empty on battery (s); 0 when ``ok``."""
    low: bool = False
    """The low-battery alarm (LED, earcon): on at the empty point, off only once the readings are back
    above it by the margins (``EmptyPoint.raised``), so it does not flap near the threshold."""


class ShutdownPolicy:
    """Decides when the pack is empty for long enough, on battery, to power off.

    Empty is ``cutoff.is_empty`` at the pack's ``EmptyPoint`` (the same point the tier policy and the
    drain test use). It must hold continuously for ``hold_s`` before the decision is ``shutdown``,
    measured on the readings' own clock (``t_monotonic``): a reading handed in again (a gauge that
    went silent) is no new evidence and never moves the timer, and a gap between readings longer
    than ``hold_s`` starts it again. Never on external power (``cutoff.power_source``: a measured
    discharge counts as battery whatever the flags say). With the power source unknown the rule is
    stricter: every figure the reading has must be empty.
    """

    def __init__(self, cfg: ShutdownConfig, *, empty: EmptyPoint) -> None:
        self.cfg = cfg
        self.empty = empty
        self._since: float | None = None
        self._last_t: float | None = None
        self._low = False
        self._last = ShutdownDecision("ok", "no reading yet", 0.0)

    def reset(self) -> None:
        """Forget the running timer and the alarm."""
        self._since = None
        self._last_t = None
        self._low = False

    def update(self, reading: BatteryReading) -> ShutdownDecision:
        """Take one reading and say what to do."""
        t = reading.t_monotonic
        if self._last_t is not None and t <= self._last_t:
            return self._last  # the same reading again: nothing new is known
        gap = None if self._last_t is None else t - self._last_t
        self._last_t = t
        self._last = self._decide(reading, t, gap)
        return self._last

    def _decide(self, reading: BatteryReading, t: float, gap: float | None) -> ShutdownDecision:
        source = power_source(reading)
        if source == "external":
            self._since, self._low = None, False
            return ShutdownDecision("ok", "on external power", 0.0)
        strict = source == "unknown"
        empty, evidence = is_empty(reading, self.empty, strict=strict)
        if empty:
            self._low = True
        elif self._low and not is_empty(reading, self.empty.raised(), strict=strict)[0]:
            self._low = False
        where = "on battery" if source == "battery" else "power source unknown"
        if not empty:
            self._since = None
            return ShutdownDecision("ok", f"{where}, {evidence}", 0.0, self._low)
        if not self.cfg.enabled:
            return ShutdownDecision("ok", f"{where}, {evidence}; shutdown on empty battery is disabled", 0.0, True)
        if self._since is not None and gap is not None and gap > self.cfg.hold_s:
            _LOG.info("no battery reading for %.0f s; the empty-pack timer starts again", gap)
            self._since = None
        if self._since is None:
            self._since = t
        below = t - self._since
        reason = f"{where}, {evidence} for {below:.0f} s"
        return ShutdownDecision("shutdown" if below >= self.cfg.hold_s else "pending", reason, below, True)


Runner = Callable[..., Any]


class Shutdowner:
    """Powers the device off with the configured command: a fixed argv, never a shell, never input.

    The reason is logged (journald keeps it) before the command runs. Failures (the program is
    missing, no permission, a non-zero exit, a timeout) are logged and reported as False, never
    raised: the appliance keeps serving, shows low battery and tries again every ``retry_s``.
    """

    def __init__(self, cfg: ShutdownConfig, *, run: Runner = subprocess.run,
                 sync: Callable[[], None] = os.sync) -> None:
        """``run``: ``subprocess.run`` or a stand-in with its signature; ``sync``: flush file systems first."""
        self.argv: tuple[str, ...] = tuple(cfg.command)
        """The command, fixed when the appliance starts."""
        self.timeout_s = cfg.timeout_s
        self.retry_s = cfg.retry_s
        """How long to wait before trying a refused power-off again (s)."""
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
