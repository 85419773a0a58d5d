"""Build the quantization ladder: re-quantize one GGUF to several leaner types and read back what came out."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.atomic import commit_file, write_json_atomic
from assistant.errors import ModelError, ModelNotFound
from assistant.models.digest import file_sha256
from assistant.models.gguf_info import GgufInfo, read_gguf_info
from assistant.models.quant_types import NOMINAL_BPW, TERNARY_TYPES, model_name

_LOG = logging.getLogger(__name__)

DEFAULT_TYPES: tuple[str, ...] = ("Q8_0", "Q6_K", "Q4_K_M", "Q2_K")
"""The types ``build-ladder`` makes when none are given (the rungs of the LLMPi study)."""

_FALLBACK = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback")


@dataclass(frozen=True)
class LadderEntry:
    """One file of the ladder: the source itself or one re-quantized type."""

    requested: str
    """The type asked for, e.g. ``Q4_K_M``, or ``source`` for the file the ladder was built from."""
    path: Path
    info: GgufInfo
    """What the file really holds (tensor types, size, bits per weight)."""
    source_sha256: str
    built: bool
    """True when this run wrote the file; False when it was already up to date (or is the source)."""
    seconds: float
    """Time spent quantizing (s); 0 when nothing was built."""
    fallback_tensors: int | None = None
    """Tensors llama.cpp had to quantize to another type (from its log); None when not built here."""

    @property
    def is_source(self) -> bool:
        return self.requested == "source"

    @property
    def label(self) -> str:
        """The quantization label: the requested type, or the source's dominant type."""
        return self.info.dominant_type if self.is_source else self.requested

    @property
    def type_mismatch(self) -> bool:
        """The dominant tensor type differs from the requested one (K-quant fallback on narrow models)."""
        if self.is_source:
            return False
        return self.info.dominant_type.upper() != expected_tensor_type(self.requested)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "requested": self.requested,
            "path": str(self.path),
            "dominant_type": self.info.dominant_type,
            "type_mismatch": self.type_mismatch,
            "size_mb": round(self.info.size_mb, 1),
            "bits_per_weight": round(self.info.bits_per_weight, 3),
            "tensors_by_type": self.info.tensors_by_type,
            "built": self.built,
            "seconds": round(self.seconds, 2),
            "fallback_tensors": self.fallback_tensors,
            "source_sha256": self.source_sha256,
        }


def expected_tensor_type(qtype: str) -> str:
    """The tensor type a file type is named after: ``Q4_K_M`` -> ``Q4_K``, ``Q8_0`` -> ``Q8_0``."""
    return re.sub(r"_K_[SML]$", "_K", qtype.upper())


def ftype_of(qtype: str) -> int:
    """llama.cpp's ``LLAMA_FTYPE_MOSTLY_<qtype>`` value; ModelError for an unknown type."""
    import llama_cpp

    value = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}", None)
    if not isinstance(value, int):
        prefix = "LLAMA_FTYPE_MOSTLY_"
        known = sorted(n.removeprefix(prefix) for n in dir(llama_cpp) if n.startswith(prefix))
        raise ModelError(f"unknown quantization type '{qtype}'; llama.cpp knows: {', '.join(known)}")
    return value


def ladder_file(out_dir: Path, source: Path, qtype: str) -> Path:
    """Where the ``qtype`` rung built from ``source`` lives, e.g. ``ladder/SmolLM2-135M-Instruct.Q8_0.gguf``."""
    return out_dir / f"{model_name(source)}.{qtype.upper()}.gguf"


def sidecar_of(path: Path) -> Path:
    """The JSON beside a built ladder file: its source, the source's SHA-256, its type and bits per weight."""
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar of a ladder file, or None when it is missing or unreadable (logged)."""
    side = sidecar_of(path)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _LOG.warning("ignoring unreadable sidecar %s: %s", side, exc)
        return None
    return meta if isinstance(meta, dict) else None


def _up_to_date(path: Path, source_sha: str, qtype: str) -> GgufInfo | None:
    """The file's info when it exists, was built from this source as this type, and reads back fine."""
    if not path.is_file():
        return None
    meta = read_sidecar(path)
    if meta is None or meta.get("source_sha256") != source_sha or meta.get("type") != qtype:
        return None
    try:
        return read_gguf_info(path)
    except ModelError as exc:
        _LOG.warning("rebuilding %s: %s", path, exc)
        return None


@contextmanager
def _native_log() -> Iterator[list[str]]:
    """Route llama.cpp's log into a list (it prints one line per tensor), then restore its handler."""
    import llama_cpp

    lines: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def quantize(source: Path, dest: Path, qtype: str, *, threads: int = 0) -> int:
    """Re-quantize ``source`` to ``qtype`` at ``dest`` atomically (temp file, then rename).

    Returns the number of tensors llama.cpp reports it had to give another (fallback) type.
    """
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_of(qtype)
    params.allow_requantize = True
    params.nthread = threads
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with _native_log() as lines:
            rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            tail = "".join(lines)[-300:].strip().replace("\n", " | ")
            raise ModelError(f"llama.cpp could not quantize {source} to {qtype} (code {rc}): {tail}")
        commit_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    for line in "".join(lines).splitlines():
        _LOG.debug("llama.cpp: %s", line)
    match = _FALLBACK.search("".join(lines))
    return int(match.group(1)) if match else 0


def _write_sidecar(path: Path, source: Path, source_sha: str, qtype: str, seconds: float, info: GgufInfo,
                   source_info: GgufInfo) -> None:
    meta = {"source": str(source), "source_sha256": source_sha, "type": qtype,
            "built_unix": round(time.time(), 3), "seconds": round(seconds, 3),
            "bits_per_weight": round(info.bits_per_weight, 4),
            "source_bits_per_weight": round(source_info.bits_per_weight, 4)}
    side = sidecar_of(path)
    try:
        write_json_atomic(side, meta, mode=0o644)  # readable wherever the model file is
    except OSError as exc:
        raise ModelError(f"cannot write {side}: {exc}") from exc


def leaner_types(types: Sequence[str], source_label: str, source_bpw: float) -> tuple[list[str], list[str]]:
    """The types worth building from a source of ``source_bpw`` real bits per weight, and a note for each one
    skipped: a type that is not leaner than its source (its nominal bits) adds size and no quality. The one
    rule of every ladder: never re-quantize up."""
    keep: list[str] = []
    notes: list[str] = []
    for qtype in types:
        q = qtype.upper()
        if q == source_label.upper():
            continue
        if NOMINAL_BPW.get(q, 0.0) >= source_bpw:
            notes.append(f"{q} skipped: it is not leaner than the {source_label} file ({source_bpw:.2f} bits per "
                         "weight); re-quantizing up adds size, not quality")
            continue
        keep.append(q)
    return keep, notes


def check_types(types: Sequence[str], *, allow_ternary: bool = False) -> list[str]:
    """Upper-cased, de-duplicated, known types; ternary ones only with ``allow_ternary``."""
    out: list[str] = []
    for raw in types:
        qtype = raw.strip().upper()
        if not qtype or qtype in out:
            continue
        ftype_of(qtype)
        if qtype in TERNARY_TYPES and not allow_ternary:
            raise ModelError(
                f"{qtype} is a ternary type: on a model that was not trained ternary (BitNet b1.58) it "
                "produces garbage; pass --allow-ternary to build it anyway"
            )
        out.append(qtype)
    return out


def build_ladder(
    source: Path,
    out_dir: Path,
    types: Sequence[str] = DEFAULT_TYPES,
    *,
    threads: int = 0,
    allow_ternary: bool = False,
    force: bool = False,
) -> list[LadderEntry]:
    """Quantize ``source`` to each type leaner than it in ``out_dir`` (``leaner_types``: never up); returns the
    source entry first, then one per type built or reused.

    Files already built from the same source (SHA-256 in a ``.json`` sidecar) are reused unless
    ``force``. Every result is read back: a warning is logged when its dominant tensor type is not
    the requested one (narrow models such as SmolLM2, hidden size 576, fall back from K-quants).
    """
    wanted = check_types(types, allow_ternary=allow_ternary)
    if not source.is_file():
        raise ModelNotFound(f"ladder source {source} does not exist")
    src_info = read_gguf_info(source)
    wanted, skipped = leaner_types(wanted, src_info.dominant_type, src_info.bits_per_weight)
    for note in skipped:
        _LOG.info("%s: %s", source.name, note)
    source_sha = file_sha256(source)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create ladder directory {out_dir}: {exc}") from exc
    entries = [LadderEntry("source", source, src_info, source_sha, built=False, seconds=0.0)]
    for qtype in wanted:
        dest = ladder_file(out_dir, source, qtype)
        if dest.resolve() == source.resolve():
            raise ModelError(f"ladder file {dest} would overwrite the source; choose another --out")
        info = None if force else _up_to_date(dest, source_sha, qtype)
        if info is not None:
            _LOG.info("%s is up to date", dest.name)
            if "bits_per_weight" not in (read_sidecar(dest) or {}):  # written before sidecars kept it
                _write_sidecar(dest, source, source_sha, qtype, 0.0, info, src_info)
            entries.append(LadderEntry(qtype, dest, info, source_sha, built=False, seconds=0.0))
            continue
        t0 = time.perf_counter()
        fallback = quantize(source, dest, qtype, threads=threads)
        seconds = time.perf_counter() - t0
        info = read_gguf_info(dest)
        _write_sidecar(dest, source, source_sha, qtype, seconds, info, src_info)
        entry = LadderEntry(qtype, dest, info, source_sha, built=True, seconds=seconds, fallback_tensors=fallback)
        _LOG.info("built %s in %.2f s: %.1f MB, %.2f bpw, %s", dest.name, seconds, info.size_mb,
                  info.bits_per_weight, info.type_summary())
        entries.append(entry)
    for entry in entries[1:]:
        if entry.type_mismatch:
            _LOG.warning("%s: requested %s but most weights are %s (%s); the model's widths do not fit that "
                         "type's blocks, so llama.cpp fell back", entry.path.name, entry.requested,
                         entry.info.dominant_type, entry.info.type_summary())
    return entries
