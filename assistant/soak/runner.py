"""One soak run: the fault-injected turns in this process, the kill and restart cycles in a child, and the report."""

from __future__ import annotations

import gc
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError
from assistant.soak.checks import LogCheck, ResourceCheck, check_log, check_resources, fd_targets, new_handles, sample
from assistant.soak.driver import Driver
from assistant.soak.restarts import RestartReport, kill_restart_cycles
from assistant.soak.rig import RigOptions, build_rig, question_clips

_LOG = logging.getLogger(__name__)

REPORT_NAME = "soak-report.json"
EXPECTED_ERRORS = ("NoSpeech:", "AudioDeviceError:")
"""Turn errors that the driver's own actions cause: taps and cut-short questions, unplugged devices."""


class SoakFailed(AssistantError):
    """The soak found the appliance failing a check (the report names each problem)."""

    exit_code = 10


@dataclass
class SoakReport:
    """Everything one soak run measured; ``problems`` empty means every check passed."""

    turns: int
    seed: int
    duration_s: float = 0.0
    steps: int = 0
    presses: int = 0
    appliance_turns: int = 0
    """Turns the appliance started (one per accepted press)."""
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    """Turns that ended with an error (the injected faults)."""
    turns_lost: int = 0
    """Presses without a turn, and ended turns whose record is neither in the log nor refused by a full disk."""
    records_dropped_disk_full: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    recovered: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    disk_mode: str = ""
    errors: dict[str, int] = field(default_factory=dict)
    """Error texts of the failed turns, counted (injected faults should be the only ones)."""
    log: LogCheck | None = None
    resources: ResourceCheck | None = None
    restarts: RestartReport | None = None
    memory: list[tuple[int, float, float]] = field(default_factory=list)
    """(step, RSS MiB, heap MiB) at the start of every step."""
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def _soak_in_process(report: SoakReport, workdir: Path, options: RigOptions, fault_rate: float,
                     progress: Callable[[int, int], None] | None, out: Path) -> None:
    gc.collect()
    threads_before = {t.ident for t in threading.enumerate()}
    before = sample(0)
    handles_before = fd_targets()
    rig = build_rig(workdir, options)
    report.disk_mode = rig.disk.mode
    driver = Driver(rig, question_clips(rig), seed=report.seed, fault_rate=fault_rate)
    result = driver.result
    t0 = time.monotonic()
    try:
        driver.start()
        result = driver.run(report.turns, progress=progress)
        driver.stop()
        report.appliance_turns = rig.appliance.turns
    finally:
        report.duration_s = round(time.monotonic() - t0, 1)
        try:
            outcomes = driver.recorder.outcomes
            report.log = check_log(rig.log_path, outcomes)
            if rig.log_path.exists():
                shutil.copyfile(rig.log_path, out / "turns.jsonl")
        finally:
            rig.close()
    del rig
    gc.collect()
    after = sample(-1)
    leftover = [t.name for t in threading.enumerate() if t.ident not in threads_before]
    leaked = new_handles(handles_before, fd_targets())
    report.resources = check_resources(before, after, result.samples, leftover, leaked)
    report.memory = [(s.step, round(s.rss_mb, 1), round(s.anon_mb, 1)) for s in result.samples]
    report.steps, report.presses = result.steps, result.presses
    report.faults, report.actions = dict(result.faults), dict(result.actions)
    report.recovered, report.tiers = dict(result.recovered), dict(result.tiers)
    report.completed = sum(1 for o in outcomes if o.status == "ok")
    report.cancelled = sum(1 for o in outcomes if o.status == "cancelled")
    report.failed = sum(1 for o in outcomes if o.status == "error")
    for o in outcomes:
        if o.error and not o.error.startswith(EXPECTED_ERRORS) and "(injected)" not in o.error:
            report.problems.append(f"turn {o.turn_id} failed without an injected fault: {o.error}")
        if o.error:
            key = o.error.split(":")[0] + ": " + ":".join(o.error.split(":")[1:]).strip()[:70]
            report.errors[key] = report.errors.get(key, 0) + 1
    report.records_dropped_disk_full = report.log.dropped_disk_full
    never_ran = max(0, report.appliance_turns - len(outcomes))
    report.turns_lost = len(report.log.missing_ids) + len(report.log.unlogged) + never_ran
    report.problems += result.problems + report.log.problems + report.resources.problems
    if driver.loop_error is not None:
        report.problems.append(f"the appliance loop died: {type(driver.loop_error).__name__}: {driver.loop_error}")
    if report.appliance_turns != len(outcomes):
        report.problems.append(f"{report.appliance_turns} turns started but {len(outcomes)} reached the session")


def run_soak(out: Path, *, turns: int = 200, seed: int = 1, restarts: int = 2, fault_rate: float = 0.35,
             options: RigOptions = RigOptions(), workdir: Path | None = None,
             progress: Callable[[int, int], None] | None = None) -> SoakReport:
    """Run the soak; write ``out/soak-report.json`` (and the turn log) and return the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = SoakReport(turns=turns, seed=seed)
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="soak-")) if workdir is None else workdir
    try:
        _soak_in_process(report, work / "appliance", options, fault_rate, progress, out)
        if restarts > 0:
            report.restarts = kill_restart_cycles(work / "restarts", cycles=restarts, seed=seed)
            report.problems += [f"restarts: {p}" for p in report.restarts.problems]
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    (out / REPORT_NAME).write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
    _LOG.info("soak report written to %s", out / REPORT_NAME)
    return report


def summary(report: SoakReport) -> str:
    """The figures of a run, a few lines for a person."""
    r = report.resources
    lines = [
        f"soak seed {report.seed}: {report.appliance_turns} turns in {report.duration_s:.0f} s "
        f"({report.completed} completed, {report.cancelled} cancelled, {report.failed} failed by faults)",
        f"faults injected: {', '.join(f'{k} {v}' for k, v in sorted(report.faults.items()))}",
        f"recovered after: {', '.join(f'{k} {v}' for k, v in sorted(report.recovered.items()))}",
        f"turns lost: {report.turns_lost}; records refused by the full disk ({report.disk_mode}): "
        f"{report.records_dropped_disk_full}",
    ]
    if report.log is not None:
        lines.append(f"turn log: {report.log.records} records, torn last line {report.log.torn_last_line}, "
                     f"bad lines {len(report.log.bad_lines)}")
    if r is not None:
        lines.append(f"threads {r.threads_before} -> {r.threads_after}, fds {r.fds_before} -> {r.fds_after}, "
                     f"RSS median {r.rss_first_quarter_mb:.0f} -> {r.rss_last_quarter_mb:.0f} MiB "
                     f"(heap {r.anon_first_quarter_mb:.0f} -> {r.anon_last_quarter_mb:.0f}), "
                     f"peak {r.peak_rss_mb:.0f} MiB" + ("" if r.memory_judged else " (too short to judge memory)"))
    if report.restarts is not None:
        rs = report.restarts
        lines.append(f"restarts: {rs.starts} starts, {rs.sigterm} SIGTERM, {rs.kill9} SIGKILL, "
                     f"{rs.killed_while_loading} while loading; {rs.records} records, torn {rs.torn_last_line}, "
                     f"served after the last restart: {rs.served_after_last_restart}")
    lines.append("PASSED" if report.passed else "FAILED:\n  " + "\n  ".join(report.problems))
    return "\n".join(lines)
