"""Append-only JSON Lines files: each record fsynced before it counts, and a reader that survives power cuts.

The turn log, a drain run's battery samples and its dialogue are such files.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)


class JsonlLog:
    """Append-only JSONL file; each record is written, flushed and fsynced before ``append`` returns.

    A write that fails (full disk, read-only or missing directory) is logged once per kind of
    failure and counted in ``failures``; it is never raised to the caller. A record the disk refuses
    leaves the file as it was (no partial line). A line torn by a power cut is closed with a newline
    before the next record, so it cannot swallow that record.
    """

    def __init__(self, path: Path, what: str = "log") -> None:
        self.path = path
        self.what = what
        """What the file is, for messages (``turn log``)."""
        self.written = 0
        """Records written in this process."""
        self.failures = 0
        """Records that could not be written."""
        self._reported: set[str] = set()

    def append(self, entry: dict[str, Any]) -> bool:
        """Write one record; True when it reached the disk."""
        try:
            line = json.dumps(entry, ensure_ascii=False, allow_nan=False, default=str) + "\n"
        except (TypeError, ValueError) as exc:
            self._failed("encode", f"record {entry.get('turn_id')!r} cannot be encoded: {exc}")
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b", buffering=0) as fh:
                end = fh.seek(0, os.SEEK_END)
                if end > 0:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        line = "\n" + line  # close a line torn by an earlier power cut
                data = memoryview(line.encode("utf-8"))
                try:
                    while data:
                        written = fh.write(data)
                        data = data[written or 0 :]
                    os.fsync(fh.fileno())
                except OSError:
                    os.ftruncate(fh.fileno(), end)  # a record the disk refused leaves no partial line
                    raise
        except OSError as exc:
            kind = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            self._failed(kind, f"cannot write {self.what} {self.path}: {exc}")
            return False
        self.written += 1
        return True

    def _failed(self, kind: str, message: str) -> None:
        self.failures += 1
        if kind not in self._reported:
            self._reported.add(kind)
            _LOG.warning("%s (records are being dropped; reported once)", message)
        else:
            _LOG.debug("%s", message)


@dataclass
class JsonlRead:
    """What ``read_jsonl`` found."""

    records: list[dict[str, Any]] = field(default_factory=list)
    torn_lines: int = 0
    """A last line cut short (a power cut while writing): skipped."""
    bad_lines: list[int] = field(default_factory=list)
    """1-based numbers of unreadable lines elsewhere in the file: skipped."""


def read_jsonl(path: Path) -> JsonlRead:
    """Read every good record (a JSON object with an integer ``schema``); torn and corrupt lines are
    skipped and reported, never fatal. A missing file reads as empty (nothing logged yet)."""
    out = JsonlRead()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    except OSError as exc:
        _LOG.warning("cannot read %s: %s", path, exc)
        return out
    lines = data.split(b"\n")
    complete = len(lines) - 1  # the part after the last newline is unterminated
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
            if not isinstance(entry, dict) or not isinstance(entry.get("schema"), int):
                raise ValueError("not a record")
        except (UnicodeDecodeError, ValueError):
            if number > complete:
                out.torn_lines += 1
                _LOG.info("%s: last line is torn (cut while writing); skipped", path)
            else:
                out.bad_lines.append(number)
                _LOG.warning("%s: line %d is not a valid record; skipped", path, number)
            continue
        out.records.append(entry)
    return out


def last_line(path: Path, tail_bytes: int = 1 << 16) -> dict[str, Any] | None:
    """The last complete JSON line of a file (read from its tail only), or None."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - tail_bytes))
            tail = fh.read()
    except OSError:
        return None
    for raw in reversed(tail.split(b"\n")[:-1] if tail.endswith(b"\n") else []):
        if raw.strip():
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None
