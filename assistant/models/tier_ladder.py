"""Tiers from ladder files: which files make rungs (never a re-quantization up), the one spread of thresholds
and reply lengths down the rungs, the built-in ladder over the embedded model, and which tiers can load.

``power/tiers.py`` is the pure policy over a ``TierConfig``; everything here touches model files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ModelError, ModelNotFound
from assistant.models import embedded
from assistant.models.ladder import DEFAULT_TYPES, LadderEntry, ladder_file, leaner_types, read_sidecar
from assistant.models.quant_types import FLOAT_TYPES, NOMINAL_BPW, quant_of
from assistant.power.tiers import Tier, TierConfig
from assistant.models.gguf_info import check_gguf

_LOG = logging.getLogger(__name__)

LADDER_DIR = "ladder"
"""Where a ladder is built: ``MODELS_DIR/ladder`` for the embedded model, ``MODEL/ladder`` for an installed one."""


@dataclass(frozen=True)
class Spread:
    """How the rungs of a ladder share the battery: thresholds and reply lengths from the richest LLM tier
    (first value) to the leanest (second), in equal steps; fixed phrases below, then shutdown."""

    soc_pct: tuple[float, float] = (60.0, 15.0)
    """``enter_soc_pct`` of the richest and of the leanest LLM tier (one LLM tier: the leanest's)."""
    max_tokens: tuple[int, int] = (96, 40)
    reply_words: tuple[int, int] = (40, 15)
    fixed_soc_pct: float = 5.0
    n_ctx: int = 1024
    hysteresis_pct: float = 3.0

    def rung(self, i: int, n: int) -> tuple[float, int, int]:
        """(enter SoC %, max_tokens, reply words) of LLM rung ``i`` of ``n``, richest first. A single rung
        answers at full length down to the leanest threshold."""
        f = 0.0 if n == 1 else i / (n - 1)

        def lerp(pair: tuple[float, float], at: float) -> float:
            return pair[0] + (pair[1] - pair[0]) * at

        return (round(lerp(self.soc_pct, 1.0 if n == 1 else f), 1), round(lerp(self.max_tokens, f)),
                round(lerp(self.reply_words, f)))


SPREAD = Spread()
"""The spread every ladder uses: ``build-ladder``, an installed model's ladder and the built-in one."""


def offered(entries: Sequence[LadderEntry]) -> tuple[list[LadderEntry], list[str]]:
    """The files of a built ladder (source first) that make rungs, and why the others do not: a file that
    came out no leaner than its quantized source is dropped (narrow models fall back from K-quants), and
    a float source is kept only to build from when a Q8_0 rung exists (Q8_0 answers as well at about
    twice the tokens per joule: LLMPi, Llama-3.2-1B, TPJ 2.44 vs 1.21)."""
    if not entries:
        return [], []
    source = entries[0]
    src_label, src_bpw = source.label.upper(), source.info.bits_per_weight
    keep = list(entries)
    notes: list[str] = []
    for e in entries[1:]:
        if e.type_mismatch:
            notes.append(f"{e.requested}: most weights are {e.info.dominant_type} ({e.info.bits_per_weight:.2f} "
                         "bits per weight): the model's widths do not fit that type's blocks")
        if src_label not in FLOAT_TYPES and e.info.bits_per_weight >= src_bpw:
            keep.remove(e)
            notes.append(f"{e.requested} is not offered as a tier: it came out at {e.info.bits_per_weight:.2f} bits "
                         f"per weight, no leaner than the {src_label} file it was made from")
    if src_label in FLOAT_TYPES and any(e.requested == "Q8_0" for e in entries[1:]):
        keep.remove(source)
        notes.append(f"the {src_label} file is kept as the build source but not offered as a tier: Q8_0 "
                     "answers as well at about twice the tokens per joule")
    return keep, notes


def _tiers(rungs: Sequence[tuple[str, Path, str]], spread: Spread) -> TierConfig:
    """Tiers over (name, file, quant) rungs, richest first, then fixed phrases and shutdown."""
    n = len(rungs)
    tiers = []
    for i, (name, path, quant) in enumerate(rungs):
        soc, max_tokens, words = spread.rung(i, n)
        tiers.append(Tier(name=name, model=path, quant=quant, enter_soc_pct=soc, n_ctx=spread.n_ctx,
                          max_tokens=max_tokens, reply_words=words))
    tiers.append(Tier(name="fixed", kind="fixed", enter_soc_pct=spread.fixed_soc_pct))
    tiers.append(Tier(name="shutdown", kind="shutdown", enter_soc_pct=0.0))
    try:
        return TierConfig(tiers=tiers, hysteresis_pct=spread.hysteresis_pct)
    except ValueError as exc:
        raise ModelError(f"cannot make tiers from this ladder: {exc}") from exc


def ladder_to_tiers(entries: Sequence[LadderEntry], *, spread: Spread = SPREAD) -> TierConfig:
    """A tier per entry, richest real bits per weight first, spread by ``spread``; below the LLM tiers fixed
    phrases, then shutdown (at the pack's empty point, ``battery.empty_soc_pct``)."""
    if not entries:
        raise ModelError("the ladder is empty: nothing to make tiers from")
    used: set[str] = set()
    rungs: list[tuple[str, Path, str]] = []
    for entry in sorted(entries, key=lambda e: -e.info.bits_per_weight):
        name = entry.label.lower()
        if name in used:
            name = f"{name}-{'source' if entry.is_source else entry.requested.lower()}"
        used.add(name)
        rungs.append((name, entry.path, entry.label))
    return _tiers(rungs, spread)


def _built_bpw(path: Path, source: Path) -> tuple[float, float] | None:
    """(real bits per weight of a ladder file built from ``source``, the source's), from its sidecar; None
    when it is not built, not from that source, or built before sidecars kept them."""
    meta = read_sidecar(path)
    if meta is None or Path(str(meta.get("source"))).name != source.name:
        return None
    bpw, src = meta.get("bits_per_weight"), meta.get("source_bits_per_weight")
    if not isinstance(bpw, (int, float)) or not isinstance(src, (int, float)):
        return None
    return float(bpw), float(src)


def default_ladder(models_dir: Path, *, spread: Spread = SPREAD) -> TierConfig:
    """The built-in ladder: the embedded SmolLM2 file and the rungs ``models build-ladder`` makes from it.

    Only types leaner than the embedded Q4_1 are built (no re-quantization up); of those, a file that
    came out no leaner than the source (SmolLM2's widths do not fit K-quant blocks, so its Q4_K_M is 6.2
    bits per weight against the source's 5.7) is left out once built. What is left differs little: on
    SmolLM2-135M the Q2_K rung has 10 % fewer bits per weight than the source, and this small model is
    compute-bound, so its rungs save little energy per answer. A rung not built yet stays in the ladder
    and is reported by ``unavailable_tiers``; ``choose_tier`` skips it down.
    """
    try:
        source = embedded.smollm2_gguf()
    except ModelNotFound as exc:
        _LOG.error("embedded LLM missing: %s", exc)
        source = models_dir / Path(embedded.SMOLLM2_FILE).name
    source_quant = quant_of(source)
    out_dir = models_dir.expanduser() / LADDER_DIR
    built = {q: _built_bpw(ladder_file(out_dir, source, q), source) for q in DEFAULT_TYPES}
    measured = [b[1] for b in built.values() if b is not None]
    source_bpw = measured[0] if measured else NOMINAL_BPW.get(source_quant, 8.5)  # real once a rung is built
    types, _ = leaner_types(DEFAULT_TYPES, source_quant, source_bpw)
    rungs: list[tuple[float, str, Path, str]] = [(source_bpw, source_quant.lower(), source, source_quant)]
    missing: list[str] = []
    for qtype in types:
        path = ladder_file(out_dir, source, qtype)
        found = built[qtype] if path.is_file() else None
        if found is None:
            missing.append(qtype)
            bpw = NOMINAL_BPW.get(qtype, 0.0)
        elif found[0] >= source_bpw:
            continue  # built, and no leaner than the source: not a rung
        else:
            bpw = found[0]
        rungs.append((bpw, qtype.lower(), path, qtype))
    rungs.sort(key=lambda r: -r[0])
    if missing:
        _LOG.warning("ladder files not built in %s (%s): those tiers are unavailable and the embedded %s model "
                     "serves down to their thresholds; run `assistant models build-ladder`", out_dir,
                     ", ".join(missing), source_quant)
    return _tiers([(name, path, quant) for _, name, path, quant in rungs], spread)


def unavailable_tiers(tiers: TierConfig) -> set[str]:
    """Names of the llm tiers whose model file is missing or is not a GGUF (checked on disk)."""
    missing: set[str] = set()
    for tier in tiers.tiers:
        if tier.kind != "llm" or tier.model is None:
            continue
        try:
            check_gguf(tier.model)
        except (ModelError, ModelNotFound) as exc:
            _LOG.warning("tier '%s' is unavailable: %s", tier.name, exc)
            missing.add(tier.name)
    return missing
