"""Command line: parse, load the config, dispatch; the only place errors become messages and exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant import __version__
from assistant.config import load_config
from assistant.errors import AssistantError, ConfigUnreadable

_LOG = logging.getLogger(__name__)


def _command_modules() -> list[Callable[[argparse._SubParsersAction], None]]:  # type: ignore[type-arg]
    from assistant.commands import check, config, devices, models, power, run, turn
    from assistant.commands import drain
    from assistant.commands import bench
    from assistant.commands import soak

    return [turn.register, run.register, check.register, devices.register, models.register, power.register,
            config.register, drain.register, bench.register, soak.register]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="assistant", description="Offline voice assistant appliance.")
    parser.add_argument("--config", type=Path, help="config file (default: ./assistant.yaml, "
                        "~/.config/assistant/config.yaml, /etc/assistant/config.yaml)")
    parser.add_argument("--debug", action="store_true", help="debug logging, and tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _command_modules():
        register(sub)
    return parser


def setup_logging(debug: bool, quiet: bool) -> None:
    """Log to stderr (journald keeps it on the device); native engines stay quiet."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(args.debug or os.environ.get("ASSISTANT_DEBUG"))
    setup_logging(debug, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        result: int = args.func(args, cfg)
        return result
    except AssistantError as exc:
        if debug:
            raise
        if isinstance(exc, ConfigUnreadable):  # say the very command line to run instead
            argv = sys.argv[1:] if argv is None else argv
            print(f"assistant: error: {exc.message(shlex.join(['assistant', *argv]))}", file=sys.stderr)
        else:
            print(f"assistant: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("assistant: interrupted", file=sys.stderr)
        return 130
