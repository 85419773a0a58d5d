"""The turn log: one fsynced JSON line per turn (tier, battery, joules, words, latencies), and its reader."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from assistant.messages import BatteryReading, TurnRecord
from assistant.power.energy import EnergySpan
from assistant.power.tiers import Tier

_LOG = logging.getLogger(__name__)

SCHEMA = 1
"""Version of the record layout; every line carries it."""


def _num(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _ratio(a: float, b: float | None) -> float | None:
    return a / b if b else None


def _battery(reading: BatteryReading | None) -> dict[str, Any] | None:
    if reading is None:
        return None
    return {"soc_pct": _num(reading.soc_pct, 2), "voltage_v": _num(reading.voltage_v, 3),
            "power_w": _num(reading.power_w, 3), "source": reading.source}


def turn_entry(
    record: TurnRecord,
    *,
    tier: Tier | None,
    before: BatteryReading | None,
    after: BatteryReading | None,
    energy: EnergySpan | None,
    usable_energy_j: float | None,
    now: float | None = None,
) -> dict[str, Any]:
    """The log record of one turn.

    ``tpj`` is generated tokens per joule of the whole turn (ASR, LLM, TTS and playback), ``wbl``
    words per joule times the usable pack energy: the words a full charge would give at this rate.
    """
    unix = time.time() if now is None else now
    joules = energy.joules if energy is not None else None
    model = record.llm_model or (tier.model.name if tier is not None and tier.model is not None else "")
    return {
        "schema": SCHEMA,
        "time": datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="milliseconds"),
        "unix": round(unix, 3),
        "turn_id": record.turn_id,
        "tier": tier.name if tier is not None else None,
        "kind": tier.kind if tier is not None else None,
        "quant": tier.quant if tier is not None else None,
        "model": model,
        "max_tokens": tier.max_tokens if tier is not None else None,
        "reply_words": tier.reply_words if tier is not None else None,
        "battery_before": _battery(before),
        "battery_after": _battery(after),
        "energy_j": _num(joules),
        "energy_s": _num(energy.seconds, 3) if energy is not None else None,
        "energy_measured": energy.measured if energy is not None else None,
        "pack_usable_j": _num(usable_energy_j, 1),
        "prompt_tokens": record.prompt_tokens,
        "tokens": record.tokens,
        "words": record.words,
        "words_estimated": record.words_estimate is not None,
        "words_basis": record.words_estimate,
        "tps": _num(record.tps),
        "tpj": _num(_ratio(record.tokens, joules)),
        "wbl": _num(_ratio(record.words * (usable_energy_j or 0.0), joules), 1) if usable_energy_j else None,
        "words_per_token": _num(_ratio(record.words, record.tokens)),
        "asr_final_s": _num(record.asr_final_s),
        "first_token_s": _num(record.first_token_s),
        "first_audio_s": _num(record.first_audio_s),
        "total_s": _num(record.total_s),
        "cancelled": record.cancelled,
        "error": record.error,
    }


class TurnLog:
    """Append-only JSONL file; each record is written, flushed and fsynced before ``append`` returns.

    A write that fails (full disk, read-only or missing directory) is logged once per kind of
    failure and counted in ``failures``; it is never raised into the pipeline. A line torn by a
    power cut is closed with a newline before the next record, so it cannot swallow that record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
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
            self._failed(kind, f"cannot write turn log {self.path}: {exc}")
            return False
        self.written += 1
        return True

    def write_turn(self, record: TurnRecord, **context: Any) -> dict[str, Any]:
        """Build the record with ``turn_entry(record, **context)``, append it and return it."""
        entry = turn_entry(record, **context)
        self.append(entry)
        return entry

    def _failed(self, kind: str, message: str) -> None:
        self.failures += 1
        if kind not in self._reported:
            self._reported.add(kind)
            _LOG.warning("%s (turn records are being dropped; reported once)", message)
        else:
            _LOG.debug("%s", message)


@dataclass
class LogRead:
    """What ``read_log`` found."""

    records: list[dict[str, Any]] = field(default_factory=list)
    torn_lines: int = 0
    """A last line cut short (a power cut while writing): skipped."""
    bad_lines: list[int] = field(default_factory=list)
    """1-based numbers of unreadable lines elsewhere in the file: skipped."""


def read_log(path: Path) -> LogRead:
    """Read every good record; torn and corrupt lines are skipped and reported, never fatal.

    A missing file reads as an empty log (no turn has been logged yet).
    """
    out = LogRead()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    except OSError as exc:
        _LOG.warning("cannot read turn log %s: %s", path, exc)
        return out
    lines = data.split(b"\n")
    complete = len(lines) - 1  # the part after the last newline is unterminated
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
            if not isinstance(entry, dict) or not isinstance(entry.get("schema"), int):
                raise ValueError("not a turn record")
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


def percentile(values: Iterable[float], pct: float) -> float | None:
    """Linear-interpolated percentile (as numpy's default); None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class TierStats:
    """Totals and rates of the turns of one tier."""

    turns: int
    words: int
    tokens: int
    energy_j: float
    """Energy of the turns that have an energy figure (J)."""
    energy_turns: int
    """Turns that have an energy figure."""
    measured_turns: int
    """Turns whose energy was measured (not estimated)."""
    tps_mean: float | None
    """Mean generation speed (tokens/s)."""
    tpj: float | None
    """Generated tokens per joule over the turns with energy."""
    wbl: float | None
    """Words per joule x usable pack energy: words per battery life at this rate."""
    words_per_token: float | None
    first_audio_p50_s: float | None
    first_audio_p95_s: float | None
    total_p50_s: float | None
    total_p95_s: float | None
    cancelled: int
    errors: int


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> int:
    """A count from a record; anything that is not a number counts as 0 (a hand-edited log stays readable)."""
    return int(value) if _is_num(value) else 0


def _nums(records: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


def summarize(records: Iterable[dict[str, Any]], *, usable_energy_j: float | None = None) -> dict[str, TierStats]:
    """Per-tier statistics (``assistant stats``); the usable pack energy defaults to the records' own."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r.get("tier") or "(none)"), []).append(r)
    out: dict[str, TierStats] = {}
    for tier, rs in groups.items():
        with_e = [r for r in rs if isinstance(r.get("energy_j"), (int, float)) and r["energy_j"] > 0]
        energy = sum(float(r["energy_j"]) for r in with_e)
        usable = usable_energy_j if usable_energy_j is not None else next(
            (float(r["pack_usable_j"]) for r in reversed(rs) if _is_num(r.get("pack_usable_j"))), None)
        words = sum(_count(r.get("words")) for r in rs)
        tokens = sum(_count(r.get("tokens")) for r in rs)
        e_words = sum(_count(r.get("words")) for r in with_e)
        e_tokens = sum(_count(r.get("tokens")) for r in with_e)
        tps = _nums(rs, "tps")
        first_audio, total = _nums(rs, "first_audio_s"), _nums(rs, "total_s")
        out[tier] = TierStats(
            turns=len(rs), words=words, tokens=tokens, energy_j=energy, energy_turns=len(with_e),
            measured_turns=sum(1 for r in with_e if r.get("energy_measured") is True),
            tps_mean=sum(tps) / len(tps) if tps else None,
            tpj=e_tokens / energy if energy else None,
            wbl=e_words / energy * usable if energy and usable else None,
            words_per_token=words / tokens if tokens else None,
            first_audio_p50_s=percentile(first_audio, 50), first_audio_p95_s=percentile(first_audio, 95),
            total_p50_s=percentile(total, 50), total_p95_s=percentile(total, 95),
            cancelled=sum(1 for r in rs if r.get("cancelled")), errors=sum(1 for r in rs if r.get("error")),
        )
    return out
