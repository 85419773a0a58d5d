"""The model catalogue: what can be installed (pinned URL, size, SHA-256) and what ships embedded."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.metadata
import importlib.resources
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import ConfigError, ModelNotFound

_LOG = logging.getLogger(__name__)

CATALOGUE_RESOURCE = "data/catalogue.yaml"
"""Where the catalogue lives inside the ``assistant`` package (found the same way when installed)."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CatalogueEntry:
    """One model the appliance knows: either downloadable (url + pins) or embedded in a package."""

    name: str
    """Catalogue key, e.g. ``vosk-en``; what ``assistant models install NAME`` takes."""
    kind: str
    """Engine it is for: ``vosk``, ``llm``, ``piper`` or ``pocketsphinx``."""
    description: str
    licence: str
    """SPDX identifier (or short text) of the model's licence."""
    language: str | None = None
    """Language code, e.g. ``en``."""
    quant: str | None = None
    """Quantization of an LLM, e.g. ``Q4_1``."""
    notes: str | None = None
    embedded: bool = False
    """True when the model comes inside a PyPI package and is never downloaded."""
    package: str | None = None
    """Embedded only: the PyPI distribution holding the files."""
    path: str | None = None
    """Embedded only: file or folder inside site-packages, as listed in the package's RECORD."""
    url: str | None = None
    """Downloadable only: where the archive (a zip) is fetched from."""
    size: int | None = None
    """Downloadable only: archive size (bytes); None when not pinned."""
    sha256: str | None = None
    """Downloadable only: archive SHA-256 (hex); None: the first download's hash is recorded."""
    top_dir: str | None = None
    """Downloadable only: the single folder the archive unpacks to; the installed model directory."""


_FIELDS = {f.name for f in dataclasses.fields(CatalogueEntry)} - {"name"}
_TYPES: dict[str, type | tuple[type, ...]] = {"embedded": bool, "size": int}


def default_catalogue_text() -> tuple[str, str]:
    """The packaged catalogue's text and a name for it (for messages)."""
    resource = importlib.resources.files("assistant").joinpath(CATALOGUE_RESOURCE)
    try:
        return resource.read_text(encoding="utf-8"), str(resource)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the model catalogue {resource}: {exc}; reinstall the appliance") from exc


def load_catalogue(path: Path | None = None) -> dict[str, CatalogueEntry]:
    """Read and check a catalogue (default: the packaged one); returns entries by name."""
    if path is None:
        text, name = default_catalogue_text()
    else:
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the model catalogue {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"model catalogue {name} is not valid YAML: {exc}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"model catalogue {name}: expected a non-empty 'models:' mapping at the top")
    return {str(key): _entry(str(key), value, name) for key, value in models.items()}


def _entry(key: str, value: Any, filename: str) -> CatalogueEntry:
    where = f"model catalogue {filename}: entry '{key}'"
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of fields")
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(_FIELDS))})")
    for field in ("kind", "description", "licence"):
        if not isinstance(value.get(field), str) or not value[field]:
            raise ConfigError(f"{where}: '{field}' is required and must be text")
    for field, val in value.items():
        want = _TYPES.get(field, str)
        if val is not None and (not isinstance(val, want) or (want is int and isinstance(val, bool))):
            raise ConfigError(f"{where}: '{field}' has value {val!r}, expected {getattr(want, '__name__', want)}")
    entry = CatalogueEntry(name=key, **value)
    if entry.embedded:
        if not entry.package or not entry.path:
            raise ConfigError(f"{where}: an embedded model needs 'package' and 'path'")
    else:
        if not entry.url or not entry.top_dir:
            raise ConfigError(f"{where}: a downloadable model needs 'url' and 'top_dir'")
        if "/" in entry.top_dir or entry.top_dir.startswith("."):
            raise ConfigError(f"{where}: 'top_dir' must be one plain folder name, got {entry.top_dir!r}")
        if entry.sha256 is not None and not _SHA256.match(entry.sha256):
            raise ConfigError(f"{where}: 'sha256' must be 64 lower-case hex digits or null")
        if entry.size is not None and entry.size <= 0:
            raise ConfigError(f"{where}: 'size' must be a positive number of bytes or null")
    return entry


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


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file, read in pieces."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found for one model."""

    name: str
    path: Path | None
    checked_files: int
    """Files re-hashed."""
    problems: tuple[str, ...]
    """Empty when every check passed."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def verify_embedded(entry: CatalogueEntry) -> VerifyReport:
    """Re-hash an embedded model's files against the sizes and SHA-256 its package recorded."""
    problems: list[str] = []
    checked = 0
    files = embedded_files(entry)
    for f in files:
        if not f.path.is_file():
            problems.append(f"missing {f.path}")
            continue
        checked += 1
        if f.size is not None and f.path.stat().st_size != f.size:
            problems.append(f"{f.path} is {f.path.stat().st_size} bytes, its package recorded {f.size}")
        elif f.sha256 is not None and file_sha256(f.path) != f.sha256:
            problems.append(f"{f.path} differs from what package '{entry.package}' installed")
    return VerifyReport(entry.name, embedded_path(entry), checked, tuple(problems))
