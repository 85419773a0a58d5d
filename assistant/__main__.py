"""Entry point: `python -m assistant` and the `assistant` console script."""

from __future__ import annotations

import sys

from assistant.cli import main


def run() -> None:
    """Run the command line and exit with its status."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
