"""The install manifest (what is installed where, with which hashes) and the models directory's lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.atomic import write_text_atomic
from assistant.errors import InstallError

_LOG = logging.getLogger(__name__)

MANIFEST = "manifest.json"
"""The install manifest, directly under the models directory."""
PARTIAL_DIR = ".partial"
"""Interrupted downloads (``NAME/FILE.part``) wait here to be resumed; nothing is loaded from it."""
ORIGINS = ("catalogue", "server", "first-use")
"""Where a recorded SHA-256 came from: pinned in the catalogue, stated by the server, or computed on first use."""


@dataclass(frozen=True)
class Download:
    """One file as it was fetched (or taken from a local file) and checked."""

    name: str
    """File name inside the model folder (for a zip: the archive's name)."""
    source: str
    """URL or local file it came from."""
    size: int
    """Bytes."""
    sha256: str
    """SHA-256 of the file as received (hex)."""
    origin: str
    """What the hash was checked against: ``catalogue``, ``server`` or ``first-use`` (nothing to check)."""


@dataclass(frozen=True)
class InstalledModel:
    """One model the installer put in place, as recorded in the manifest."""

    name: str
    kind: str
    path: Path
    """The model directory (absolute)."""
    sha256: str
    """SHA-256 of the first (usually only) downloaded file (hex)."""
    size: int
    """Bytes of all downloaded files."""
    installed_at: str
    """When it was installed (ISO 8601, UTC)."""
    source: str
    """URL or local file the first file came from."""
    language: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    """SHA-256 of every installed file, by path relative to ``path``; ``verify`` re-hashes them."""
    downloads: list[Download] = field(default_factory=list)
    """Every file fetched, with where its hash came from."""

    def first_use(self) -> list[str]:
        """Names of files whose hash nobody vouched for (recorded on first use)."""
        return [d.name for d in self.downloads if d.origin == "first-use"]


def _from_record(models_dir: Path, rec: dict[str, Any]) -> InstalledModel:
    downloads = [Download(**d) for d in rec.get("downloads", [])]
    return InstalledModel(**{**rec, "path": (models_dir / rec["path"]).resolve(), "downloads": downloads})


def read_manifest(models_dir: Path) -> dict[str, InstalledModel]:
    """The installed models by name; an absent manifest is empty, a damaged one an InstallError."""
    path = models_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InstallError(f"the install manifest {path} cannot be read ({exc}); move it aside and "
                           "reinstall the models") from exc
    try:
        return {name: _from_record(models_dir, rec) for name, rec in data["models"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise InstallError(f"the install manifest {path} is not in the expected format ({exc!r}); "
                           "move it aside and reinstall the models") from exc


def write_manifest(models_dir: Path, models: dict[str, InstalledModel]) -> None:
    """Write the manifest atomically (temp file, fsync, rename); paths relative to ``models_dir``."""
    records = {}
    for name, m in sorted(models.items()):
        rec = asdict(m)
        rec["path"] = os.path.relpath(m.path, models_dir)
        records[name] = rec
    text = json.dumps({"version": 2, "models": records}, indent=2, ensure_ascii=False) + "\n"
    try:
        write_text_atomic(models_dir / MANIFEST, text)
    except OSError as exc:
        raise InstallError(f"cannot write the install manifest in {models_dir}: {exc}") from exc


def ensure_models_dir(models_dir: Path) -> Path:
    """``models_dir`` expanded and created; InstallError naming it when that fails."""
    models_dir = models_dir.expanduser()
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"cannot create the models directory {models_dir}: {exc}") from exc
    return models_dir


@contextlib.contextmanager
def install_lock(models_dir: Path) -> Iterator[None]:
    """Hold the models directory's lock; clear what an interrupted install or removal left behind.

    Interrupted downloads under ``.partial/`` are kept: the next install resumes them.
    """
    with open(models_dir / ".install.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InstallError(f"another install is running in {models_dir}; wait for it to finish") from exc
        for stale in models_dir.glob(".tmp-*"):
            _LOG.info("removing %s left by an interrupted install", stale)
            shutil.rmtree(stale, ignore_errors=True)
        for stale in models_dir.glob(".manifest.*.tmp"):
            stale.unlink(missing_ok=True)
        yield


def partial_dir(models_dir: Path, name: str) -> Path:
    """Where the interrupted downloads of model ``name`` are kept."""
    return models_dir / PARTIAL_DIR / name
