"""`assistant drain-test` (words per charge, measured to empty) and `assistant report` (plots and tables of runs)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TextIO

from assistant.config import AssistantConfig
from assistant.drain.options import SPEAKERS, DrainOptions, DrainResult, Progress
from assistant.drain.runlog import DrainError

_LOG = logging.getLogger(__name__)

LOG_EVERY = 10
"""Without a terminal, a progress line every this many turns."""


def _until(text: str) -> float | str:
    if text == "brownout":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is neither a state of charge (%) nor 'brownout'") from None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("drain-test", help="run spoken turns back to back until the battery cut-off, logging everything",
                       description="Run the real pipeline (ASR, LLM, TTS) turn after turn from a prompt corpus until "
                       "the pack reaches its cut-off; every turn and a battery sample stream go to an append-only, "
                       "fsynced log in the run directory. On the simulated pack the energy is a power model.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--tier", metavar="NAME", help="pin this tier for every turn (per-quantization comparison)")
    mode.add_argument("--adaptive", action="store_true", help="let the battery policy walk down the ladder (default)")
    p.add_argument("--prompts", type=Path, metavar="FILE|DIR",
                   help="questions: a text file (one a line), a WAV, or a directory of WAVs with optional .txt "
                   "transcripts (default: the bundled corpus, spoken once by Piper)")
    p.add_argument("--until", type=_until, metavar="PCT|brownout",
                   help="stop early at this state of charge (default: the pack's empty point, where the appliance "
                   "powers off); 'brownout': run on until the power goes (a real gauge only), then "
                   "`--resume` after the power is back measures and stores this device's empty point")
    p.add_argument("--target-hours", type=float, metavar="H",
                   help="let the governor make the charge last H hours (of the pack's time), keeping the richest "
                        "tier that reaches it")
    p.add_argument("--every", type=float, metavar="S", dest="every_s",
                   help="ask a question every S seconds of the pack's time and idle in between, as an appliance "
                        "is used (default: back to back); the governor's target needs it, since back to back "
                        "every tier draws about the same power and only answers per charge differ")
    p.add_argument("--costs-from", metavar="RUN_DIR", help="with --target-hours: the governor starts knowing what "
                   "each tier cost per answer in that earlier run (as the appliance does from its turn log after "
                   "a first day) instead of measuring each tier in this one")
    p.add_argument("--time-scale", type=float, metavar="N", help="simulated pack: simulated seconds per real second")
    p.add_argument("--capacity-wh", type=float, metavar="X", help="simulated pack: nominal capacity (Wh)")
    p.add_argument("--out", type=Path, metavar="RUN_DIR", help="run directory (default: STATE_DIR/drain/<run id>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", nargs="?", const=Path(""),
                   help="carry on an interrupted run (without RUN_DIR: the run left in progress, if any)")
    p.add_argument("--speaker", choices=SPEAKERS, default="null",
                   help="where answers are played: the sound device, nowhere, or a WAV per turn (default: null)")
    p.add_argument("--max-turns", type=int, metavar="N", help="stop after N turns of the run in total")
    p.add_argument("--twin", action="store_true", help="run on the speed twin's ladder (assistant models make-twin): "
                   "speed and energy of a bigger model, words estimated, no quality")
    p.add_argument("--shutdown", action="store_true", help="on a real battery gauge, power the device off at the "
                   "cut-off (default: only say what would happen)")
    p.set_defaults(func=run_drain)

    r = sub.add_parser("report", help="plots and tables of drain runs (W/BL, TPS, TPJ, latency per tier)",
                       description="Write report.md (or .html) and PNG plots into a run directory; with --compare, "
                       "put several runs side by side.")
    r.add_argument("run_dir", type=Path, nargs="?", metavar="RUN_DIR", help="the run to report on")
    r.add_argument("--format", choices=("md", "html"), default="md", help="report format (default: md)")
    r.add_argument("--compare", type=Path, nargs="+", metavar="RUN", help="runs to put side by side")
    r.add_argument("--out", type=Path, metavar="DIR", help="with --compare and no RUN_DIR: where to write "
                   "(default: the parent of the first run, in compare/)")
    r.set_defaults(func=run_report)


def format_progress(p: Progress) -> str:
    """``turns 12 | words 340 | SoC 81.2 % | tier q8_0 | 3m05s run, ~9m40s left``."""
    soc = "SoC ?" if p.soc_pct is None else f"SoC {p.soc_pct:5.1f} %"
    left = "time left ?" if p.eta_s is None else f"~{_hms(p.eta_s)} left to {p.until_pct:g} %"
    return f"turns {p.turns} | words {p.words} | {soc} | tier {p.tier or '-'} | {_hms(p.elapsed_s)} run, {left}"


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class ProgressLine:
    """Progress on stderr: one line rewritten in place on a terminal, else a log line every ``LOG_EVERY`` turns."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._width = 0

    def __call__(self, p: Progress) -> None:
        line = format_progress(p)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
            self._width = len(line)
        elif p.turns % LOG_EVERY == 0:
            self.stream.write(line + "\n")
            self.stream.flush()

    def end(self) -> None:
        """Finish the in-place line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def _summary(result: DrainResult, cfg: AssistantConfig) -> int:
    print(f"Run {result.run_id}: {result.status}: {result.reason}")
    print(f"  {result.turns} turns, {result.words} words; run directory {result.run_dir}")
    if result.torn_lines:
        print(f"  resumed: {result.torn_lines} torn line(s) in the turn log skipped (that turn ran again)")
    if result.status == "finished":
        if result.simulated:
            print("  simulated pack: nothing to power off")
        elif result.shutdown_done:
            print("  powering off")
        else:
            print(f"  on the appliance this is where it powers off ({' '.join(cfg.shutdown.command)}); "
                  "pass --shutdown to do so at the end of a drain run")
    print(f"  report: assistant report {result.run_dir}")
    if result.status == "interrupted":
        print(f"  continue: assistant drain-test --resume {result.run_dir}")
        return 130
    return 0


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_drain(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    from dataclasses import replace

    from assistant.device.shutdown import Shutdowner
    from assistant.drain.begin import active_run, resume_run, start_run

    progress = ProgressLine()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `systemctl stop` ends the run as Ctrl-C does
    try:
        if args.resume is not None:
            run_dir = args.resume
            if str(run_dir) in ("", "."):
                found = active_run(cfg)
                if found is None:
                    raise DrainError("no drain run is in progress; name the run directory: --resume RUN_DIR")
                run_dir = found
            result = resume_run(cfg, run_dir, max_turns=args.max_turns, progress=progress)
        else:
            brownout = args.until == "brownout"
            opts = DrainOptions(tier=args.tier, prompts=args.prompts,
                                until_pct=None if brownout else args.until, until_brownout=brownout,
                                time_scale=args.time_scale, target_hours=args.target_hours,
                                capacity_wh=args.capacity_wh, speaker=args.speaker, max_turns=args.max_turns,
                                shutdown=args.shutdown, twin=args.twin, every_s=args.every_s,
                                costs_from=None if args.costs_from is None else str(args.costs_from))
            result = start_run(cfg, opts, args.out, progress=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.end()
    if result.status == "finished" and not result.simulated and args.shutdown and not result.empty_point_measured:
        done = Shutdowner(cfg.shutdown).execute(f"drain run {result.run_id}: {result.reason}")
        result = replace(result, shutdown_command=tuple(cfg.shutdown.command), shutdown_done=done)
    return _summary(result, cfg)


def run_report(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    from assistant.drain.report import write_compare, write_report

    if args.run_dir is None and not args.compare:
        raise DrainError("name a run directory (assistant report RUN_DIR) or runs to compare (--compare A B ...)")
    written: list[Path] = []
    if args.run_dir is not None:
        written += write_report(args.run_dir, fmt=args.format)
    if args.compare:
        runs = ([args.run_dir] if args.run_dir is not None else []) + list(args.compare)
        out = args.out or (args.run_dir if args.run_dir is not None else runs[0].parent / "compare")
        written += write_compare(runs, out, fmt=args.format)
    for path in written:
        print(path)
    return 0
