"""SIGTERM and kill -9 at random points of `assistant run --sim`, each followed by a restart; the log checked."""

from __future__ import annotations

import collections
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from assistant.models import embedded
from assistant.turnlog import read_turns

_LOG = logging.getLogger(__name__)

READY_MARK = "appliance ready"
"""What `assistant run` logs once it serves."""
STOPPED_MARK = "appliance stopped after"
"""What it logs when it has stopped cleanly."""


@dataclass
class RestartReport:
    """What the kill and restart cycles did and found."""

    cycles: int = 0
    sigterm: int = 0
    kill9: int = 0
    starts: int = 0
    kill_points_s: list[float] = field(default_factory=list)
    """Seconds after each start at which the signal was sent."""
    killed_while_loading: int = 0
    """Signals that arrived before the appliance was ready (models still loading)."""
    exit_codes: list[int] = field(default_factory=list)
    records: int = 0
    completed_records: int = 0
    torn_last_line: int = 0
    bad_lines: list[int] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    served_after_last_restart: bool = False
    leftover_files: list[str] = field(default_factory=list)
    """Temporary files left in the state directory by killed processes."""
    duration_s: float = 0.0
    problems: list[str] = field(default_factory=list)


class _Appliance:
    """One `assistant run --sim` process, its stderr collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="soak-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if READY_MARK in line:
                self.ready.set()

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _LOG.error("soak: the appliance did not exit within %.0f s of the signal; killing it", timeout)
            self.proc.kill()
            code = self.proc.wait(10)
        self._reader.join(5)
        return code

    def stderr_tail(self, n: int = 15) -> str:
        return "\n".join(self.lines[-n:])


def write_config(workdir: Path, *, max_tokens: int) -> Path:
    """A config for the subprocess: its own state directory, the embedded model, short answers."""
    state, models = workdir / "state", workdir / "models"
    path = workdir / "assistant.yaml"
    path.write_text(
        f"paths:\n  state_dir: {state}\n  models_dir: {models}\n"
        f"llm:\n  model: {embedded.smollm2_gguf()}\n  max_tokens: {max_tokens}\n  history_turns: 1\n"
        "button:\n  min_press_s: 0.1\n",
        encoding="utf-8")
    return path


def _completed(log: Path) -> int:
    """Turns that were answered (the reply may have been cut short by the next periodic press)."""
    return sum(1 for e in read_turns(log).entries if not e.error and e.words)


def kill_restart_cycles(workdir: Path, *, cycles: int, seed: int, press_every_s: float = 2.5,
                        max_tokens: int = 12, max_kill_s: float = 6.0) -> RestartReport:
    """Start the appliance, signal it at a random moment (SIGTERM or SIGKILL), restart, ``cycles`` times;
    then start it once more, see it answer, stop it with SIGTERM and check the turn log."""
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir, max_tokens=max_tokens)
    log = workdir / "state" / "turns.jsonl"
    argv = [sys.executable, "-m", "assistant", "--config", str(config), "run", "--sim",
            "--sim-press-every", f"{press_every_s:g}"]
    env = {k: v for k, v in os.environ.items() if k not in ("ASSISTANT_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.update(HOME=str(workdir), GPIOZERO_PIN_FACTORY="mock", PYTHONUNBUFFERED="1")
    report = RestartReport()
    t0 = time.monotonic()
    kinds = [signal.SIGTERM if i % 2 == 0 else signal.SIGKILL for i in range(cycles)]
    rng.shuffle(kinds)
    for signum in kinds:
        app = _Appliance(argv, env, workdir)
        report.starts += 1
        delay = rng.uniform(0.5, max_kill_s)
        time.sleep(delay)
        report.kill_points_s.append(round(delay, 2))
        if not app.ready.is_set():
            report.killed_while_loading += 1
        if app.proc.poll() is not None:
            report.problems.append(f"the appliance exited by itself with {app.proc.returncode}: {app.stderr_tail()}")
            continue
        app.signal(signum)
        code = app.wait(60)
        report.exit_codes.append(code)
        report.cycles += 1
        if signum == signal.SIGTERM:
            report.sigterm += 1
            clean = code == 0 and any(STOPPED_MARK in line for line in app.lines)
            if not clean and not (code == -signal.SIGTERM and not app.ready.is_set()):
                report.problems.append(f"SIGTERM at {delay:.1f} s: exit {code}, not a clean stop: {app.stderr_tail()}")
        else:
            report.kill9 += 1
    before = _completed(log)
    app = _Appliance(argv, env, workdir)
    report.starts += 1
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and _completed(log) <= before and app.proc.poll() is None:
        time.sleep(0.2)
    report.served_after_last_restart = _completed(log) > before
    if not report.served_after_last_restart:
        report.problems.append(f"no turn was completed after the last restart: {app.stderr_tail()}")
    app.signal(signal.SIGTERM)
    code = app.wait(60)
    report.exit_codes.append(code)
    if code != 0 or not any(STOPPED_MARK in line for line in app.lines):
        report.problems.append(f"the final SIGTERM gave exit {code}: {app.stderr_tail()}")
    read = read_turns(log)
    report.records = len(read.entries)
    report.completed_records = _completed(log)
    report.torn_last_line = read.torn_lines
    report.bad_lines = read.bad_lines
    counts = collections.Counter(e.turn_id for e in read.entries)
    report.duplicate_ids = sorted(t for t, n in counts.items() if n > 1)
    if report.duplicate_ids:
        report.problems.append(f"turn ids logged twice: {report.duplicate_ids}")
    if report.bad_lines:
        report.problems.append(f"unreadable lines in the middle of the log: {report.bad_lines}")
    state = workdir / "state"
    report.leftover_files = sorted(p.name for p in state.iterdir() if p.name.endswith(".tmp")) if state.is_dir() else []
    report.duration_s = round(time.monotonic() - t0, 1)
    return report
