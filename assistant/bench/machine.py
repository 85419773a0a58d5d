"""Facts about the machine and about processes, read from /proc: CPU, memory, load, peak RSS and CPU time."""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)

PROC = Path("/proc")


def _kb(path: Path, key: str) -> int | None:
    """The ``key: N kB`` value of a /proc file such as ``status`` or ``meminfo``."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _status_kb(pid: int | str, key: str) -> int | None:
    return _kb(PROC / str(pid) / "status", key)


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size of a process (VmHWM, MB = 10^6 bytes); None when /proc cannot tell."""
    kb = _status_kb(pid, "VmHWM")
    return None if kb is None else kb * 1024 / 1e6


def rss_mb(pid: int | str = "self") -> float | None:
    """Current resident set size of a process (VmRSS, MB)."""
    kb = _status_kb(pid, "VmRSS")
    return None if kb is None else kb * 1024 / 1e6


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far, all threads (s), from /proc/PID/stat."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


CONTENDED_CORES = 0.3
"""Other processes (or the hypervisor, as steal time) using more than this many cores disturb a timed run."""


class CpuWatch:
    """How much CPU the rest of the machine used while this process did a timed piece of work.

    Reads the busy jiffies of all CPUs (user, nice, system, irq, softirq and steal, which is time
    the hypervisor gave to other machines) from /proc/stat and subtracts this process's own CPU
    time. ``others_cores`` is what is left per second of wall time.
    """

    def __init__(self) -> None:
        self._t = 0.0
        self._busy = 0.0
        self._own = 0.0

    @staticmethod
    def _machine_busy_s() -> float:
        try:
            first = (PROC / "stat").read_text().splitlines()[0].split()
        except (OSError, IndexError):
            return 0.0
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        """Begin watching."""
        self._t, self._busy, self._own = time.monotonic(), self._machine_busy_s(), time.process_time()

    def others_cores(self) -> float:
        """Cores the rest of the machine kept busy since ``start()`` (0 when nothing else ran)."""
        wall = time.monotonic() - self._t
        if wall <= 0:
            return 0.0
        others = (self._machine_busy_s() - self._busy) - (time.process_time() - self._own)
        return max(0.0, others / wall)


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def _cpu_model() -> str:
    found: dict[str, str] = {}
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            found.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    for key in ("model name", "hardware", "model"):  # x86 has "model name"; a Pi's kernel may give "Model"
        if found.get(key):
            return found[key]
    return platform.processor() or "unknown"


def _mem_total_mb() -> float | None:
    kb = _kb(PROC / "meminfo", "MemTotal")
    return None if kb is None else kb * 1024 / 1e6


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on."""
    pi_model = None
    try:
        pi_model = (PROC / "device-tree" / "model").read_text().strip("\0\n ")
    except OSError:
        pass
    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hostname": platform.node(),
        "machine": platform.machine(),
        "board": pi_model,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": _mem_total_mb(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": {p: _version(p) for p in ("llama-cpp-python", "piper-tts", "onnxruntime", "vosk",
                                               "pocketsphinx", "numpy")},
        "load_average_start": load_average(),
    }
