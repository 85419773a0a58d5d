"""What a GGUF file really holds: metadata, tensor types by count and by weight, and bits per weight."""

from __future__ import annotations

import logging
import mmap
import struct
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


def _file_type_name(value: Any) -> str | None:
    if not isinstance(value, int):
        return None
    import gguf

    try:
        return str(gguf.LlamaFileType(value).name)
    except ValueError:
        return f"unknown({value})"


def check_gguf(path: Path) -> None:
    """Raise a clear error unless ``path`` is a readable file that starts as a GGUF file does (a quick
    check before a load; ``read_gguf_info`` reads the whole header)."""
    if not path.exists():
        raise ModelNotFound(f"LLM model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"LLM model {path} is not a file")
    try:
        with path.open("rb") as fh:
            magic = fh.read(len(_MAGIC))
    except OSError as exc:
        raise ModelError(f"cannot read LLM model {path}: {exc}") from exc
    if magic != _MAGIC:
        raise ModelError(f"LLM model {path} is not a GGUF file (starts with {magic!r})")


_CACHE: dict[tuple[int, int, int, int], GgufInfo] = {}
_CACHE_SIZE = 32


def read_gguf_info(path: Path) -> GgufInfo:
    """Read ``path``'s header and tensor table; ModelError for a truncated or non-GGUF file.

    The header is scanned directly (arrays such as the vocabulary are skipped, not decoded), and
    results are remembered per (device, inode, size, modification time) for the life of the
    process: a file moved into place after it was checked is not read again.
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
        import gguf
    except ImportError as exc:
        raise ModelError(f"the 'gguf' package is needed to inspect {path}: {exc}") from exc
    header = _open_and_scan(path, None)
    counts: Counter[str] = Counter()
    params: Counter[str] = Counter()
    data_bytes = 0
    end = 0
    for name, dims, type_id, offset in header.tensors:
        try:
            qtype = gguf.GGMLQuantizationType(type_id)
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError) as exc:
            raise ModelError(f"{path}: tensor {name} has an unknown type {type_id}") from exc
        n = 1
        for d in dims:
            n *= d
        if n % block:
            raise ModelError(f"{path}: tensor {name} has {n} elements, not a whole number of {qtype.name} blocks")
        nbytes = n // block * type_size
        counts[qtype.name] += 1
        params[qtype.name] += n
        data_bytes += nbytes
        end = max(end, header.data_start + offset + nbytes)
    kv = header.kv
    arch = kv.get("general.architecture")
    arch = arch if isinstance(arch, str) else None
    ctx = kv.get(f"{arch}.context_length") if arch else None
    model_name = kv.get("general.name")
    info = GgufInfo(
        path=path,
        size_bytes=size,
        tensor_count=len(header.tensors),
        tensors_by_type=dict(counts),
        params_by_type=dict(params),
        parameters=sum(params.values()),
        tensor_bytes=data_bytes,
        architecture=arch,
        name=model_name if isinstance(model_name, str) else None,
        file_type=_file_type_name(kv.get("general.file_type")),
        context_length=ctx if isinstance(ctx, int) and not isinstance(ctx, bool) else None,
        chat_template=bool(kv.get("tokenizer.chat_template")),
    )
    if end > size:
        raise ModelError(f"{path} is truncated: tensor data ends at byte {end}, the file has {size}")
    if info.tensor_count == 0:
        raise ModelError(f"{path} holds no tensors")
    _LOG.debug("%s: %d tensors, %.2f bpw, %s", path.name, info.tensor_count, info.bits_per_weight, info.type_summary())
    return info

_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
"""GGUF value type -> struct format (little-endian) of the fixed-size scalar types; 8 is a string, 9 an array."""
_STRING, _ARRAY = 8, 9


@dataclass
class _Header:
    """The key/value section (scalars and strings; arrays skipped) and the tensor table of a GGUF file."""

    kv: dict[str, Any]
    tensors: list[tuple[str, tuple[int, ...], int, int]]
    """(name, dimensions, ggml type id, offset from the start of the data section)."""
    data_start: int


def read_kv(path: Path, keys: frozenset[str], *, stop_at: str | None = None) -> dict[str, Any]:
    """The scalar or string values of ``keys`` in ``path``'s GGUF header.

    A light scan that stops once every key is found, or at the first key starting with ``stop_at``
    (for keys known to be written before, e.g. before ``tokenizer.``), and skips arrays without
    decoding them: fit for checks that run at every start. Keys that are absent, or whose value is
    an array, are left out. ModelError for a file that is not a GGUF or whose header is cut short.
    """
    return _open_and_scan(path, keys, stop_at).kv


def _open_and_scan(path: Path, keys: frozenset[str] | None, stop_at: str | None = None) -> _Header:
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _scan(buf, keys, path, stop_at)
    except FileNotFoundError as exc:
        raise ModelNotFound(f"GGUF file {path} does not exist") from exc
    except (OSError, ValueError) as exc:  # mmap of an empty file raises ValueError
        raise ModelError(f"cannot read the GGUF header of {path}: {exc}") from exc


def _scan(buf: mmap.mmap, keys: frozenset[str] | None, path: Path, stop_at: str | None = None) -> _Header:
    """Read the header: only ``keys`` (stopping once all are found), or with None every scalar and the tensor table."""
    if buf[:4] != _MAGIC:
        raise ModelError(f"{path} is not a GGUF file (starts with {bytes(buf[:4])!r})")
    kv: dict[str, Any] = {}
    tensors: list[tuple[str, tuple[int, ...], int, int]] = []
    try:
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        if version < 2:
            raise ModelError(f"{path} is GGUF version {version}; only versions 2 and later are read")
        pos = 24
        for _ in range(n_kv):
            key, pos = _string(buf, pos)
            if stop_at is not None and key.startswith(stop_at):
                return _Header(kv, tensors, 0)
            (vtype,) = struct.unpack_from("<I", buf, pos)
            value, pos = _value(buf, pos + 4, vtype)
            if value is not _SKIPPED and (keys is None or key in keys):
                kv[key] = value
                if keys is not None and len(kv) == len(keys):
                    return _Header(kv, tensors, 0)
        if keys is not None:
            return _Header(kv, tensors, 0)
        for _ in range(n_tensors):
            name, pos = _string(buf, pos)
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            pos += 4 + 8 * n_dims
            type_id, offset = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            tensors.append((name, tuple(dims), type_id, offset))
    except struct.error as exc:
        raise ModelError(f"{path} is truncated or not a valid GGUF file: the header is cut short ({exc})") from exc
    align = kv.get("general.alignment", 32)
    align = align if isinstance(align, int) and align > 0 else 32
    return _Header(kv, tensors, -(-pos // align) * align)


def _string(buf: mmap.mmap, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", buf, pos)
    if pos + 8 + n > len(buf):
        raise struct.error("a string runs past the end of the file")
    return bytes(buf[pos + 8 : pos + 8 + n]).decode("utf-8", "replace"), pos + 8 + n


_SKIPPED = object()


def _value(buf: mmap.mmap, pos: int, vtype: int) -> tuple[Any, int]:
    """The value at ``pos`` of type ``vtype`` (arrays skipped) and the position after it."""
    fmt = _SCALAR_FORMATS.get(vtype)
    if fmt is not None:
        return struct.unpack_from("<" + fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if vtype == _STRING:
        return _string(buf, pos)
    if vtype == _ARRAY:
        sub, n = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        sub_fmt = _SCALAR_FORMATS.get(sub)
        if sub_fmt is not None:
            pos += n * struct.calcsize(sub_fmt)
            if pos > len(buf):
                raise struct.error("an array runs past the end of the file")
            return _SKIPPED, pos
        for _ in range(n):
            _, pos = _value(buf, pos, sub)
        return _SKIPPED, pos
    raise struct.error(f"unknown GGUF value type {vtype}")
