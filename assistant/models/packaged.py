"""Models that ship inside PyPI packages: where their files are and whether they are still intact."""

from __future__ import annotations

import base64
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ModelNotFound
from assistant.models.catalogue import CatalogueEntry
from assistant.models.digest import file_sha256

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found for one model."""

    name: str
    path: Path | None
    checked_files: int
    """Files re-hashed."""
    problems: tuple[str, ...]
    """Empty when every check passed."""
    notes: tuple[str, ...] = ()
    """Facts worth knowing that are not failures, e.g. a hash trusted on first use."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def _distribution(entry: CatalogueEntry) -> importlib.metadata.Distribution:
    assert entry.package is not None
    try:
        return importlib.metadata.distribution(entry.package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFound(f"the embedded model '{entry.name}' needs the package '{entry.package}', which is "
                            f"not installed; run: pip install {entry.package}") from exc


def embedded_path(entry: CatalogueEntry) -> Path:
    """Where an embedded model's file or folder is on disk (ModelNotFound if its package is missing)."""
    assert entry.embedded and entry.path is not None
    path = Path(str(_distribution(entry).locate_file(entry.path)))
    if not path.exists():
        raise ModelNotFound(f"package '{entry.package}' is installed but {path} is missing; "
                            f"reinstall it: pip install --force-reinstall {entry.package}")
    return path


@dataclass(frozen=True)
class PackagedFile:
    """One file of an embedded model as the package's RECORD lists it."""

    path: Path
    """Absolute path on disk."""
    size: int | None
    """Size the RECORD gives (bytes)."""
    sha256: str | None
    """SHA-256 the RECORD gives (hex)."""


def embedded_files(entry: CatalogueEntry) -> list[PackagedFile]:
    """The files of an embedded model, with the size and hash its package recorded at install."""
    assert entry.embedded and entry.path is not None
    dist = _distribution(entry)
    prefix = entry.path.rstrip("/")
    found: list[PackagedFile] = []
    for f in dist.files or []:
        rel = str(f)
        if rel != prefix and not rel.startswith(prefix + "/"):
            continue
        digest = None
        if f.hash is not None and f.hash.mode == "sha256":
            digest = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4)).hex()
        found.append(PackagedFile(Path(str(dist.locate_file(f))), f.size, digest))
    if not found:
        raise ModelNotFound(f"package '{entry.package}' lists no files under {entry.path}; "
                            f"reinstall it: pip install --force-reinstall {entry.package}")
    return found


def verify_embedded(entry: CatalogueEntry) -> VerifyReport:
    """Re-hash an embedded model's files against the sizes and SHA-256 its package recorded."""
    problems: list[str] = []
    checked = 0
    for f in embedded_files(entry):
        if not f.path.is_file():
            problems.append(f"missing {f.path}")
            continue
        checked += 1
        if f.size is not None and f.path.stat().st_size != f.size:
            problems.append(f"{f.path} is {f.path.stat().st_size} bytes, its package recorded {f.size}")
        elif f.sha256 is not None and file_sha256(f.path) != f.sha256:
            problems.append(f"{f.path} differs from what package '{entry.package}' installed")
    return VerifyReport(entry.name, embedded_path(entry), checked, tuple(problems))
