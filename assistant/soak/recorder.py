"""What the soak driver sees: every turn through ``Session.run_turn``, and the tally of the run."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.messages import TurnRecord
from assistant.soak.checks import Outcome, Sample
from assistant.soak.rig import Rig

_LOG = logging.getLogger(__name__)

TURN_TIMEOUT_S = 60.0
"""Longest a turn may take before the driver calls the appliance stuck (s)."""


class TurnRecorder:
    """Wraps ``Session.run_turn``: every turn's id, outcome and whether its record reached the log."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.outcomes: list[Outcome] = []
        self.step = 0
        self._cond = threading.Condition()
        self._real: Callable[..., TurnRecord] = rig.session.run_turn
        rig.session.run_turn = self._run_turn  # type: ignore[method-assign]

    def _run_turn(self, speaker: Any, **kw: Any) -> TurnRecord:
        log = self.rig.session.turn_log
        outcome = Outcome(turn_id=str(kw.get("turn_id")), step=self.step)
        with self._cond:
            self.outcomes.append(outcome)
        written, failures = log.written, log.failures
        try:
            record = self._real(speaker, **kw)
        except BaseException as exc:
            outcome.status, outcome.error = "error", f"{type(exc).__name__}: {exc}"
            raise
        else:
            outcome.status = "cancelled" if record.cancelled else "ok"
            entry = self.rig.session.last_entry
            outcome.tier = str(entry.tier if entry is not None else None)
            return record
        finally:
            outcome.logged = log.written > written
            outcome.dropped = log.failures > failures
            with self._cond:
                self._cond.notify_all()

    @property
    def count(self) -> int:
        return len(self.outcomes)

    def wait_done(self, count: int, alive: Callable[[], bool], timeout: float = TURN_TIMEOUT_S) -> bool:
        """Wait until at least ``count`` turns have started and every one of them has ended
        (False after ``timeout`` s, or as soon as ``alive()`` says the appliance loop has ended)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.outcomes) < count or any(o.status == "running" for o in self.outcomes):
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    return False
                self._cond.wait(min(left, 0.05))
        return True


@dataclass
class DriveResult:
    """What the driver did and saw."""

    steps: int = 0
    presses: int = 0
    """Presses the appliance should have accepted (bounces and glitches excluded)."""
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    actions: collections.Counter[str] = field(default_factory=collections.Counter)
    recovered: collections.Counter[str] = field(default_factory=collections.Counter)
    """Faults after which a turn completed within ``RECOVERY_TRIES`` presses."""
    problems: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    tiers: collections.Counter[str] = field(default_factory=collections.Counter)
    script: list[str] = field(default_factory=list)
    """What each step did, in order (fault or action name)."""
