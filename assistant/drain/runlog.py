"""The files of a drain run: append-only fsynced logs, an atomically replaced state, and what resume finds."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import DrainError
from assistant.jsonl import read_jsonl
from assistant.messages import TurnLogEntry
from assistant.turnlog import read_turns

_LOG = logging.getLogger(__name__)

META = "meta.json"
STATE = "state.json"
TURNS = "turns.jsonl"
BATTERY = "battery.jsonl"
DIALOGUE = "dialogue.jsonl"
SEQ_SEP = "#"
"""Turn ids are ``<run id>#<sequence number>``, so a turn logged twice is recognisable."""


def turn_id(run_id: str, seq: int) -> str:
    """The deterministic id of turn ``seq`` of run ``run_id``."""
    return f"{run_id}{SEQ_SEP}{seq:06d}"


def seq_of(run_id: str, tid: object) -> int | None:
    """The sequence number in a turn id of this run; None for anything else."""
    if not isinstance(tid, str) or not tid.startswith(run_id + SEQ_SEP):
        return None
    tail = tid[len(run_id) + 1:]
    return int(tail) if tail.isdigit() else None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing or unreadable (logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _LOG.warning("cannot read %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


@dataclass
class TurnScan:
    """What the turn log of a run holds, as resume and the report need it."""

    entries: list[TurnLogEntry] = field(default_factory=list)
    """The run's turn log entries, first occurrence of each sequence number, in sequence order."""
    seqs: list[int] = field(default_factory=list)
    """The sequence number of each entry."""
    torn_lines: int = 0
    """A last line cut short by a crash: skipped."""
    bad_lines: list[int] = field(default_factory=list)
    """Unreadable lines elsewhere (e.g. an earlier torn line, closed by the next append): skipped."""
    duplicates: list[int] = field(default_factory=list)
    """Sequence numbers logged more than once (the later copies are ignored)."""
    missing: list[int] = field(default_factory=list)
    """Sequence numbers below the highest one that have no record."""
    foreign: int = 0
    """Records whose turn id is not of this run: ignored."""

    @property
    def next_seq(self) -> int:
        """The sequence number of the next turn to run."""
        return self.seqs[-1] + 1 if self.seqs else 0


def scan_turns(path: Path, run_id: str) -> TurnScan:
    """Read a run's turn log: torn and corrupt lines skipped and counted, duplicates and gaps found."""
    log = read_turns(path)
    out = TurnScan(torn_lines=log.torn_lines, bad_lines=list(log.bad_lines))
    by_seq: dict[int, TurnLogEntry] = {}
    for entry in log.entries:
        seq = seq_of(run_id, entry.turn_id)
        if seq is None:
            out.foreign += 1
            continue
        if seq in by_seq:
            out.duplicates.append(seq)
            continue
        by_seq[seq] = entry
    out.seqs = sorted(by_seq)
    out.entries = [by_seq[s] for s in out.seqs]
    if by_seq:
        out.missing = sorted(set(range(max(by_seq) + 1)) - set(by_seq))
    return out


def read_samples(path: Path) -> tuple[list[dict[str, Any]], int, list[int]]:
    """The battery samples of a run (torn last line and corrupt lines skipped): (samples, torn, bad lines)."""
    log = read_jsonl(path)
    return log.records, log.torn_lines, list(log.bad_lines)


@dataclass(frozen=True)
class RunFiles:
    """The paths inside one run directory."""

    root: Path

    @property
    def meta(self) -> Path:
        return self.root / META

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def turns(self) -> Path:
        return self.root / TURNS

    @property
    def battery(self) -> Path:
        return self.root / BATTERY

    @property
    def dialogue(self) -> Path:
        return self.root / DIALOGUE

    def load_meta(self) -> dict[str, Any]:
        """The run's meta.json; DrainError when the directory is missing or is not a drain run."""
        if not self.root.is_dir():
            raise DrainError(f"run directory {self.root} does not exist")
        meta = read_json(self.meta)
        if meta is None or not isinstance(meta.get("run_id"), str):
            raise DrainError(f"{self.root} is not a drain run: {META} is missing or unreadable")
        return meta
