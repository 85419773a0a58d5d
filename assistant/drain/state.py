"""The progress of a drain run, shared by the turn loop and the battery sampler thread, saved atomically."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from assistant.atomic import write_json_atomic
from assistant.drain.runlog import RunFiles
from assistant.jsonl import JsonlLog
from assistant.messages import TurnLogEntry

_LOG = logging.getLogger(__name__)

SCHEMA = 1


def now_iso() -> str:
    """Wall-clock time, UTC, ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunClock:
    """Seconds of running time of a run, carried on across resumed segments (time spent dead is not counted)."""

    def __init__(self, offset_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.offset_s = offset_s
        self._clock = clock
        self._t0 = clock()

    def now(self) -> float:
        """Running seconds since the run began."""
        return self.offset_s + self._clock() - self._t0


def new_state(run_id: str) -> dict[str, Any]:
    """The state of a run that has not run a turn yet."""
    return {
        "schema": SCHEMA, "run_id": run_id, "status": "starting", "reason": "",
        "turns": 0, "words": 0, "tokens": 0, "turn_energy_j": 0.0, "errors": 0, "next_seq": 0,
        "t_s": 0.0, "e_j": 0.0, "pack": None, "tier": None, "segments": [], "updated": now_iso(),
    }


class RunState:
    """``state.json``: counters, run clock, energy and pack state needed to resume; every save is atomic.

    The turn log stays the record of truth for turns (``turns``, ``words``... are rebuilt from it on
    resume); this file adds what no log line holds: where the simulated pack was, and the run status.
    """

    def __init__(self, files: RunFiles, data: dict[str, Any]) -> None:
        self.files = files
        self._data = data
        self._lock = threading.Lock()
        self.save_failures = 0

    def get(self, key: str) -> Any:
        """One field (a copy for containers)."""
        with self._lock:
            return copy.deepcopy(self._data.get(key))

    def snapshot(self) -> dict[str, Any]:
        """A copy of the whole state."""
        with self._lock:
            return copy.deepcopy(self._data)

    def update(self, **fields: Any) -> None:
        """Set fields (not saved until ``save``)."""
        with self._lock:
            self._data.update(fields)

    def add_turn(self, entry: TurnLogEntry, seq: int) -> None:
        """Count one logged turn."""
        with self._lock:
            d = self._data
            d["turns"] += 1
            d["words"] += entry.words
            d["tokens"] += entry.tokens
            d["turn_energy_j"] = round(d["turn_energy_j"] + (entry.energy_j or 0.0), 4)
            d["errors"] += int(bool(entry.error))
            d["next_seq"] = seq + 1

    def save(self) -> None:
        """Replace state.json atomically; a failure is logged and counted (the logs still hold the run)."""
        with self._lock:
            self._data["updated"] = now_iso()
            try:
                write_json_atomic(self.files.state, self._data)
            except OSError as exc:
                self.save_failures += 1
                if self.save_failures == 1:
                    _LOG.warning("cannot write %s: %s", self.files.state, exc)


class BatterySampler:
    """Appends one battery sample a period to ``battery.jsonl`` (fsynced) and then saves the run state.

    ``sample()`` builds the record (and updates the run state with the pack's state); a failure in
    it is logged and the thread carries on.
    """

    def __init__(self, log: JsonlLog, state: RunState, sample: Callable[[], dict[str, Any]],
                 *, period_s: float = 1.0) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        self.log = log
        self.state = state
        self.period_s = period_s
        self.samples = 0
        """Samples written by this sampler."""
        self._sample = sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def sample_now(self) -> None:
        """Take and write one sample now (the thread calls this; so does the loop at start and end)."""
        with self._lock:
            try:
                record = self._sample()
            except Exception:  # a gauge or meter bug must not end the run's logging
                _LOG.exception("battery sample failed")
                return
            if self.log.append(record):
                self.samples += 1
            self.state.save()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample_now()

    def start(self) -> None:
        """Start sampling in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="drain-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
