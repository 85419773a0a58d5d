"""The tier ladder an installed LLM offers: built on the device from its file, or from ready quantizations."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from assistant.errors import ModelError
from assistant.models.catalogue import CatalogueEntry
from assistant.models.gguf_info import read_gguf_info
from assistant.models.ladder import LadderEntry, build_ladder, leaner_types
from assistant.models.quant_types import NOMINAL_BPW
from assistant.models.tier_ladder import LADDER_DIR, SPREAD, ladder_to_tiers, offered
from assistant.models.manifest import InstalledModel
from assistant.power.tiers import TierConfig

_LOG = logging.getLogger(__name__)


def ladder_room(entry: CatalogueEntry) -> int:
    """Bytes the ladder built after installing ``entry`` will take (estimate from nominal bits per weight)."""
    if entry.kind != "llm" or not entry.ladder or len(entry.files) != 1 or entry.files[0].size is None:
        return 0
    size, src = entry.files[0].size, NOMINAL_BPW.get(entry.quant or "Q8_0", 8.5)
    return sum(int(size * NOMINAL_BPW[t] / src) for t in entry.ladder
               if t != entry.quant and NOMINAL_BPW.get(t, src) < src)


@dataclass(frozen=True)
class LadderOffer:
    """The ladder an installed LLM offers, and the tiers it would make."""

    entries: tuple[LadderEntry, ...]
    """Every file of the ladder (the installed file first when the ladder was built from it)."""
    tiers: TierConfig
    """Tiers over those files, richest first, with reply budgets shrinking down the ladder."""
    built_from: Path | None
    """The installed file that was re-quantized; None when the catalogue shipped ready quantizations."""
    notes: tuple[str, ...] = ()
    """Types skipped and why, and other things the person should know."""


def _ready(path: Path, quant: str | None, sha256: str) -> LadderEntry:
    info = read_gguf_info(path)
    return LadderEntry(quant or info.dominant_type, path, info, sha256, built=False, seconds=0.0)


def offer_ladder(model: InstalledModel, entry: CatalogueEntry, *, threads: int = 0, force: bool = False,
                 n_ctx: int = 1024) -> LadderOffer:
    """Build (or reuse) the ladder of an installed LLM and make tiers from it.

    One installed file with ``ladder`` types in the catalogue: each type that is leaner than the
    file is built from it into ``MODEL/ladder/`` (re-quantizing up is skipped: it adds size, not
    quality). A float source is kept only as the build source when a Q8_0 rung exists, since
    Q8_0 answers as well at about half the energy per token (LLMPi, Llama-3.2-1B: TPJ 2.44 vs 1.21).
    Several files in the catalogue: those ready quantizations are the ladder, nothing is built.
    """
    if entry.kind != "llm":
        raise ModelError(f"'{entry.name}' is a {entry.kind} model: only LLMs have a quantization ladder")
    ggufs = [(f, model.path / f.name) for f in entry.files if f.name.lower().endswith(".gguf")]
    if not ggufs:
        raise ModelError(f"'{entry.name}' has no GGUF file in {model.path}")
    base = [path.name for _, path in ggufs if not read_gguf_info(path).chat_template]
    if base:
        raise ModelError(f"'{entry.name}' is a base model ({', '.join(base)} has no chat template): no tier is "
                         "offered, since the appliance cannot hold a conversation with it")
    notes: list[str] = []
    built_from: Path | None = None
    if len(ggufs) > 1 or not entry.ladder:
        entries = [_ready(path, f.quant or (entry.quant if i == 0 else None), model.files.get(f.name, ""))
                   for i, (f, path) in enumerate(ggufs)]
        tier_entries = entries
        if len(ggufs) == 1:
            notes.append("the catalogue lists no ladder types for this model: it makes one tier")
    else:
        try:
            import llama_cpp  # noqa: F401  (build_ladder needs it; say so clearly)
        except ImportError as exc:
            raise ModelError(f"building the ladder needs llama-cpp-python ({exc}); install the 'engines' extra") from exc
        built_from = ggufs[0][1]
        info = read_gguf_info(built_from)
        src_quant = (entry.quant or info.dominant_type).upper()
        types, skipped = leaner_types(entry.ladder, src_quant, info.bits_per_weight)
        notes += skipped
        entries = build_ladder(built_from, model.path / LADDER_DIR, types, threads=threads, force=force)
        tier_entries, why = offered(entries)
        notes += why
    tiers = ladder_to_tiers(tier_entries, spread=replace(SPREAD, n_ctx=n_ctx))
    return LadderOffer(tuple(entries), tiers, built_from, tuple(notes))
