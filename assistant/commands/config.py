"""`assistant config example|show|check`: the documented keys, the effective values, a validation."""

from __future__ import annotations

import argparse

from assistant.config import AssistantConfig
from assistant.config_doc import example_yaml


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("config", help="print the configuration reference, the effective config, or check it")
    p.add_argument("action", choices=["example", "show", "check"],
                   help="example: every key with its default and documentation; show: the effective "
                        "configuration; check: validate the config file and say which one is used")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    if args.action == "example":
        print(example_yaml(AssistantConfig))
    elif args.action == "show":
        print(f"# effective configuration (from {cfg.source or 'built-in defaults'})")
        print(example_yaml(AssistantConfig, cfg))
    else:
        print(f"configuration OK ({cfg.source or 'no file: built-in defaults'})")
    return 0
