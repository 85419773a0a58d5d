"""What the soak checks afterwards: every turn logged once, a log that parses, no leaked threads, handles or memory."""

from __future__ import annotations

import collections
import logging
import os
import statistics
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.turnlog import read_turns

_LOG = logging.getLogger(__name__)

THREAD_SLACK = 2
"""Threads allowed to outlive the appliance (a timer of the button's bounce window, finishing)."""
FD_SLACK = 2
"""File handles allowed above the count before the appliance was built."""
RSS_GROWTH_MB = 160.0
"""Largest rise of the median RSS from the first to the last quarter of the run (MiB). RSS climbs in
steps while glibc's per-thread arenas (a new thread per turn) and model reloads reach their
high-water marks, then stays flat (measured: +90 to +140 MiB over the first 200 turns, MiB-level
changes after that); a leak keeps climbing, which ``RSS_TAIL_GROWTH_MB`` catches."""
RSS_TAIL_GROWTH_MB = 30.0
"""Largest rise of the median RSS from the third to the last quarter (MiB): memory must have
levelled off by the end of the run."""
MEMORY_MIN_STEPS = 400
"""Memory is judged only over runs of at least this many steps: RSS climbs for the first ~300
(measured over 1,000 turns: 434 MiB at the start, 710 at step 120, 750 from step 320 on, flat)."""


def _status_kb(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


LIBRARY_HANDLES = ("/dev/null", "/.onnxruntime/onnxruntime.db")
"""Handles the engines open once per process and keep (llama-cpp-python's /dev/null pair for
silencing llama.cpp, onnxruntime's telemetry store): not leaks of the appliance."""


def fd_targets() -> list[str]:
    """What each file descriptor of this process points at."""
    out: list[str] = []
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return out
    for name in names:
        try:
            out.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue  # the descriptor listdir itself used, already closed
    return out


def open_fds() -> int:
    """File descriptors this process holds."""
    return len(fd_targets())


@dataclass
class Sample:
    """Resources in use at one idle moment of the run."""

    step: int
    threads: int
    fds: int
    rss_mb: float
    """Resident memory (MiB)."""
    anon_mb: float
    """Anonymous resident memory (MiB): the heap, without mapped model files."""


def sample(step: int) -> Sample:
    """Threads, file handles and memory of this process now."""
    return Sample(step, threading.active_count(), open_fds(), _status_kb("VmRSS") / 1024.0,
                  _status_kb("RssAnon") / 1024.0)


def peak_rss_mb() -> float:
    """Highest resident memory of this process so far (MiB)."""
    return _status_kb("VmHWM") / 1024.0


@dataclass
class ResourceCheck:
    """Threads, handles and memory over the run."""

    threads_before: int
    threads_after: int
    fds_before: int
    fds_after: int
    rss_first_quarter_mb: float
    rss_third_quarter_mb: float
    rss_last_quarter_mb: float
    anon_first_quarter_mb: float
    anon_last_quarter_mb: float
    peak_rss_mb: float
    max_threads_during: int
    max_fds_during: int
    leftover_threads: list[str] = field(default_factory=list)
    memory_judged: bool = False
    """The run was long enough (``MEMORY_MIN_STEPS``) for the memory bounds to apply."""
    leaked_fds: list[str] = field(default_factory=list)
    """What the handles held after closing, and not before, point at (library handles excluded)."""
    problems: list[str] = field(default_factory=list)


def new_handles(before: list[str], after: list[str]) -> list[str]:
    """Handles in ``after`` beyond those in ``before`` (as a multiset), without the engines' one-time handles."""
    extra = collections.Counter(after) - collections.Counter(before)
    return sorted(t for t in extra.elements() if not any(t.endswith(lib) or lib in t for lib in LIBRARY_HANDLES))


def check_resources(before: Sample, after: Sample, samples: list[Sample], leftover: list[str],
                    leaked_fds: list[str]) -> ResourceCheck:
    """Compare the process before the appliance was built and after it was closed, and memory over the run."""
    quarter = max(1, len(samples) // 4)
    first, last = samples[:quarter] or [before], samples[-quarter:] or [after]
    third = samples[-2 * quarter:-quarter] or last
    rc = ResourceCheck(
        threads_before=before.threads, threads_after=after.threads, fds_before=before.fds, fds_after=after.fds,
        rss_first_quarter_mb=statistics.median(s.rss_mb for s in first),
        rss_third_quarter_mb=statistics.median(s.rss_mb for s in third),
        rss_last_quarter_mb=statistics.median(s.rss_mb for s in last),
        anon_first_quarter_mb=statistics.median(s.anon_mb for s in first),
        anon_last_quarter_mb=statistics.median(s.anon_mb for s in last),
        peak_rss_mb=peak_rss_mb(),
        max_threads_during=max((s.threads for s in samples), default=0),
        max_fds_during=max((s.fds for s in samples), default=0),
        leftover_threads=leftover,
        leaked_fds=leaked_fds,
    )
    if after.threads > before.threads + THREAD_SLACK:
        rc.problems.append(f"threads leaked: {before.threads} before, {after.threads} after ({', '.join(leftover)})")
    if len(leaked_fds) > FD_SLACK:
        rc.problems.append(f"file handles leaked: {before.fds} before, {after.fds} after: {leaked_fds}")
    rc.memory_judged = len(samples) >= MEMORY_MIN_STEPS
    growth = rc.rss_last_quarter_mb - rc.rss_first_quarter_mb
    if rc.memory_judged and growth > RSS_GROWTH_MB:
        rc.problems.append(f"memory grew {growth:.1f} MiB from the first to the last quarter (bound {RSS_GROWTH_MB:g})")
    tail = rc.rss_last_quarter_mb - rc.rss_third_quarter_mb
    if rc.memory_judged and tail > RSS_TAIL_GROWTH_MB:
        rc.problems.append(f"memory still grew {tail:.1f} MiB from the third to the last quarter "
                           f"(bound {RSS_TAIL_GROWTH_MB:g})")
    if len(samples) >= 8:
        half = len(samples) // 2
        if max(s.threads for s in samples[half:]) > max(s.threads for s in samples[:half]) + THREAD_SLACK:
            rc.problems.append("the thread count kept rising during the run")
        if max(s.fds for s in samples[half:]) > max(s.fds for s in samples[:half]) + FD_SLACK:
            rc.problems.append("the file handle count kept rising during the run")
    return rc


@dataclass
class Outcome:
    """One turn as the driver saw it, from ``Session.run_turn``'s call to its return."""

    turn_id: str
    step: int
    status: str = "running"
    """``ok``, ``cancelled`` or ``error``."""
    error: str | None = None
    tier: str | None = None
    logged: bool = False
    """The turn log wrote its record."""
    dropped: bool = False
    """The turn log could not write its record (full disk)."""


@dataclass
class LogCheck:
    """The turn log compared with the turns the driver saw."""

    records: int
    torn_last_line: int
    bad_lines: list[int]
    duplicate_ids: list[str]
    missing_ids: list[str]
    """Turns the driver saw logged that are not in the file."""
    unexpected_ids: list[str]
    """Records the driver never saw a turn for."""
    unlogged: list[str]
    """Turns that ended without a record written or refused by a full disk."""
    dropped_disk_full: int
    absurd_battery: list[str]
    """Records whose battery figures a plausibility check should have stopped."""
    problems: list[str] = field(default_factory=list)


def check_log(path: Path, outcomes: list[Outcome], *, cells: int = 2) -> LogCheck:
    """Every turn the driver saw is in the log exactly once (or was refused by a full disk); the log parses."""
    read = read_turns(path)
    counts = collections.Counter(e.turn_id for e in read.entries)
    logged = {o.turn_id for o in outcomes if o.logged}
    absurd = []
    for e in read.entries:
        for key, b in (("battery_before", e.battery_before), ("battery_after", e.battery_after)):
            if b is None:
                continue
            v, soc = b.voltage_v, b.soc_pct
            if (v is not None and not 2.5 * cells <= v <= 4.4 * cells) or (soc is not None and not 0 <= soc <= 100):
                absurd.append(f"{e.turn_id}: {key} {b}")
    lc = LogCheck(
        records=len(read.entries), torn_last_line=read.torn_lines, bad_lines=read.bad_lines,
        duplicate_ids=sorted(t for t, n in counts.items() if n > 1),
        missing_ids=sorted(logged - set(counts)),
        unexpected_ids=sorted(set(counts) - {o.turn_id for o in outcomes}),
        unlogged=[o.turn_id for o in outcomes if not o.logged and not o.dropped and o.status != "running"],
        dropped_disk_full=sum(1 for o in outcomes if o.dropped),
        absurd_battery=absurd,
    )
    for label, items in (("duplicate turn ids", lc.duplicate_ids), ("logged turns missing from the file",
                         lc.missing_ids), ("records of unknown turns", lc.unexpected_ids),
                         ("turns that ended without a record", lc.unlogged), ("bad lines", read.bad_lines),
                         ("implausible battery figures logged", lc.absurd_battery)):
        if items:
            lc.problems.append(f"{label}: {items[:10]}{' ...' if len(items) > 10 else ''}")
    if lc.torn_last_line > 1:
        lc.problems.append(f"{lc.torn_last_line} torn last lines")
    return lc


def as_dict(obj: Any) -> Any:
    """A dataclass (or list of them) as plain JSON-able data."""
    if isinstance(obj, list):
        return [as_dict(o) for o in obj]
    return asdict(obj)
