"""The turn log: one fsynced ``TurnLogEntry`` per turn (tier, battery, joules, words, latencies), its reader
and the per-tier statistics ``assistant stats`` prints."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from assistant.jsonl import JsonlLog, last_line, read_jsonl
from assistant.messages import BatteryPoint, BatteryReading, GovernorNote, TurnLogEntry, TurnRecord
from assistant.power.energy import EnergySpan
from assistant.power.governor import Plan
from assistant.power.tiers import Tier
from assistant.stats import percentile

_LOG = logging.getLogger(__name__)

SCHEMA = 1
"""Version of the record layout; every line carries it."""


def _num(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _ratio(a: float, b: float | None) -> float | None:
    return a / b if b else None


def _battery(reading: BatteryReading | None) -> BatteryPoint | None:
    if reading is None:
        return None
    return BatteryPoint(_num(reading.soc_pct, 2), _num(reading.voltage_v, 3), _num(reading.power_w, 3),
                        reading.source, reading.simulated)


def _governor(plan: Plan | None) -> GovernorNote | None:
    if plan is None:
        return None
    return GovernorNote(plan.tier, plan.reason, _num(plan.target_hours_left, 3),
                        {o.tier: _num(o.hours, 3) for o in plan.outlooks}, _num(plan.idle_w, 3))


def turn_entry(
    record: TurnRecord,
    *,
    tier: Tier | None,
    before: BatteryReading | None,
    after: BatteryReading | None,
    energy: EnergySpan | None,
    usable_energy_j: float | None,
    plan: Plan | None = None,
    now: float | None = None,
) -> TurnLogEntry:
    """The log entry of one turn (see ``TurnLogEntry`` for ``tpj`` and ``wbl``)."""
    unix = time.time() if now is None else now
    joules = energy.joules if energy is not None else None
    model = record.llm_model or (tier.model.name if tier is not None and tier.model is not None else "")
    return TurnLogEntry(
        schema=SCHEMA,
        time=datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="milliseconds"),
        unix=round(unix, 3),
        turn_id=record.turn_id,
        tier=tier.name if tier is not None else None,
        kind=tier.kind if tier is not None else None,
        quant=tier.quant if tier is not None else None,
        model=model,
        max_tokens=tier.max_tokens if tier is not None else None,
        reply_words=tier.reply_words if tier is not None else None,
        battery_before=_battery(before),
        battery_after=_battery(after),
        energy_j=_num(joules),
        energy_s=_num(energy.seconds, 3) if energy is not None else None,
        energy_measured=energy.measured if energy is not None else None,
        pack_usable_j=_num(usable_energy_j, 1),
        prompt_tokens=record.prompt_tokens,
        tokens=record.tokens,
        words=record.words,
        words_estimated=record.words_estimate is not None,
        words_basis=record.words_estimate,
        tps=_num(record.tps),
        tpj=_num(_ratio(record.tokens, joules)),
        wbl=_num(_ratio(record.words * (usable_energy_j or 0.0), joules), 1) if usable_energy_j else None,
        words_per_token=_num(_ratio(record.words, record.tokens)),
        asr_final_s=_num(record.asr_final_s),
        first_token_s=_num(record.first_token_s),
        first_audio_s=_num(record.first_audio_s),
        total_s=_num(record.total_s),
        cancelled=record.cancelled,
        error=record.error,
        governor=_governor(plan),
    )


class TurnLog(JsonlLog):
    """The appliance's turn log: a ``JsonlLog`` of ``TurnLogEntry`` lines."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "turn log")

    def write_turn(self, record: TurnRecord, **context: object) -> TurnLogEntry:
        """Build the entry with ``turn_entry(record, **context)``, append it and return it."""
        entry = turn_entry(record, **context)  # type: ignore[arg-type]
        self.append(entry.to_json())
        return entry


@dataclass
class TurnsRead:
    """What ``read_turns`` found."""

    entries: list[TurnLogEntry] = field(default_factory=list)
    torn_lines: int = 0
    """A last line cut short (a power cut while writing): skipped."""
    bad_lines: list[int] = field(default_factory=list)
    """1-based numbers of unreadable lines elsewhere in the file: skipped."""


def read_turns(path: Path) -> TurnsRead:
    """Every good entry; torn and corrupt lines skipped and reported, never fatal (a missing file: none)."""
    raw = read_jsonl(path)
    out = TurnsRead(torn_lines=raw.torn_lines, bad_lines=list(raw.bad_lines))
    for record in raw.records:
        try:
            out.entries.append(TurnLogEntry.from_json(record))
        except ValueError as exc:
            _LOG.warning("%s: a line is not a turn record (%s); skipped", path, exc)
    return out


def last_turn(path: Path) -> TurnLogEntry | None:
    """The last entry of a turn log (read from its tail only), or None."""
    data = last_line(path)
    try:
        return TurnLogEntry.from_json(data) if data is not None else None
    except ValueError:
        return None


TURN_ID = re.compile(r"t(\d+)")
"""The appliance's turn ids: ``t`` and a number one above the last one in the log."""


def numbered_turn_id(number: int) -> str:
    """The id of turn ``number``."""
    return f"t{number:06d}"


def last_turn_number(path: Path) -> int:
    """The highest turn number in a turn log (0 for none): the next turn takes the one above, so ids stay
    unique across restarts by construction, whatever the clock says (a Pi has no RTC). Torn and corrupt
    lines and other ids (a drain run's) are skipped."""
    numbers = (int(m.group(1)) for r in read_jsonl(path).records
               if isinstance(r.get("turn_id"), str) and (m := TURN_ID.fullmatch(r["turn_id"])))
    return max(numbers, default=0)


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


def summarize(entries: Iterable[TurnLogEntry], *, usable_energy_j: float | None = None) -> dict[str, TierStats]:
    """Per-tier statistics (``assistant stats``); the usable pack energy defaults to the entries' own."""
    groups: dict[str, list[TurnLogEntry]] = {}
    for e in entries:
        groups.setdefault(e.tier or "(none)", []).append(e)
    out: dict[str, TierStats] = {}
    for tier, es in groups.items():
        with_e = [e for e in es if e.energy_j is not None and e.energy_j > 0]
        energy = sum(e.energy_j or 0.0 for e in with_e)
        usable = usable_energy_j if usable_energy_j is not None else next(
            (e.pack_usable_j for e in reversed(es) if e.pack_usable_j is not None), None)
        words, tokens = sum(e.words for e in es), sum(e.tokens for e in es)
        e_words, e_tokens = sum(e.words for e in with_e), sum(e.tokens for e in with_e)
        tps = [e.tps for e in es if e.tps is not None]
        first_audio = [e.first_audio_s for e in es if e.first_audio_s is not None]
        total = [e.total_s for e in es if e.total_s is not None]
        out[tier] = TierStats(
            turns=len(es), words=words, tokens=tokens, energy_j=energy, energy_turns=len(with_e),
            measured_turns=sum(1 for e in with_e if e.energy_measured is True),
            tps_mean=sum(tps) / len(tps) if tps else None,
            tpj=e_tokens / energy if energy else None,
            wbl=e_words / energy * usable if energy and usable else None,
            words_per_token=words / tokens if tokens else None,
            first_audio_p50_s=percentile(first_audio, 50), first_audio_p95_s=percentile(first_audio, 95),
            total_p50_s=percentile(total, 50), total_p95_s=percentile(total, 95),
            cancelled=sum(1 for e in es if e.cancelled), errors=sum(1 for e in es if e.error),
        )
    return out
