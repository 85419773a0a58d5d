"""Install catalogued models: download or take a local zip, verify it, unpack it atomically, record it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from assistant.errors import InstallError, ModelNotFound
from assistant.models.catalogue import (
    CatalogueEntry,
    VerifyReport,
    embedded_files,
    embedded_path,
    file_sha256,
    load_catalogue,
    verify_embedded,
)

_LOG = logging.getLogger(__name__)

MANIFEST = "manifest.json"
"""The install manifest, directly under the models directory."""
TIMEOUT_S = 30.0
"""Network timeout for each read of a download (s)."""
_CHUNK = 1 << 18
Progress = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_done, bytes_total_or_None)`` while an archive is read."""


@dataclass(frozen=True)
class InstalledModel:
    """One model the installer put in place, as recorded in the manifest."""

    name: str
    kind: str
    path: Path
    """The model directory (absolute)."""
    sha256: str
    """SHA-256 of the archive it was unpacked from (hex)."""
    size: int
    """Size of that archive (bytes)."""
    installed_at: str
    """When it was installed (ISO 8601, UTC)."""
    source: str
    """URL or local file it came from."""
    language: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    """SHA-256 of every unpacked file, by path relative to ``path``; ``verify`` re-hashes them."""


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
        return {name: InstalledModel(**{**rec, "path": (models_dir / rec["path"]).resolve()})
                for name, rec in data["models"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise InstallError(f"the install manifest {path} is not in the expected format ({exc!r}); "
                           "move it aside and reinstall the models") from exc


def _write_manifest(models_dir: Path, models: dict[str, InstalledModel]) -> None:
    """Write the manifest atomically (temp file, fsync, rename); paths relative to ``models_dir``."""
    records = {}
    for name, m in sorted(models.items()):
        rec = asdict(m)
        rec["path"] = os.path.relpath(m.path, models_dir)
        records[name] = rec
    text = json.dumps({"version": 1, "models": records}, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=models_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, models_dir / MANIFEST)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InstallError(f"cannot write the install manifest in {models_dir}: {exc}") from exc


@contextlib.contextmanager
def _locked(models_dir: Path) -> Iterator[None]:
    """Hold the models directory's install lock; clear what an interrupted install left behind."""
    with open(models_dir / ".install.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InstallError(f"another install is running in {models_dir}; wait for it to finish") from exc
        for stale in models_dir.glob(".tmp-*"):
            _LOG.info("removing %s left by an interrupted install", stale)
            shutil.rmtree(stale, ignore_errors=True)
        yield


def install(name: str, *, models_dir: Path, from_file: Path | None = None, progress: Progress | None = None,
            catalogue: dict[str, CatalogueEntry] | None = None) -> InstalledModel:
    """Install catalogue entry ``name`` into ``models_dir`` from its URL or from the zip ``from_file``.

    The archive's size and SHA-256 are checked against the catalogue before anything is unpacked;
    it is unpacked in a temporary folder under ``models_dir`` and renamed into place only when
    whole, then the manifest is rewritten atomically. A download that fails the check is deleted.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    entry = cat.get(name)
    if entry is None:
        raise InstallError(f"unknown model '{name}'; known: {', '.join(sorted(cat))}")
    if entry.embedded:
        raise InstallError(f"'{name}' comes inside the package '{entry.package}': nothing to install")
    assert entry.url is not None and entry.top_dir is not None
    models_dir = models_dir.expanduser()
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"cannot create the models directory {models_dir}: {exc}") from exc
    with _locked(models_dir):
        work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=models_dir))
        try:
            if from_file is not None:
                archive, source = Path(from_file).expanduser(), str(Path(from_file).expanduser().resolve())
                digest, size = _hash_local(archive, progress)
                _check(entry, archive, digest, size, downloaded=False)
            else:
                archive, source = work / f"{entry.top_dir}.zip", entry.url
                digest, size = _download(entry, archive, progress)
                _check(entry, archive, digest, size, downloaded=True)
            files = _unpack(entry, archive, work / "unpacked")
            dest = _place(work / "unpacked" / entry.top_dir, models_dir / entry.top_dir, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        model = InstalledModel(name=name, kind=entry.kind, path=dest.resolve(), sha256=digest, size=size,
                               installed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               source=source, language=entry.language, files=files)
        models = read_manifest(models_dir)
        models[name] = model
        _write_manifest(models_dir, models)
    _LOG.info("installed %s in %s (sha256 %s)", name, dest, digest)
    return model


def _copy(src: IO[bytes], out: IO[bytes] | None, total: int | None, progress: Progress | None) -> tuple[str, int]:
    """Read ``src`` to its end (writing to ``out`` if given); returns its SHA-256 and length."""
    h, done = hashlib.sha256(), 0
    while block := src.read(_CHUNK):
        if out is not None:
            out.write(block)
        h.update(block)
        done += len(block)
        if progress:
            progress(done, total)
    return h.hexdigest(), done


def _hash_local(archive: Path, progress: Progress | None) -> tuple[str, int]:
    if not archive.is_file():
        raise InstallError(f"{archive} does not exist or is not a file")
    try:
        with archive.open("rb") as f:
            return _copy(f, None, archive.stat().st_size, progress)
    except OSError as exc:
        raise InstallError(f"cannot read {archive}: {exc}") from exc


def _download(entry: CatalogueEntry, dest: Path, progress: Progress | None) -> tuple[str, int]:
    """Fetch ``entry.url`` to ``dest`` while hashing it; network trouble becomes an InstallError."""
    assert entry.url is not None
    hint = (f"no network? download {entry.url} on another computer and run: "
            f"assistant models install {entry.name} --from FILE")
    try:
        with urllib.request.urlopen(entry.url, timeout=TIMEOUT_S) as resp, dest.open("wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else entry.size
            return _copy(resp, out, total, progress)
    except urllib.error.HTTPError as exc:
        raise InstallError(f"cannot download {entry.url}: HTTP {exc.code} {exc.reason}; {hint}") from exc
    except urllib.error.URLError as exc:
        raise InstallError(f"cannot download {entry.url}: {exc.reason}; {hint}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise InstallError(f"download of {entry.url} failed: {exc}; {hint}") from exc


def _check(entry: CatalogueEntry, archive: Path, digest: str, size: int, *, downloaded: bool) -> None:
    """Compare size and SHA-256 with the catalogue; a bad download is deleted, a user's file is kept."""
    problem = None
    if entry.size is not None and size != entry.size:
        problem = f"is {size} bytes, expected {entry.size}"
    elif entry.sha256 is not None and digest != entry.sha256:
        problem = f"has SHA-256 {digest}, expected {entry.sha256}"
    if problem is None:
        if entry.sha256 is None:
            _LOG.warning("%s has no pinned SHA-256 in the catalogue; recording %s from this archive",
                         entry.name, digest)
        return
    if downloaded:
        archive.unlink(missing_ok=True)
        raise InstallError(f"the download of {entry.url} {problem}; it was deleted: try again, or use --from FILE")
    raise InstallError(f"{archive} {problem}: it is not the archive of '{entry.name}' (left untouched)")


def _unpack(entry: CatalogueEntry, archive: Path, dest: Path) -> dict[str, str]:
    """Unpack the zip into ``dest`` (checked: one top folder, no escaping paths, room on disk)."""
    assert entry.top_dir is not None
    files: dict[str, str] = {}
    top = entry.top_dir + "/"
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                parts = info.filename.split("/")
                if not info.filename.startswith(top) or ".." in parts or info.filename.startswith("/"):
                    raise InstallError(f"{archive}: unexpected entry {info.filename!r}: every file must be "
                                       f"under {top}")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise InstallError(f"{archive}: refusing the symbolic link {info.filename!r}")
            need = sum(i.file_size for i in infos)
            free = shutil.disk_usage(dest.parent).free
            if need > free:
                raise InstallError(f"not enough disk space in {dest.parent}: {need} bytes needed, {free} free")
            for info in infos:
                target = dest / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    files[info.filename[len(top):]] = _copy(src, out, None, None)[0]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise InstallError(f"{archive} is not a valid zip archive: {exc}") from exc
    except OSError as exc:
        raise InstallError(f"cannot unpack {archive} into {dest}: {exc}") from exc
    model_dir = dest / entry.top_dir
    if not model_dir.is_dir():
        raise InstallError(f"{archive} does not contain the folder {entry.top_dir}/")
    if entry.kind == "vosk":
        from assistant.speech.vosk_asr import model_problems

        problems = model_problems(model_dir)
        if problems:
            raise InstallError(f"{archive} does not hold a usable Vosk model: {'; '.join(problems)}")
    return files


def _place(new: Path, dest: Path, work: Path) -> Path:
    """Rename ``new`` to ``dest``; an older copy is moved aside first and deleted after."""
    old = work / "previous"
    try:
        if dest.exists():
            os.rename(dest, old)
        try:
            os.rename(new, dest)
        except OSError:
            if old.exists():
                os.rename(old, dest)
            raise
    except OSError as exc:
        raise InstallError(f"cannot put the model in place at {dest}: {exc}") from exc
    return dest


def verify(name: str, *, models_dir: Path, catalogue: dict[str, CatalogueEntry] | None = None) -> VerifyReport:
    """Re-hash a model's files: an installed one against its manifest, an embedded one against its package.

    An installed model's archive is not kept, so its own hash cannot be recomputed: what is checked
    is that the archive hash recorded at install is the one the catalogue pins, and that every
    unpacked file still has the hash it had when it was unpacked (and, for Vosk, the model layout).
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    models_dir = models_dir.expanduser()
    entry = cat.get(name)
    record = read_manifest(models_dir).get(name)
    if entry is not None and entry.embedded:
        return verify_embedded(entry)
    if record is None:
        known = "" if entry is not None else f" (not in the catalogue either; known: {', '.join(sorted(cat))})"
        raise ModelNotFound(f"model '{name}' is not installed in {models_dir}{known}; "
                            f"run: assistant models install {name}")
    problems: list[str] = []
    if entry is not None and entry.sha256 is not None and record.sha256 != entry.sha256:
        problems.append(f"installed from an archive with SHA-256 {record.sha256}, the catalogue pins {entry.sha256}")
    if not record.path.is_dir():
        return VerifyReport(name, record.path, 0, (*problems, f"{record.path} is missing"))
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
    return VerifyReport(name, record.path, checked, tuple(problems))


@dataclass(frozen=True)
class ModelListing:
    """One line of ``assistant models list``."""

    name: str
    kind: str
    status: str
    """``embedded``, ``installed``, ``not installed`` or ``missing`` (embedded package absent)."""
    path: Path | None
    size: int | None
    """Installed: archive bytes; embedded: bytes of its files."""
    sha256: str | None
    """Installed: archive SHA-256; embedded single file: its SHA-256 from the package RECORD."""
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
                out.append(ModelListing(name, e.kind, "embedded", embedded_path(e),
                                        sum(f.size or 0 for f in files),
                                        files[0].sha256 if len(files) == 1 else None, e.licence, e.description))
            except ModelNotFound:
                out.append(ModelListing(name, e.kind, "missing", None, None, None, e.licence, e.description))
        elif name in records:
            r = records[name]
            out.append(ModelListing(name, e.kind, "installed", r.path, r.size, r.sha256, e.licence, e.description))
        else:
            out.append(ModelListing(name, e.kind, "not installed", None, e.size, e.sha256, e.licence, e.description))
    for name, r in records.items():
        if name not in cat:
            out.append(ModelListing(name, r.kind, "installed", r.path, r.size, r.sha256, "?", "not in the catalogue"))
    return out
