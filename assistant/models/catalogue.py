"""The model catalogue: what can be installed (pinned URLs, sizes, SHA-256) and what ships embedded."""

from __future__ import annotations

import importlib.resources
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from assistant.errors import ConfigError
from assistant.models.quant_types import is_quant

_LOG = logging.getLogger(__name__)

CATALOGUE_RESOURCE = "data/catalogue.yaml"
"""Where the catalogue lives inside the ``assistant`` package (found the same way when installed)."""
KINDS = frozenset({"llm", "vosk", "piper-voice", "pocketsphinx"})
"""What a model is for: the engine that loads it."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HF_RESOLVE = re.compile(r"^/[^/]+/[^/]+/resolve/([^/]+)/")
_REVISION = re.compile(r"^[0-9a-f]{40}$")
_MOVING = re.compile(r"/(latest|main|master|head)(/|$)", re.IGNORECASE)


@dataclass(frozen=True)
class SourceFile:
    """One file of a downloadable model: where it comes from and what it must be."""

    name: str
    """File name it is saved under (the URL's last path segment unless the catalogue says otherwise)."""
    url: str | None
    """Download URL pinned to a fixed revision; None when no pinned URL is known (install with --from)."""
    size: int | None
    """Exact size (bytes); None when not established."""
    sha256: str | None
    """SHA-256 (hex); None: the hash the server states, else the first download's, is recorded."""
    quant: str | None = None
    """LLM only: the quantization this file holds, when the entry ships ready ladder rungs."""


@dataclass(frozen=True)
class CatalogueEntry:
    """One model the appliance knows: either downloadable (pinned files) or embedded in a package."""

    name: str
    """Catalogue key, e.g. ``vosk-en``; what ``assistant models install NAME`` takes."""
    kind: str
    """Engine it is for: ``llm``, ``vosk``, ``piper-voice`` or ``pocketsphinx``."""
    description: str
    licence: str
    """SPDX identifier (or short text) of the model's licence."""
    language: str | None = None
    """Language code, e.g. ``en``."""
    quant: str | None = None
    """Quantization of an LLM's (first) file, e.g. ``Q8_0``."""
    notes: str | None = None
    homepage: str | None = None
    """Page where a person can find the files by hand (offered when there is no network)."""
    ram_mb: int | None = None
    """Memory the model needs while loaded, with its runtime buffers (MB); None when not established."""
    embedded: bool = False
    """True when the model comes inside a PyPI package and is never downloaded."""
    package: str | None = None
    """Embedded only: the PyPI distribution holding the files."""
    path: str | None = None
    """Embedded only: file or folder inside site-packages, as listed in the package's RECORD."""
    files: tuple[SourceFile, ...] = ()
    """Downloadable only: the files that make up the model (one zip, or one or more plain files)."""
    top_dir: str | None = None
    """Downloadable only: the model's folder under the models directory (a zip must unpack to it)."""
    unpacked_size: int | None = None
    """Zip only: bytes the archive unpacks to; None: twice the archive is assumed for the disk check."""
    architecture: str | None = None
    """LLM only: ``general.architecture`` the GGUF must declare, e.g. ``llama``."""
    context_length: int | None = None
    """LLM only: training context the GGUF must declare (tokens); None when not established."""
    chat_template: str | None = None
    """LLM only: chat template family, e.g. ``llama3`` or ``chatml`` (the GGUF carries the template)."""
    ladder: tuple[str, ...] = ()
    """LLM only: llama.cpp types to build from the installed file after install, e.g. ``Q6_K``."""
    unsupported: str | None = None
    """Why the appliance cannot use this model today: it is listed for what it stands for, has no files and
    is never installed (``install`` refuses it with this reason)."""

    @property
    def is_zip(self) -> bool:
        """The model comes as one zip archive that is unpacked."""
        return len(self.files) == 1 and self.files[0].name.lower().endswith(".zip")

    @property
    def download_size(self) -> int | None:
        """Bytes of all files, None when any size is unknown."""
        sizes = [f.size for f in self.files]
        return None if not sizes or any(s is None for s in sizes) else sum(s or 0 for s in sizes)

    @property
    def url(self) -> str | None:
        """URL of the first file (the archive of a zip entry)."""
        return self.files[0].url if self.files else None

    @property
    def sha256(self) -> str | None:
        """Pinned SHA-256 of the first file."""
        return self.files[0].sha256 if self.files else None

    @property
    def size(self) -> int | None:
        """Total download size (bytes), as ``download_size``."""
        return self.download_size


_SCALARS: dict[str, type] = {
    "kind": str, "description": str, "licence": str, "language": str, "quant": str, "notes": str,
    "homepage": str, "ram_mb": int, "embedded": bool, "package": str, "path": str, "url": str, "size": int,
    "sha256": str, "top_dir": str, "unpacked_size": int, "architecture": str, "context_length": int,
    "chat_template": str, "unsupported": str,
}
_LISTS = {"files", "ladder"}
_FILE_FIELDS: dict[str, type] = {"url": str, "size": int, "sha256": str, "name": str, "quant": str}
_LLM_ONLY = ("architecture", "context_length", "chat_template", "ladder")


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


def _typed(value: Any, want: type, where: str, field: str) -> None:
    if value is not None and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: '{field}' has value {value!r}, expected {want.__name__}")


def _entry(key: str, value: Any, filename: str) -> CatalogueEntry:
    where = f"model catalogue {filename}: entry '{key}'"
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of fields")
    known = set(_SCALARS) | _LISTS
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for field in ("kind", "description", "licence"):
        if not isinstance(value.get(field), str) or not value[field]:
            raise ConfigError(f"{where}: '{field}' is required and must be text")
    for field, want in _SCALARS.items():
        _typed(value.get(field), want, where, field)
    if value["kind"] not in KINDS:
        raise ConfigError(f"{where}: kind '{value['kind']}' is not one of {', '.join(sorted(KINDS))}")
    for field in ("ram_mb", "context_length", "unpacked_size"):
        if value.get(field) is not None and value[field] <= 0:
            raise ConfigError(f"{where}: '{field}' must be a positive number or null")
    if value["kind"] != "llm":
        bad = [f for f in _LLM_ONLY if value.get(f)]
        if bad:
            raise ConfigError(f"{where}: {', '.join(bad)} only apply to kind 'llm'")
    ladder = _ladder(value.get("ladder"), where)
    scalars = {k: v for k, v in value.items() if k in _SCALARS and k not in ("url", "size", "sha256")}
    if value.get("embedded"):
        if not value.get("package") or not value.get("path"):
            raise ConfigError(f"{where}: an embedded model needs 'package' and 'path'")
        if value.get("files") or value.get("url"):
            raise ConfigError(f"{where}: an embedded model takes no 'files' or 'url'")
        return CatalogueEntry(name=key, **scalars, ladder=ladder)
    if value.get("unsupported"):
        if value.get("files") or value.get("url"):
            raise ConfigError(f"{where}: an unsupported model has no 'files' or 'url' to install")
        return CatalogueEntry(name=key, **scalars, ladder=ladder)
    files = _files(value, where)
    top = value.get("top_dir") or (None if files[0].name.lower().endswith(".zip") else key)
    if not top:
        raise ConfigError(f"{where}: a zip archive needs 'top_dir', the folder it unpacks to")
    if "/" in top or top.startswith("."):
        raise ConfigError(f"{where}: 'top_dir' must be one plain folder name, got {top!r}")
    scalars["top_dir"] = top
    entry = CatalogueEntry(name=key, **scalars, files=files, ladder=ladder)
    if any(f.name.lower().endswith(".zip") for f in files) and not entry.is_zip:
        raise ConfigError(f"{where}: a zip archive must be the entry's only file")
    return entry


def _ladder(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, str) and is_quant(t) for t in raw):
        raise ConfigError(f"{where}: 'ladder' must be a list of llama.cpp types such as Q6_K, got {raw!r}")
    return tuple(t.upper() for t in raw)


def _files(value: dict[str, Any], where: str) -> tuple[SourceFile, ...]:
    raw = value.get("files")
    if raw is not None and any(value.get(k) is not None for k in ("url", "size", "sha256")):
        raise ConfigError(f"{where}: give either 'files' or 'url'/'size'/'sha256', not both")
    if raw is None:
        if "url" not in value:
            raise ConfigError(f"{where}: a downloadable model needs 'files' (or 'url')")
        raw = [{"url": value.get("url"), "size": value.get("size"), "sha256": value.get("sha256")}]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: 'files' must be a non-empty list of url/size/sha256 mappings")
    out: list[SourceFile] = []
    for i, item in enumerate(raw):
        at = f"{where}: files[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{at} must be a mapping with url, size and sha256")
        unknown = sorted(set(item) - set(_FILE_FIELDS))
        if unknown:
            raise ConfigError(f"{at}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(_FILE_FIELDS))})")
        for field, want in _FILE_FIELDS.items():
            _typed(item.get(field), want, at, field)
        url, name = item.get("url"), item.get("name")
        if url is not None:
            _check_url(url, at)
        if name is None:
            if url is None:
                raise ConfigError(f"{at}: without a 'url' the file needs a 'name'")
            name = urlsplit(url).path.rsplit("/", 1)[-1]
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"{at}: file name {name!r} must be one plain file name")
        if item.get("sha256") is not None and not _SHA256.match(item["sha256"]):
            raise ConfigError(f"{at}: 'sha256' must be 64 lower-case hex digits or null")
        if item.get("size") is not None and item["size"] <= 0:
            raise ConfigError(f"{at}: 'size' must be a positive number of bytes or null")
        quant = item.get("quant")
        if quant is not None and not is_quant(quant):
            raise ConfigError(f"{at}: 'quant' {quant!r} is not a llama.cpp type")
        out.append(SourceFile(name, url, item.get("size"), item.get("sha256"), quant.upper() if quant else None))
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: two files would be saved under the same name ({', '.join(names)})")
    return tuple(out)


def _check_url(url: str, where: str) -> None:
    """A download URL must be http(s) and pinned: a Hugging Face URL names a 40-hex commit, never a branch."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: url {url!r} is not an http(s) URL")
    hf = _HF_RESOLVE.match(parts.path) if parts.netloc.endswith("huggingface.co") else None
    if hf is not None and not _REVISION.match(hf.group(1)):
        raise ConfigError(f"{where}: url {url} is not pinned: use resolve/<40-hex commit>/, not "
                          f"resolve/{hf.group(1)}/ (a branch can change under a pinned hash)")
    if hf is None and _MOVING.search(parts.path):
        raise ConfigError(f"{where}: url {url} points at a moving name; pin a fixed version")
