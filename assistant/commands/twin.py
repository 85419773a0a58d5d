"""`assistant models make-twin`: write and quantize the speed twin, say where it is, how big and how long each step took."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

from assistant.commands.ladder import write_tiers_config
from assistant.config import AssistantConfig
from assistant.errors import ConfigError, InstallError, ModelError
from assistant.models import embedded
from assistant.models.gguf_info import read_gguf_info
from assistant.models.ladder import LadderEntry, check_types, expected_tensor_type
from assistant.models.offer import NOMINAL_BPW
from assistant.models.twin import LABEL, find_twin, twin_ladder, twin_tiers_file
from assistant.models.twin_make import (LLAMA_3_2_1B, TWIN_TYPES, TwinBuild, WordsPerToken, k_quant_problems,
                                        make_twin, measure_words_per_token)

_LOG = logging.getLogger(__name__)

WORDS_QUESTIONS = 12
"""Drain-corpus questions the real model answers to measure words per token."""


def add_make_twin(models_sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``make-twin`` to the ``models`` command group."""
    p = models_sub.add_parser(
        "make-twin", help=f"make the speed twin of Llama-3.2-1B ({LABEL})",
        description="Write a GGUF with Llama-3.2-1B's shapes (hidden 2048, 16 layers, FFN 8192, 32 heads, 8 KV "
        "heads), random weights and the tokenizer and chat template of a real model (default: the embedded "
        "SmolLM2-135M) as F16 (about 2.1 GB), quantize it with the ladder builder, check that every K-quant rung "
        "really is K-quant, and write its tier ladder. It decodes as fast as the real model and answers "
        "nothing: it is for `assistant bench --twin` and `assistant drain-test --twin`, never for talking. "
        "Needs about 4.7 GB free while it works, about 2.5 GB once the F16 file is deleted.")
    p.add_argument("--dir", type=Path, metavar="DIR", help="models directory (default: paths.models_dir)")
    p.add_argument("--types", default=",".join(TWIN_TYPES),
                   help=f"comma-separated rungs to build (default: {','.join(TWIN_TYPES)})")
    p.add_argument("--real", type=Path, metavar="GGUF",
                   help="the real model whose tokenizer and chat template the twin takes, and on whose replies "
                   "words per token are measured (default: the embedded SmolLM2-135M)")
    p.add_argument("--words-per-token", type=float, metavar="X",
                   help="use this words-per-token figure instead of measuring it on the real model")
    p.add_argument("--keep-source", action="store_true",
                   help="keep the 2.1 GB F16 file after quantizing (default: delete it; the ladder does not need it)")
    p.add_argument("--threads", type=int, default=0, help="quantization threads (default: all cores)")
    p.add_argument("--force", action="store_true", help="make the twin again even if one with these rungs exists")
    p.set_defaults(func=run_make_twin)


def _models_dir(args: argparse.Namespace, cfg: AssistantConfig) -> Path:
    return (args.dir if args.dir is not None else cfg.paths.models_dir).expanduser()


def _space_needed(types: list[str], parameters: int) -> int:
    """Bytes the F16 file and its rungs take while ``make-twin`` runs (nominal bits per weight)."""
    return int(parameters * 2 + sum(parameters * NOMINAL_BPW.get(t, 8.5) / 8 for t in types))


def _existing(models_dir: Path, types: list[str]) -> list[LadderEntry] | None:
    """The rungs of a finished twin with exactly these types, or None."""
    if find_twin(models_dir) is None or not twin_tiers_file(models_dir).is_file():
        return None
    try:
        tiers = twin_ladder(models_dir)
    except (ConfigError, ModelError) as exc:
        _LOG.info("the twin is made again: %s", exc)
        return None
    llm = [t for t in tiers.tiers if t.kind == "llm" and t.model is not None]
    if sorted(t.quant for t in llm) != sorted(types):
        return None
    return [LadderEntry(t.quant, t.model, read_gguf_info(t.model), "", built=False, seconds=0.0)
            for t in llm if t.model is not None]


def _table(rungs: list[LadderEntry] | tuple[LadderEntry, ...]) -> list[str]:
    head = f"  {'rung':<8} {'size MB':>8} {'bpw':>5} {'build s':>8}  {'K-quant':<8} tensors by type"
    lines = [head, "  " + "-" * (len(head) - 2)]
    for e in rungs:
        k = "NO" if k_quant_problems(e) else "yes" if expected_tensor_type(e.requested).endswith("_K") else "-"
        built = f"{e.seconds:.1f}" if e.built else "reused"
        lines.append(f"  {e.requested:<8} {e.info.size_mb:>8,.0f} {e.info.bits_per_weight:>5.2f} {built:>8}  {k:<8} "
                     f"{e.info.type_summary()}")
    return lines


def run_make_twin(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Handler of ``assistant models make-twin``."""
    models_dir = _models_dir(args, cfg)
    types = check_types([t for t in args.types.split(",") if t.strip()], allow_ternary=True)
    if not types:
        raise ConfigError("--types lists no quantization type")
    if args.words_per_token is not None and not 0.0 < args.words_per_token < 10.0:
        raise ConfigError(f"--words-per-token {args.words_per_token:g} must be between 0 and 10")
    real = (args.real or embedded.smollm2_gguf()).expanduser()
    shape = LLAMA_3_2_1B
    found = None if args.force else _existing(models_dir, types)
    if found is not None:
        print(f"the speed twin is already made in {models_dir / 'speed-twin'} with rungs {', '.join(types)} "
              "(--force makes it again):")
        print("\n".join(_table(found)))
        _usage(twin_tiers_file(models_dir))
        return 0
    need = _space_needed(types, shape.parameters(49152))
    models_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(models_dir).free
    if need > free:
        raise InstallError(f"not enough disk space in {models_dir} for the speed twin: about {need / 1e9:.1f} GB "
                           f"needed while it is made (F16 file and rungs), {free / 1e9:.1f} GB free; use --dir DIR")

    def say(msg: str) -> None:
        print(f"make-twin: {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    if args.words_per_token is not None:
        words = WordsPerToken(args.words_per_token, "given on the command line (--words-per-token)")
    else:
        from assistant.drain.corpus import bundled_prompts, read_questions

        say(f"measuring words per token on {real.name} ({WORDS_QUESTIONS} questions)")
        words = measure_words_per_token(real, read_questions(bundled_prompts())[:WORDS_QUESTIONS],
                                        system_prompt=cfg.llm.system_prompt, threads=cfg.llm.threads)
    words_s = time.perf_counter() - t0
    build = make_twin(models_dir, words, tokenizer_from=real, shape=shape, types=types,
                      keep_source=args.keep_source, threads=args.threads, write_tiers=write_tiers_config, progress=say)
    _report(build, words_s, time.perf_counter() - t0)
    return 0


def _report(build: TwinBuild, words_s: float, total_s: float) -> None:
    src = build.source_info
    rung_bytes = sum(e.info.size_bytes for e in build.rungs)
    print(f"speed twin of {LLAMA_3_2_1B.name}: {LABEL}")
    print(f"  folder:  {build.folder}")
    print(f"  words:   {build.words.value:.3f} per token, {build.words.basis} ({words_s:.1f} s)")
    state = "kept" if build.source_kept else "deleted (the ladder does not need it; --keep-source keeps it)"
    print(f"  F16:     {build.source.name}, {src.size_mb:,.0f} MB, {src.parameters / 1e9:.2f} B weights, written in "
          f"{build.write_s:.1f} s; {state}")
    print(f"  rungs:   {rung_bytes / 1e6:,.0f} MB in {build.folder / 'ladder'}")
    print("\n".join(_table(build.rungs)))
    kept = src.size_bytes if build.source_kept else 0
    print(f"  on disk: {(rung_bytes + kept) / 1e6:,.0f} MB; {total_s:.0f} s in all")
    print("\ntiers (richest real bits per weight first):")
    for t in build.tiers.tiers:
        extra = f"at most {t.max_tokens} tokens" if t.kind == "llm" else t.kind
        print(f"  {t.name:<8} SoC >= {t.enter_soc_pct:>4g} %  {extra}")
    _usage(build.tiers_file)


def _usage(tiers_file: Path) -> None:
    print(f"\ntiers file: {tiers_file}")
    print("measure it:  assistant bench --twin --quick\n"
          "             assistant drain-test --twin --tier q4_k_m --capacity-wh 2 --time-scale 10\n"
          "never used to answer a person: run, ask and demo refuse a twin tier")
