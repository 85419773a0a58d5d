"""Idle cost of the appliance loop: CPU share of one core and peak memory of `assistant run --sim`, nobody pressing."""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import yaml

from assistant.bench.machine import cpu_seconds, peak_rss_mb, rss_mb
from assistant.bench.worker import config_to_mapping
from assistant.config import AssistantConfig, PathsConfig
from assistant.errors import AssistantError

_LOG = logging.getLogger(__name__)

READY_TEXT = "appliance ready"
"""What `assistant run` logs once the model is loaded, the microphone open and the loop waiting."""
_TIER = "tier "


class IdleError(AssistantError):
    """The appliance under test did not start or died while being watched."""


def appliance_idle_command(config_file: Path, sim_out: Path) -> list[str]:
    """The command whose idle cost is measured: the appliance loop on simulated hardware, nobody pressing."""
    return [sys.executable, "-m", "assistant", "--config", str(config_file), "run", "--sim", "--sim-out", str(sim_out)]


def _reader(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def measure_idle(cfg: AssistantConfig, *, seconds: float, start_timeout_s: float = 120.0,
                 settle_s: float = 1.0) -> dict[str, Any]:
    """Start `assistant run --sim`, wait until it is ready, then watch it for ``seconds``.

    CPU share = (utime + stime from /proc/PID/stat, all threads) / wall time, in % of one core.
    Peak RSS = VmHWM of the process (the loading peak included) once the window is over. The
    appliance runs on a copy of the configuration with its state directory in a temporary folder
    and the simulated battery pack (``run --sim`` forces it); it is stopped with SIGTERM afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp_name:
        tmp = Path(tmp_name)
        paths = PathsConfig(state_dir=tmp / "state", models_dir=cfg.paths.models_dir.expanduser())
        config_file = tmp / "config.yaml"
        config_file.write_text(yaml.safe_dump(config_to_mapping(replace(cfg, paths=paths)), sort_keys=False))
        cmd = appliance_idle_command(config_file, tmp / "sim-speaker.wav")
        t_start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stderr, lines), daemon=True).start()
        log: list[str] = []
        try:
            tier = _wait_ready(proc, lines, log, start_timeout_s)
            startup_s = time.monotonic() - t_start
            time.sleep(settle_s)
            c0, w0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            c1, w1 = cpu_seconds(proc.pid), time.monotonic()
            peak, current = peak_rss_mb(proc.pid), rss_mb(proc.pid)
            if proc.poll() is not None or c0 is None or c1 is None:
                raise IdleError(f"the appliance exited while being watched (exit {proc.returncode}): "
                                + " | ".join(log[-3:]))
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return {
        "command": "assistant run --sim (nobody pressing the button)", "tier": tier, "startup_s": startup_s,
        "window_s": w1 - w0, "cpu_s": c1 - c0, "cpu_pct_of_one_core": 100.0 * (c1 - c0) / (w1 - w0),
        "peak_rss_mb": peak, "rss_mb": current,
        "method": "utime+stime of the process (all threads) from /proc/PID/stat over the window after it "
                  "logged 'appliance ready'; peak RSS = VmHWM (loading included)",
    }


def _wait_ready(proc: subprocess.Popen[str], lines: queue.Queue[str], log: list[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                raise IdleError(f"the appliance exited before it was ready (exit {proc.returncode}): "
                                + " | ".join(log[-3:])) from None
            continue
        log.append(line.rstrip())
        _LOG.debug("appliance: %s", line.rstrip())
        if READY_TEXT in line:
            after = line.split(READY_TEXT, 1)[1]
            return after.split(_TIER, 1)[1].split(")")[0] if _TIER in after else "?"
    raise IdleError(f"the appliance was not ready within {timeout_s:.0f} s: " + " | ".join(log[-3:]))
