"""What is installed and whether it is intact: verify, list, remove, and what fits this device's memory."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import InstallError, ModelNotFound
from assistant.models.catalogue import CatalogueEntry, load_catalogue
from assistant.models.manifest import (
    InstalledModel,
    ensure_models_dir,
    install_lock,
    partial_dir,
    read_manifest,
    write_manifest,
)
from assistant.models.digest import file_sha256
from assistant.models.packaged import VerifyReport, embedded_files, embedded_path, verify_embedded

_LOG = logging.getLogger(__name__)

MEMINFO = Path("/proc/meminfo")
RESERVE_MB = 512
"""Memory kept for the system and the other engines when judging whether a model fits (MB)."""


def verify(name: str, *, models_dir: Path, catalogue: dict[str, CatalogueEntry] | None = None) -> VerifyReport:
    """Re-hash a model's files: an installed one against its manifest, an embedded one against its package.

    For an installed model every installed file is re-hashed against the hash recorded when it
    was put in place, each download's hash is compared with what the catalogue pins now, and the
    Vosk layout is checked. A hash that nobody vouched for (trusted on first use) is named in the
    report's notes.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    models_dir = models_dir.expanduser()
    entry = cat.get(name)
    if entry is not None and entry.embedded:
        return verify_embedded(entry)
    record = read_manifest(models_dir).get(name)
    if record is None:
        known = "" if entry is not None else f" (not in the catalogue either; known: {', '.join(sorted(cat))})"
        raise ModelNotFound(f"model '{name}' is not installed in {models_dir}{known}; "
                            f"run: assistant models install {name}")
    problems: list[str] = []
    notes = [f"{n}: SHA-256 recorded on first use (neither the catalogue nor the server stated one)"
             for n in record.first_use()]
    if entry is not None:
        pins = {f.name: f.sha256 for f in entry.files}
        for d in record.downloads or []:
            if pins.get(d.name) is not None and pins[d.name] != d.sha256:
                problems.append(f"{d.name} was installed with SHA-256 {d.sha256}, the catalogue pins {pins[d.name]}")
        if not record.downloads and entry.sha256 is not None and record.sha256 != entry.sha256:
            problems.append(f"installed from an archive with SHA-256 {record.sha256}, the catalogue pins {entry.sha256}")
    if not record.path.is_dir():
        return VerifyReport(name, record.path, 0, (*problems, f"{record.path} is missing"), tuple(notes))
    checked = 0
    for rel, digest in sorted(record.files.items()):
        path = record.path / rel
        if not path.is_file():
            problems.append(f"missing {rel}")
            continue
        checked += 1
        if file_sha256(path) != digest:
            problems.append(f"{rel} has changed since it was installed")
    if record.kind == "vosk":
        from assistant.speech.vosk_asr import model_problems

        problems += [p for p in model_problems(record.path) if p.removeprefix("missing ") not in record.files]
    return VerifyReport(name, record.path, checked, tuple(problems), tuple(notes))


@dataclass(frozen=True)
class ModelListing:
    """One line of ``assistant models list``."""

    name: str
    kind: str
    status: str
    """``embedded``, ``installed``, ``not installed``, ``not supported`` (listed, cannot be used today) or
    ``missing`` (embedded package absent)."""
    path: Path | None
    size: int | None
    """Installed: downloaded bytes; embedded: bytes of its files; otherwise the catalogue's download size."""
    sha256: str | None
    """Installed: first file's SHA-256; embedded single file: its SHA-256 from the package RECORD."""
    licence: str
    description: str


def list_models(*, models_dir: Path, catalogue: dict[str, CatalogueEntry] | None = None) -> list[ModelListing]:
    """Every catalogued model (embedded, installed or not) plus installed ones the catalogue lacks."""
    cat = catalogue if catalogue is not None else load_catalogue()
    records = read_manifest(models_dir.expanduser())
    out: list[ModelListing] = []
    for name, e in cat.items():
        if e.embedded:
            try:
                files = embedded_files(e)
                out.append(ModelListing(name, e.kind, "embedded", embedded_path(e), sum(f.size or 0 for f in files),
                                        files[0].sha256 if len(files) == 1 else None, e.licence, e.description))
            except ModelNotFound:
                out.append(ModelListing(name, e.kind, "missing", None, None, None, e.licence, e.description))
        elif name in records:
            r = records[name]
            out.append(ModelListing(name, e.kind, "installed", r.path, r.size, r.sha256, e.licence, e.description))
        else:
            status = "not supported" if e.unsupported else "not installed"
            out.append(ModelListing(name, e.kind, status, None, e.download_size, e.sha256, e.licence, e.description))
    for name, r in records.items():
        if name not in cat:
            out.append(ModelListing(name, r.kind, "installed", r.path, r.size, r.sha256, "?", "not in the catalogue"))
    return out


def mem_total_mb(meminfo: Path = MEMINFO) -> int | None:
    """This device's RAM (MB) from ``MemTotal`` in /proc/meminfo; None when it cannot be read."""
    try:
        for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError) as exc:
        _LOG.warning("cannot read the memory size from %s: %s", meminfo, exc)
    return None


@dataclass(frozen=True)
class Availability:
    """One line of ``assistant models list --available``: a catalogue entry and whether it fits here."""

    entry: CatalogueEntry
    status: str
    """``embedded``, ``installed`` or ``not installed``."""
    fits: bool | None
    """``ram_mb`` fits in this device's memory less RESERVE_MB; None when either is unknown."""


def available(*, models_dir: Path, catalogue: dict[str, CatalogueEntry] | None = None,
              meminfo: Path = MEMINFO) -> tuple[int | None, list[Availability]]:
    """This device's RAM (MB) and every catalogue entry with its status and whether it fits in that RAM."""
    cat = catalogue if catalogue is not None else load_catalogue()
    records = read_manifest(models_dir.expanduser())
    total = mem_total_mb(meminfo)
    rows = []
    for name, e in cat.items():
        status = ("embedded" if e.embedded else "installed" if name in records else
                  "not supported" if e.unsupported else "not installed")
        fits = None if total is None or e.ram_mb is None else e.ram_mb <= total - RESERVE_MB
        rows.append(Availability(e, status, fits))
    return total, rows


def remove(name: str, *, models_dir: Path, catalogue: dict[str, CatalogueEntry] | None = None) -> InstalledModel:
    """Forget an installed model and delete its folder (and any interrupted download of it).

    The manifest is rewritten first (atomically), so an interruption leaves at worst an orphaned
    hidden folder that the next install or removal clears, never a manifest naming a half-deleted
    model. Embedded models cannot be removed: they belong to their package.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    entry = cat.get(name)
    if entry is not None and entry.embedded:
        raise InstallError(f"'{name}' comes inside the package '{entry.package}' and is not removed here; "
                           f"it goes away with the package (pip uninstall {entry.package})")
    models_dir = ensure_models_dir(models_dir)
    with install_lock(models_dir):
        models = read_manifest(models_dir)
        record = models.pop(name, None)
        if record is None:
            raise ModelNotFound(f"model '{name}' is not installed in {models_dir}: nothing to remove")
        inside = record.path.resolve().parent == models_dir.resolve()
        write_manifest(models_dir, models)
        if inside and record.path.exists():
            trash = Path(tempfile.mkdtemp(prefix=".tmp-remove-", dir=models_dir))
            try:
                os.rename(record.path, trash / record.path.name)
            except OSError as exc:
                raise InstallError(f"'{name}' is no longer in the manifest but {record.path} could not be "
                                   f"deleted: {exc}; delete it by hand") from exc
            shutil.rmtree(trash, ignore_errors=True)
        elif not inside:
            _LOG.warning("%s is outside %s and is left in place", record.path, models_dir)
        shutil.rmtree(partial_dir(models_dir, name), ignore_errors=True)
    _LOG.info("removed %s from %s", name, models_dir)
    return record
