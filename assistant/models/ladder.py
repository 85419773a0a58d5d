"""Build the quantization ladder: re-quantize one GGUF to several types and read back what came out."""

from __future__ import annotations

import ctypes
import hashlib
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

from assistant.errors import ModelError, ModelNotFound
from assistant.models.gguf_info import GgufInfo, read_gguf_info
from assistant.power.tiers import Tier, TierConfig

_LOG = logging.getLogger(__name__)

DEFAULT_TYPES: tuple[str, ...] = ("Q8_0", "Q6_K", "Q4_K_M", "Q2_K")
"""The types ``build-ladder`` makes when none are given (the rungs of the LLMPi study)."""

TERNARY_TYPES = frozenset({"TQ1_0", "TQ2_0"})
"""Ternary types: only meaningful for models trained ternary (BitNet b1.58); garbage otherwise."""

_QUANT_SUFFIX = re.compile(r"[.-](?:F16|BF16|F32|I?Q\d\w*)$", re.IGNORECASE)
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
    base = _QUANT_SUFFIX.sub("", source.stem)
    return out_dir / f"{base}.{qtype.upper()}.gguf"


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _up_to_date(path: Path, source_sha: str, qtype: str) -> GgufInfo | None:
    """The file's info when it exists, was built from this source as this type, and reads back fine."""
    side = _sidecar(path)
    if not path.is_file() or not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _LOG.warning("ignoring unreadable sidecar %s: %s", side, exc)
        return None
    if not isinstance(meta, dict) or meta.get("source_sha256") != source_sha or meta.get("type") != qtype:
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
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    for line in "".join(lines).splitlines():
        _LOG.debug("llama.cpp: %s", line)
    match = _FALLBACK.search("".join(lines))
    return int(match.group(1)) if match else 0


def _write_sidecar(path: Path, source: Path, source_sha: str, qtype: str, seconds: float) -> None:
    meta = {"source": str(source), "source_sha256": source_sha, "type": qtype,
            "built_unix": round(time.time(), 3), "seconds": round(seconds, 3)}
    side = _sidecar(path)
    tmp = side.with_name(f".{side.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, side)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot write {side}: {exc}") from exc


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
    """Quantize ``source`` to each type in ``out_dir``; returns the source entry first, then one per type.

    Files already built from the same source (SHA-256 in a ``.json`` sidecar) are reused unless
    ``force``. Every result is read back: a warning is logged when its dominant tensor type is not
    the requested one (narrow models such as SmolLM2, hidden size 576, fall back from K-quants).
    """
    wanted = check_types(types, allow_ternary=allow_ternary)
    if not source.is_file():
        raise ModelNotFound(f"ladder source {source} does not exist")
    src_info = read_gguf_info(source)
    source_sha = sha256_file(source)
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
            entries.append(LadderEntry(qtype, dest, info, source_sha, built=False, seconds=0.0))
            continue
        t0 = time.perf_counter()
        fallback = quantize(source, dest, qtype, threads=threads)
        seconds = time.perf_counter() - t0
        info = read_gguf_info(dest)
        _write_sidecar(dest, source, source_sha, qtype, seconds)
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


def ladder_to_tiers(
    entries: Sequence[LadderEntry],
    *,
    top_soc_pct: float = 60.0,
    bottom_soc_pct: float = 15.0,
    fixed_soc_pct: float = 5.0,
    max_tokens: tuple[int, int] = (96, 40),
    reply_words: tuple[int, int] = (40, 15),
    n_ctx: int = 1024,
    hysteresis_pct: float = 3.0,
) -> TierConfig:
    """A tier per entry, richest real bits per weight first, thresholds spread from top to bottom SoC.

    ``max_tokens`` and ``reply_words`` go linearly from their first value (richest tier) to their
    second (leanest LLM tier). Below the LLM tiers: fixed phrases from ``fixed_soc_pct``, then shutdown
    (at the pack's empty point, ``battery.empty_soc_pct``).
    """
    if not entries:
        raise ModelError("the ladder is empty: nothing to make tiers from")
    ordered = sorted(entries, key=lambda e: -e.info.bits_per_weight)
    n = len(ordered)
    tiers: list[Tier] = []
    used: set[str] = set()

    def lerp(a: float, b: float, i: int) -> float:
        return a if n == 1 else a + (b - a) * i / (n - 1)

    for i, entry in enumerate(ordered):
        name = entry.label.lower()
        if name in used:
            name = f"{name}-{'source' if entry.is_source else entry.requested.lower()}"
        used.add(name)
        tiers.append(Tier(
            name=name, model=entry.path, quant=entry.label,
            enter_soc_pct=round(lerp(top_soc_pct, bottom_soc_pct, i), 1), n_ctx=n_ctx,
            max_tokens=round(lerp(*max_tokens, i)), reply_words=round(lerp(*reply_words, i)),
        ))
    tiers.append(Tier(name="fixed", kind="fixed", enter_soc_pct=fixed_soc_pct))
    tiers.append(Tier(name="shutdown", kind="shutdown", enter_soc_pct=0.0))
    try:
        return TierConfig(tiers=tiers, hysteresis_pct=hysteresis_pct)
    except ValueError as exc:
        raise ModelError(f"cannot make tiers from this ladder: {exc}") from exc
