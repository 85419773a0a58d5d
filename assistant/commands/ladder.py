"""`assistant models build-ladder`: re-quantize a GGUF into tiers, show what the files really hold."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig, build
from assistant.config_edit import read_config_text, write_section
from assistant.errors import ConfigError
from assistant.models import embedded
from assistant.models.ladder import DEFAULT_TYPES, LadderEntry, build_ladder, leaner_types
from assistant.models.quant_types import is_quant
from assistant.models.tier_ladder import ladder_to_tiers, offered
from assistant.power.tiers import TierConfig

_LOG = logging.getLogger(__name__)

MARKER = "# tier ladder written by `assistant models`\n"


def add_build_ladder(models_sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``build-ladder`` to the ``models`` command group."""
    p = models_sub.add_parser("build-ladder", help="re-quantize a GGUF into a ladder of tiers",
                              description="Re-quantize a GGUF to several types with llama.cpp, read back the "
                              "tensor types each file really holds, and optionally write the tiers section. "
                              "Give --source more than once for a mixed ladder: the rungs of every model, "
                              "ordered by the bytes of weights a token reads (a small model's Q4_K_M may sit "
                              "above a big model's Q2_K); each tier's name then starts with its model's, and "
                              "moving between two models' tiers starts a new conversation. A type is built "
                              "only where it is leaner than its source (never re-quantized up).")
    p.add_argument("--source", action="append", metavar="GGUF[:TYPES]",
                   help="GGUF to quantize (default: llm.model, else the embedded SmolLM2); repeat it for a mixed "
                        "ladder; ':TYPES' gives this model its own comma-separated types, ':' alone none (the "
                        "file itself is the one rung)")
    p.add_argument("--types", default=",".join(DEFAULT_TYPES),
                   help=f"comma-separated llama.cpp types (default: {','.join(DEFAULT_TYPES)})")
    p.add_argument("--out", type=Path, help="output directory (default: MODELS_DIR/ladder)")
    p.add_argument("--threads", type=int, default=0, help="quantization threads (default: all cores)")
    p.add_argument("--force", action="store_true", help="rebuild files that are already up to date")
    p.add_argument("--allow-ternary", action="store_true",
                   help="allow TQ1_0/TQ2_0 (garbage unless the model was trained ternary, e.g. BitNet b1.58)")
    p.add_argument("--write-config", type=Path, metavar="FILE",
                   help="write the resulting tiers: section into this YAML config (other sections are kept)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_build_ladder)


def tiers_to_mapping(cfg: TierConfig) -> dict[str, Any]:
    """The ``tiers:`` config section for ``cfg`` (plain YAML types, unset fields left out)."""
    rows: list[dict[str, Any]] = []
    for t in cfg.tiers:
        row: dict[str, Any] = {"name": t.name, "kind": t.kind}
        if t.model is not None:
            row["model"] = str(t.model)
        row.update(quant=t.quant, enter_soc_pct=t.enter_soc_pct)
        if t.enter_voltage_v is not None:
            row["enter_voltage_v"] = t.enter_voltage_v
        if t.kind == "llm":
            row.update(n_ctx=t.n_ctx, max_tokens=t.max_tokens, threads=t.threads)
            if t.reply_words is not None:
                row["reply_words"] = t.reply_words
        rows.append(row)
    out: dict[str, Any] = {"tiers": rows, "hysteresis_pct": cfg.hysteresis_pct, "hysteresis_v": cfg.hysteresis_v}
    if cfg.default_tier is not None:
        out["default_tier"] = cfg.default_tier
    return out


def write_tiers_config(path: Path, tiers: TierConfig) -> None:
    """Write the ``tiers:`` section into ``path`` atomically, keeping every other section and comment."""
    write_section(path, "tiers", tiers_to_mapping(tiers), marker=MARKER,
                  validate=lambda section: build(TierConfig, section, str(path), "tiers."))


def _table(entries: list[LadderEntry]) -> str:
    head = f"{'requested':<10} {'real':<6} {'size MB':>8} {'bpw':>5} {'state':<7} tensors by type"
    rows = [head, "-" * len(head)]
    for e in entries:
        state = "source" if e.is_source else "built" if e.built else "reused"
        mark = " *" if e.type_mismatch else ""
        rows.append(f"{e.requested:<10} {e.info.dominant_type:<6} {e.info.size_mb:>8.1f} "
                    f"{e.info.bits_per_weight:>5.2f} {state:<7} {e.info.type_summary()}{mark}")
    if any(e.type_mismatch for e in entries):
        rows.append("* most weights are not of the requested type: the model's widths do not fit that "
                    "type's blocks, so llama.cpp fell back")
    return "\n".join(rows)


def parse_source(text: str, default_types: list[str]) -> tuple[Path, list[str]]:
    """``FILE`` or ``FILE:TYPES`` (``FILE:`` = no types) of ``--source``; a colon followed by something that is
    not a list of type names belongs to the file name."""
    path, sep, tail = text.rpartition(":")
    if sep and path and all(is_quant(t.strip()) for t in tail.split(",") if t.strip()):
        return Path(path).expanduser(), [t.strip() for t in tail.split(",") if t.strip()]
    return Path(text).expanduser(), default_types


def run_build_ladder(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Handler of ``assistant models build-ladder``."""
    out_dir: Path = (args.out or cfg.paths.models_dir / "ladder").expanduser()
    types = [t for t in args.types.split(",") if t.strip()]
    if not types:
        raise ConfigError("--types lists no quantization type")
    given = args.source or [str(cfg.llm.model or embedded.smollm2_gguf())]
    sources = [parse_source(text, types) for text in given]
    if len({p.resolve() for p, _ in sources}) != len(sources):
        raise ConfigError("--source names the same file twice")
    if args.write_config is not None:
        read_config_text(args.write_config)  # fail before the slow part, not after it
    entries: list[LadderEntry] = []
    groups: list[list[LadderEntry]] = []
    rungs: list[LadderEntry] = []
    notes: list[str] = []
    for source, source_types in sources:
        built = build_ladder(source, out_dir, source_types, threads=args.threads,
                             allow_ternary=args.allow_ternary, force=args.force)
        _, skipped = leaner_types([t.strip().upper() for t in source_types], built[0].label,
                                  built[0].info.bits_per_weight)
        offer, why = offered(built)
        prefix = f"{source.name}: " if len(sources) > 1 else ""
        notes += [prefix + n for n in skipped + why]
        entries += built
        groups.append(built)
        rungs += offer
    tiers = ladder_to_tiers(rungs)
    if args.write_config is not None:
        write_tiers_config(args.write_config, tiers)
    if args.json:
        print(json.dumps({"source": str(sources[0][0]), "sources": [str(p) for p, _ in sources], "out": str(out_dir),
                          "entries": [e.to_dict() for e in entries], "notes": notes, "tiers": tiers_to_mapping(tiers),
                          "config_written": str(args.write_config) if args.write_config else None}, indent=2))
        return 0
    for (source, _), group in zip(sources, groups):
        print(f"ladder from {source}\n       into {out_dir}\n")
        print(_table(group) + "\n")
    for note in notes:
        print(f"  - {note}")
    order = "the bytes of weights a token reads" if len(sources) > 1 else "real bits per weight"
    print(f"\ntiers (richest first, by {order}):")
    for t in tiers.tiers:
        model = t.model.name if t.model is not None else "-"
        print(f"  {t.name:<10} {t.kind:<8} SoC >= {t.enter_soc_pct:>4g} %  {model}")
    if args.write_config is not None:
        print(f"\ntiers section written to {args.write_config}")
    return 0
