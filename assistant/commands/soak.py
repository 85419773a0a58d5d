"""`assistant soak`: the appliance on simulated hardware for many turns with injected faults, then its checks."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from assistant.config import AssistantConfig
from assistant.errors import ConfigError

_LOG = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "soak", help="reliability soak: many turns on simulated hardware with injected faults (uses its own "
                     "settings and a temporary directory, not the config file)")
    p.add_argument("--turns", type=int, default=200, help="turns to run in this process (default 200)")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault and button schedule (default 1)")
    p.add_argument("--out", type=Path, default=Path("soak-out"),
                   help="directory for soak-report.json and the turn log (default ./soak-out)")
    p.add_argument("--restarts", type=int, default=2,
                   help="SIGTERM / kill -9 and restart cycles of `assistant run --sim` afterwards (default 2)")
    p.add_argument("--fault-rate", type=float, default=0.35, help="share of steps that inject a fault (0..1)")
    p.add_argument("--time-scale", type=float, default=8.0,
                   help="how much faster than real time the simulated microphone and speaker run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    from assistant.soak import SoakFailed, run_soak, summary
    from assistant.soak.rig import RigOptions

    if args.turns < 1 or args.restarts < 0 or not 0.0 <= args.fault_rate <= 1.0 or args.time_scale <= 0:
        raise ConfigError("soak: --turns must be at least 1, --restarts 0 or more, --fault-rate within 0..1 "
                          "and --time-scale positive")

    reported = [0]

    def progress(done: int, total: int) -> None:
        if done // 50 > reported[0]:
            reported[0] = done // 50
            _LOG.info("soak: %d of %d turns", done, total)

    report = run_soak(args.out, turns=args.turns, seed=args.seed, restarts=args.restarts,
                      fault_rate=args.fault_rate, options=RigOptions(time_scale=args.time_scale), progress=progress)
    print(summary(report), file=sys.stdout)
    if not report.passed:
        raise SoakFailed(f"the soak found {len(report.problems)} problem(s); see {args.out / 'soak-report.json'}")
    return 0
