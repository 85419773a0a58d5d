"""`assistant bench [--quick] [--json FILE] [--plot FILE.png]`: speed, energy, quality and latency, with targets."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from assistant.config import AssistantConfig
from assistant.errors import ConfigError

_LOG = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="benchmark every tier, the speech stages, end to end and idle; check targets",
                       description="Per tier: size, real bits per weight, load time, prompt and generation tok/s, "
                       "peak RSS, TPJ and W/BL (gauge or labelled power model), words per token, perplexity and "
                       "factual questions. Then engine overhead against raw llama.cpp, ASR and TTS, end of speech "
                       "to first audio (streaming against blocking) and the idle appliance. Prints a table with "
                       "published Raspberry Pi 5 figures beside ours and a PASS/MISS line per target.")
    p.add_argument("--quick", action="store_true", help="fewer questions and repetitions (under 5 minutes on 2 cores)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every figure, with its source, to FILE")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write the four-panel figure (needs matplotlib)")
    p.add_argument("--twin", action="store_true", help="also measure the speed twin's ladder (assistant models "
                   "make-twin): a bigger model's speed, CPU per token, TPJ and RSS; random weights, no quality")
    p.set_defaults(func=run_bench_command)


def _check_writable(path: Path | None, what: str) -> None:
    if path is None:
        return
    folder = path.expanduser().parent
    if folder.exists() and not os.access(folder, os.W_OK):
        raise ConfigError(f"--{what} {path}: cannot write into {folder}")
    if path.exists() and path.is_dir():
        raise ConfigError(f"--{what} {path} is a directory")


def run_bench_command(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Handler of ``assistant bench``."""
    from assistant.bench.plot import write_plot
    from assistant.bench.runner import json_ready, run_bench
    from assistant.bench.settings import FULL, QUICK
    from assistant.bench.table import render

    _check_writable(args.json, "json")
    _check_writable(args.plot, "plot")
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot {args.plot}: the figure is written as PNG; name it .png")

    def progress(msg: str) -> None:
        print(f"bench: {msg} ...", file=sys.stderr, flush=True)

    result = json_ready(run_bench(cfg, QUICK if args.quick else FULL, twin=args.twin, progress=progress))
    print(render(result))  # first, so that nothing measured is lost if a file cannot be written
    if args.json is not None:
        path = args.json.expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the JSON {path}: {exc}") from exc
        print(f"\nJSON: {path}")
    if args.plot is not None:
        write_plot(result, args.plot.expanduser())
        print(f"Plot: {args.plot.expanduser()}")
    return 0
