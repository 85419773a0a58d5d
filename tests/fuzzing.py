"""Fuzz test helpers: a time limit that turns a hang into a failure, and the "a result or our error" rule."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from assistant.errors import AssistantError

_LOG = logging.getLogger(__name__)

T = TypeVar("T")


class Hang(Exception):
    """A parser ran past its time limit on one input."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``Hang`` in the main thread if the block runs longer than ``seconds`` (SIGALRM based)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: no limit elsewhere
        return

    def expired(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def result_or_our_error(parse: Callable[[], T], *, seconds: float = 5.0) -> T | AssistantError:
    """Run ``parse``: its result, or the AssistantError it raised; anything else (or a hang) propagates."""
    with time_limit(seconds):
        try:
            return parse()
        except AssistantError as exc:
            return exc
