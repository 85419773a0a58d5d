"""What a GGUF file really holds: metadata, tensor types by count and by weight, and bits per weight."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from assistant.errors import ModelError, ModelNotFound

_LOG = logging.getLogger(__name__)

_MAGIC = b"GGUF"
_FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})


@dataclass(frozen=True)
class GgufInfo:
    """Facts read from a GGUF header and tensor table (never from the file name)."""

    path: Path
    size_bytes: int
    """File size (bytes)."""
    tensor_count: int
    tensors_by_type: dict[str, int]
    """Number of tensors per ggml type, e.g. ``{"Q5_0": 166, "F32": 61, ...}``."""
    params_by_type: dict[str, int]
    """Number of weights (elements) per ggml type."""
    parameters: int
    """Total number of weights."""
    tensor_bytes: int
    """Bytes of tensor data (file size minus header and padding)."""
    architecture: str | None
    """``general.architecture``, e.g. ``llama``."""
    name: str | None
    """``general.name``."""
    file_type: str | None
    """``general.file_type`` as llama.cpp labels it, e.g. ``MOSTLY_Q4_1`` (what the writer claimed)."""
    context_length: int | None
    """Training context length (tokens), ``<arch>.context_length``."""
    chat_template: bool
    """The file carries ``tokenizer.chat_template``."""

    @property
    def bits_per_weight(self) -> float:
        """Tensor data bits divided by the number of weights."""
        return self.tensor_bytes * 8 / self.parameters if self.parameters else 0.0

    @property
    def size_mb(self) -> float:
        """File size in MB (10^6 bytes)."""
        return self.size_bytes / 1e6

    @property
    def dominant_type(self) -> str:
        """The quantized type holding the most weights (float tensors count only if nothing else exists)."""
        quantized = {k: v for k, v in self.params_by_type.items() if k not in _FLOAT_TYPES}
        pool = quantized or self.params_by_type
        return max(pool, key=lambda k: (pool[k], k)) if pool else "none"

    def type_summary(self) -> str:
        """Tensor counts by type, most weights first, e.g. ``Q5_0:166 Q8_0:15 Q6_K:14 Q4_K:16 F32:61``."""
        order = sorted(self.tensors_by_type, key=lambda k: -self.params_by_type.get(k, 0))
        return " ".join(f"{k}:{self.tensors_by_type[k]}" for k in order)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "tensor_count": self.tensor_count,
            "tensors_by_type": dict(self.tensors_by_type),
            "params_by_type": dict(self.params_by_type),
            "parameters": self.parameters,
            "bits_per_weight": round(self.bits_per_weight, 4),
            "dominant_type": self.dominant_type,
            "architecture": self.architecture,
            "name": self.name,
            "file_type": self.file_type,
            "context_length": self.context_length,
            "chat_template": self.chat_template,
        }


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return None
    try:
        return f.contents()
    except (ValueError, IndexError, TypeError, UnicodeDecodeError):
        return None


def _file_type_name(value: Any) -> str | None:
    if not isinstance(value, int):
        return None
    import gguf

    try:
        return str(gguf.LlamaFileType(value).name)
    except ValueError:
        return f"unknown({value})"


_CACHE: dict[tuple[int, int, int, int], GgufInfo] = {}
_CACHE_SIZE = 32


def read_gguf_info(path: Path) -> GgufInfo:
    """Read ``path``'s header and tensor table; ModelError for a truncated or non-GGUF file.

    Parsing the tokenizer arrays takes about 2 s for a small model, so results are remembered
    per (device, inode, size, modification time) for the life of the process: a file moved into
    place after it was checked is not parsed again.
    """
    if not path.exists():
        raise ModelNotFound(f"GGUF file {path} does not exist")
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)  # a renamed file is the same file
    cached = _CACHE.get(key)
    if cached is not None:
        return cached if cached.path == path else replace(cached, path=path)
    info = _read(path, st.st_size)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = info
    return info


def _read(path: Path, size: int) -> GgufInfo:
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if magic != _MAGIC:
        raise ModelError(f"{path} is not a GGUF file (starts with {magic!r})")
    try:
        import gguf
    except ImportError as exc:
        raise ModelError(f"the 'gguf' package is needed to inspect {path}: {exc}") from exc
    try:
        reader = gguf.GGUFReader(str(path))
        counts: Counter[str] = Counter()
        params: Counter[str] = Counter()
        data_bytes = 0
        end = 0
        for t in reader.tensors:
            kind = t.tensor_type.name
            counts[kind] += 1
            params[kind] += int(t.n_elements)
            data_bytes += int(t.n_bytes)
            end = max(end, int(t.data_offset) + int(t.n_bytes))
        arch = _field(reader, "general.architecture")
        info = GgufInfo(
            path=path,
            size_bytes=size,
            tensor_count=len(reader.tensors),
            tensors_by_type=dict(counts),
            params_by_type=dict(params),
            parameters=sum(params.values()),
            tensor_bytes=data_bytes,
            architecture=arch if isinstance(arch, str) else None,
            name=_field(reader, "general.name"),
            file_type=_file_type_name(_field(reader, "general.file_type")),
            context_length=_field(reader, f"{arch}.context_length") if isinstance(arch, str) else None,
            chat_template=bool(_field(reader, "tokenizer.chat_template")),
        )
        del reader  # releases the memory map
    except (ValueError, IndexError, KeyError, TypeError, OSError, OverflowError) as exc:
        raise ModelError(f"{path} is truncated or not a valid GGUF file: {exc}") from exc
    if end > size:
        raise ModelError(f"{path} is truncated: tensor data ends at byte {end}, the file has {size}")
    if info.tensor_count == 0:
        raise ModelError(f"{path} holds no tensors")
    _LOG.debug("%s: %d tensors, %.2f bpw, %s", path.name, info.tensor_count, info.bits_per_weight, info.type_summary())
    return info
