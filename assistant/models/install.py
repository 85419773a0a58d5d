"""Install catalogued models: download (resumably) or take local files, verify, check, place atomically, record."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from assistant.errors import InstallError
from assistant.models.catalogue import CatalogueEntry, SourceFile, load_catalogue
from assistant.models.content import content_problems
from assistant.models.download import Progress, fetch
from assistant.models.inventory import list_models, verify
from assistant.models.manifest import (
    Download,
    InstalledModel,
    ensure_models_dir,
    install_lock,
    partial_dir,
    read_manifest,
    write_manifest,
)
from assistant.models.offer import ladder_room
from assistant.models.unpack import place, unpack_zip

__all__ = ["InstallResult", "InstalledModel", "install", "list_models", "read_manifest", "verify"]

_LOG = logging.getLogger(__name__)

DiskFree = Callable[[Path], int]
"""Free bytes on the file system holding a path (``shutil.disk_usage(path).free``)."""


def disk_free(path: Path) -> int:
    """Free bytes on the file system that holds ``path``."""
    return shutil.disk_usage(path).free


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


@dataclass(frozen=True)
class InstallResult:
    """What ``install`` did."""

    model: InstalledModel
    entry: CatalogueEntry
    reused: bool
    """The model was already installed and verified: nothing was fetched or replaced."""
    fetched_bytes: int
    """Bytes that came over the network in this run (resumed parts excluded)."""


def no_network_hint(entry: CatalogueEntry) -> str:
    """What to do without network: fetch the files elsewhere and install with ``--from``."""
    listed = "; ".join(f"{f.url or f.name} ({_mb(f.size)}, SHA-256 {f.sha256 or 'not pinned'})" for f in entry.files)
    where = f" (see {entry.homepage})" if entry.homepage else ""
    target = "FILE" if len(entry.files) == 1 else "DIR (a folder holding the files under these names)"
    return (f"no network? download {listed}{where} on another computer, copy it over and run: "
            f"assistant models install {entry.name} --from {target}")


def install(name: str, *, models_dir: Path, from_file: Path | None = None, progress: Progress | None = None,
            catalogue: dict[str, CatalogueEntry] | None = None, force: bool = False, with_ladder: bool = True,
            free: DiskFree = disk_free) -> InstallResult:
    """Install catalogue entry ``name`` into ``models_dir`` from its pinned URLs or from ``from_file``.

    ``from_file`` is the file of a one-file entry, or a folder holding a multi-file entry's files.
    Free disk space (download, unpacking and, for an LLM with ``with_ladder``, the ladder to be
    built) is checked before anything starts. Every file's size and SHA-256 are checked against
    the catalogue, else against the hash the server states, else recorded as trusted on first
    use. The model is assembled in a hidden folder, checked (Vosk layout, GGUF metadata, Piper
    voice) and renamed into place; then the manifest is rewritten atomically. A model already
    installed with the same pins that still verifies is left as it is unless ``force``.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    entry = cat.get(name)
    if entry is None:
        raise InstallError(f"unknown model '{name}'; known: {', '.join(sorted(cat))}")
    if entry.embedded:
        raise InstallError(f"'{name}' comes inside the package '{entry.package}': nothing to install")
    if entry.unsupported:
        raise InstallError(f"'{name}' is listed but cannot be used today: {entry.unsupported}")
    models_dir = ensure_models_dir(models_dir)
    with install_lock(models_dir):
        old = read_manifest(models_dir).get(name)
        if old is not None and not force and from_file is None and _still_good(entry, old, models_dir, cat):
            _LOG.info("%s is already installed in %s and verifies; nothing to do", name, old.path)
            return InstallResult(old, entry, reused=True, fetched_bytes=0)
        _check_space(entry, models_dir, from_file, with_ladder, free)
        work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=models_dir))
        try:
            downloads, fetched, pinned = [], 0, set()
            (work / "incoming").mkdir()
            for source in entry.files:
                download, path, got = _obtain(entry, source, models_dir, from_file, progress, work / "incoming")
                downloads.append((download, path))
                fetched += got
                if download.origin == "catalogue":
                    pinned.add(source.name)
            try:
                model_dir, files = _assemble(entry, downloads, work)
                problems = content_problems(entry, model_dir, pinned=pinned)
                if problems:
                    raise InstallError(f"'{name}' is not what the catalogue says ({'; '.join(problems)}); "
                                       f"{_discard(entry, downloads, local=from_file is not None)}")
            except InstallError as exc:
                if "is not what the catalogue says" not in str(exc):
                    raise InstallError(f"{exc}; {_discard(entry, downloads, local=from_file is not None)}") from exc
                raise
            dest = place(model_dir, models_dir / (entry.top_dir or name), work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            _remove_if_empty(partial_dir(models_dir, name))
        first = downloads[0][0]
        model = InstalledModel(
            name=name, kind=entry.kind, path=dest.resolve(), sha256=first.sha256,
            size=sum(d.size for d, _ in downloads), installed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            source=first.source, language=entry.language, files=files, downloads=[d for d, _ in downloads])
        models = read_manifest(models_dir)
        models[name] = model
        write_manifest(models_dir, models)
        shutil.rmtree(partial_dir(models_dir, name), ignore_errors=True)  # stale parts of an earlier attempt
        _remove_if_empty(partial_dir(models_dir, name))
    for d in model.downloads:
        if d.origin == "first-use":
            _LOG.warning("%s: neither the catalogue nor the server stated a SHA-256 for %s; recorded %s on first use",
                         name, d.name, d.sha256)
    _LOG.info("installed %s in %s", name, dest)
    return InstallResult(model, entry, reused=False, fetched_bytes=fetched)


def _discard(entry: CatalogueEntry, downloads: list[tuple[Download, Path]], *, local: bool) -> str:
    """After a failed unpack or check: what happens to the files, said in words for the error message.

    A person's own file is never touched. A downloaded archive whose hash was vouched for is the
    published file, so it is kept for the next attempt (the failure may be a full disk); anything
    else is deleted.
    """
    if local:
        return "your file was left untouched"
    if entry.is_zip and all(d.origin != "first-use" for d, _ in downloads):
        return "the download matched its published hash and is kept for the next attempt"
    for _, path in downloads:
        path.unlink(missing_ok=True)
    return "the download was removed"


def _remove_if_empty(folder: Path) -> None:
    """Drop an empty ``.partial/NAME`` folder (and ``.partial`` itself when that empties too)."""
    for path in (folder, folder.parent):
        try:
            path.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


def _still_good(entry: CatalogueEntry, old: InstalledModel, models_dir: Path, cat: dict[str, CatalogueEntry]) -> bool:
    pins = {f.name: f.sha256 for f in entry.files}
    recorded = {d.name: d.sha256 for d in old.downloads}
    if set(pins) != set(recorded) or any(p is not None and p != recorded[n] for n, p in pins.items()):
        return False
    return verify(entry.name, models_dir=models_dir, catalogue=cat).ok


def _check_space(entry: CatalogueEntry, models_dir: Path, from_file: Path | None, with_ladder: bool,
                 free: DiskFree) -> None:
    """Refuse to start when the download, its unpacking and the ladder to build cannot fit."""
    parts: list[str] = []
    need = 0
    download = 0
    for f in entry.files:
        if f.size is None:
            continue
        if from_file is None:
            part = partial_dir(models_dir, entry.name) / f"{f.name}.part"
            download += max(0, f.size - (part.stat().st_size if part.exists() else 0))
        elif not entry.is_zip:
            download += f.size  # a local file is copied in
    if download:
        need += download
        parts.append(f"{'copy' if from_file is not None else 'download'} {_mb(download)}")
    if entry.is_zip and entry.files[0].size is not None:
        unpack = entry.unpacked_size or 2 * entry.files[0].size
        need += unpack
        parts.append(f"unpacking {_mb(unpack)}")
    if with_ladder and entry.kind == "llm":
        ladder = ladder_room(entry)
        if ladder:
            need += ladder
            parts.append(f"quantization ladder {_mb(ladder)}")
    available = free(models_dir)
    if need > available:
        raise InstallError(f"not enough disk space in {models_dir} for '{entry.name}': {_mb(need)} needed "
                           f"({', '.join(parts)}), {_mb(available)} free; free some space or install elsewhere "
                           "with --dir DIR")


def _expected(source: SourceFile, size: int, digest: str, stated: str | None) -> tuple[str, str | None]:
    """(origin of the hash checked, problem or None) for a file of ``size`` bytes hashing to ``digest``."""
    if source.size is not None and size != source.size:
        return "catalogue", f"is {size} bytes, the catalogue says {source.size}"
    if source.sha256 is not None:
        return "catalogue", None if digest == source.sha256 else f"has SHA-256 {digest}, the catalogue pins {source.sha256}"
    if stated is not None:
        return "server", None if digest == stated else f"has SHA-256 {digest}, the server states {stated}"
    return "first-use", None


def _obtain(entry: CatalogueEntry, source: SourceFile, models_dir: Path, from_file: Path | None,
            progress: Progress | None, stage: Path) -> tuple[Download, Path, int]:
    """One file, fetched or local, checked; returns its record, where it is now, and the bytes fetched.

    A local file is copied into ``stage`` while it is hashed (a zip is only read), so what is
    checked is exactly what gets installed and the person's file is never moved or linked.
    """
    if from_file is not None:
        local = Path(from_file).expanduser()
        local = local / source.name if local.is_dir() else local
        if not local.is_file():
            raise InstallError(f"{local} does not exist or is not a file")
        copy = None if entry.is_zip else stage / source.name
        try:
            size, digest = _read_local(local, copy, progress)
        except OSError as exc:
            raise InstallError(f"cannot read {local} into {stage}: {exc}") from exc
        origin, problem = _expected(source, size, digest, None)
        if problem:
            raise InstallError(f"{local} {problem}: it is not the {source.name} of '{entry.name}' (left untouched)")
        return Download(source.name, str(local.resolve()), size, digest, origin), copy or local, 0
    if source.url is None:
        raise InstallError(f"the catalogue has no pinned download URL for {source.name} of '{entry.name}'; "
                           f"{no_network_hint(entry)}")
    part = partial_dir(models_dir, entry.name) / f"{source.name}.part"
    got = fetch(source.url, part, expected_size=source.size, hint=no_network_hint(entry), progress=progress)
    origin, problem = _expected(source, got.size, got.sha256, got.server_sha256)
    if problem:
        part.unlink(missing_ok=True)
        raise InstallError(f"the download of {source.url} {problem}; the bad file was removed: try again, or "
                           "fetch it by hand and use --from FILE")
    return Download(source.name, source.url, got.size, got.sha256, origin), part, got.size - got.resumed_from


def _read_local(path: Path, copy: Path | None, progress: Progress | None) -> tuple[int, str]:
    """Hash ``path`` (copying it to ``copy`` on the way when given); returns its size and SHA-256."""
    h, done, total = hashlib.sha256(), 0, path.stat().st_size
    with path.open("rb") as f, (copy.open("wb") if copy is not None else open(os.devnull, "wb")) as out:
        while block := f.read(1 << 20):
            out.write(block)
            h.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return done, h.hexdigest()


def _assemble(entry: CatalogueEntry, downloads: list[tuple[Download, Path]], work: Path) -> tuple[Path, dict[str, str]]:
    """Build the model folder inside ``work``: unpack the zip, or move the checked files in."""
    top = entry.top_dir or entry.name
    if entry.is_zip:
        return work / "unpacked" / top, unpack_zip(downloads[0][1], top, work / "unpacked", label=downloads[0][0].name)
    model_dir = work / top
    model_dir.mkdir()
    placed: dict[str, str] = {}
    for download, path in downloads:
        target = model_dir / download.name
        try:
            os.replace(path, target)
        except OSError as exc:
            raise InstallError(f"cannot put {download.name} into {model_dir}: {exc}") from exc
        placed[download.name] = download.sha256
    return model_dir, placed
