"""Small typed messages that the stages pass to each other."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

SAMPLE_WIDTH = 2
"""Bytes per sample of all PCM inside the appliance (signed 16-bit little-endian)."""


@dataclass(frozen=True)
class AudioClip:
    """Mono or multi-channel signed 16-bit little-endian PCM together with its format."""

    pcm: bytes
    """Raw samples, interleaved when there is more than one channel."""
    rate: int
    """Samples per second per channel (Hz)."""
    channels: int = 1
    """Number of interleaved channels."""

    @property
    def frames(self) -> int:
        """Number of sample frames in the clip."""
        return len(self.pcm) // (SAMPLE_WIDTH * self.channels)

    @property
    def seconds(self) -> float:
        """Duration of the clip in seconds."""
        return self.frames / self.rate if self.rate else 0.0


@dataclass(frozen=True)
class Word:
    """One recognised word with its timing inside the utterance."""

    word: str
    start_s: float
    """Start time from the beginning of the utterance (s)."""
    end_s: float
    """End time from the beginning of the utterance (s)."""
    confidence: float | None = None
    """Engine confidence in 0..1 where the engine gives one."""


@dataclass(frozen=True)
class Transcript:
    """What the ASR heard: partial while audio still arrives, final after the last chunk."""

    text: str
    is_final: bool
    engine: str
    """Which engine produced it, e.g. ``vosk`` or ``pocketsphinx (fallback)``."""
    words: tuple[Word, ...] = ()


@dataclass
class TurnRecord:
    """Everything measured about one turn; one per turn, written to the turn log."""

    turn_id: str
    transcript: str = ""
    reply: str = ""
    asr_engine: str = ""
    llm_model: str = ""
    prompt_tokens: int = 0
    tokens: int = 0
    """Generated tokens."""
    words: int = 0
    """Words spoken: of the reply's sentences that were synthesized whole (a barge-in or a failure
    cuts the rest, so this is what a person heard)."""
    words_estimate: str | None = None
    """How ``words`` was estimated rather than counted from the model's reply (speed twin); None: counted."""
    sentences: int = 0
    audio_in_s: float = 0.0
    """Length of the spoken question (s)."""
    audio_out_s: float = 0.0
    """Length of the synthesized answer (s)."""
    asr_final_s: float | None = None
    """End of audio to final transcript (s)."""
    first_token_s: float | None = None
    """End of audio to first generated token (s)."""
    first_audio_s: float | None = None
    """End of audio to first answer audio chunk ready (s)."""
    total_s: float = 0.0
    """End of audio (or start, for text) to the last audio chunk queued (s)."""
    llm_s: float = 0.0
    """Time spent generating (s)."""
    tps: float | None = None
    """Generated tokens per second of generation."""
    cancelled: bool = False
    error: str | None = None


@dataclass(frozen=True)
class BatteryReading:
    """One reading of the battery gauge.

    Sign convention everywhere: ``current_a`` and ``power_w`` are positive while the pack is
    charging and negative while it discharges.
    """

    t_monotonic: float
    """``time.monotonic()`` when the reading was taken (s)."""
    voltage_v: float
    """Pack (or cell, for single-cell gauges) voltage (V)."""
    current_a: float | None
    """Pack current (A), + charging, - discharging; None where the gauge has no current sensor."""
    power_w: float | None
    """Pack power (W), same sign as current; None where unknown."""
    soc_pct: float | None
    """State of charge (0..100 %); None where unknown."""
    charging: bool | None
    """The pack is being charged; None where unknown."""
    external_power: bool | None
    """External power is present (the appliance is not on battery); None where unknown."""
    source: str
    """Which gauge produced it, e.g. ``ina219@0x42`` or ``simulated``."""
    soc_estimated: bool = False
    """True where the SoC comes from a voltage curve rather than a gas gauge."""
    power_estimated: bool = False
    """True where ``power_w`` comes from a model, not from a current measurement."""
    cell_voltage_v: float | None = None
    """Voltage of the weakest series cell (V): the pack voltage over the gauge's cell count, or the
    lowest cell where the gauge reads each one; None where the gauge cannot tell."""
    simulated: bool = False
    """The reading comes from the simulated pack, not from a gauge: nothing in it was measured, and
    outside a simulation it must never decide a tier or a power-off."""


# --- the turn log ---------------------------------------------------------------------------------

def _num(value: Any) -> float | None:
    """A finite number from a log line, else None (a hand-edited log stays readable)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _count(value: Any) -> int:
    """A count from a log line; anything that is not a number counts as 0."""
    n = _num(value)
    return int(n) if n is not None else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


@dataclass(frozen=True)
class BatteryPoint:
    """What the gauge said just before or just after a turn, as the turn log keeps it."""

    soc_pct: float | None
    voltage_v: float | None
    power_w: float | None
    source: str
    simulated: bool = False
    """The reading came from the simulated pack."""

    @classmethod
    def from_json(cls, data: Any) -> BatteryPoint | None:
        if not isinstance(data, dict):
            return None
        return cls(_num(data.get("soc_pct")), _num(data.get("voltage_v")), _num(data.get("power_w")),
                   str(data.get("source") or ""), bool(data.get("simulated")))


@dataclass(frozen=True)
class GovernorNote:
    """The governor's plan for a turn, as the turn log keeps it."""

    tier: str | None
    """The tier it chose; None when the threshold ladder decided."""
    reason: str
    target_hours_left: float | None
    hours: dict[str, float | None]
    """Per tier: hours the pack would last on it (None: not measured yet)."""
    idle_w: float | None = None
    """The draw between answers the projections counted on (W); None in logs written before it was kept."""

    @classmethod
    def from_json(cls, data: Any) -> GovernorNote | None:
        if not isinstance(data, dict):
            return None
        hours = data.get("hours")
        return cls(_text(data.get("tier")), str(data.get("reason") or ""), _num(data.get("target_hours_left")),
                   {str(k): _num(v) for k, v in hours.items()} if isinstance(hours, dict) else {},
                   _num(data.get("idle_w")))


@dataclass(frozen=True)
class TurnLogEntry:
    """One line of the turn log: a turn's tier, battery, energy, words and latencies.

    ``tpj`` is generated tokens per joule of the whole turn (ASR, LLM, TTS and playback), ``wbl``
    words per joule times the usable pack energy: the words a full charge would give at this rate.
    """

    schema: int
    time: str
    """When the turn ended, ISO 8601 with the UTC offset."""
    unix: float
    turn_id: str
    tier: str | None
    kind: str | None
    """``llm``, ``fixed`` or ``shutdown``."""
    quant: str | None
    model: str
    max_tokens: int | None
    reply_words: int | None
    battery_before: BatteryPoint | None
    battery_after: BatteryPoint | None
    energy_j: float | None
    energy_s: float | None
    energy_measured: bool | None
    """The energy came from a current measurement (not a model, a SoC step or a gap)."""
    pack_usable_j: float | None
    prompt_tokens: int
    tokens: int
    words: int
    words_estimated: bool
    """``words`` is an estimate (a speed twin's turn: tokens x a real model's words per token), not counted."""
    words_basis: str | None
    """How the estimate was made; None when the words were counted."""
    tps: float | None
    tpj: float | None
    wbl: float | None
    words_per_token: float | None
    asr_final_s: float | None
    first_token_s: float | None
    first_audio_s: float | None
    total_s: float | None
    cancelled: bool
    error: str | None
    governor: GovernorNote | None = None

    @property
    def answered(self) -> bool:
        """The turn ended with words spoken, neither failed nor cancelled."""
        return not self.error and not self.cancelled and self.words > 0

    def to_json(self) -> dict[str, Any]:
        """The line's JSON object (the keys of the fields, in order)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> TurnLogEntry:
        """An entry from a parsed line: every figure checked, a wrong one read as missing (None, or 0 for a
        count). ValueError when it is not a turn record at all (no schema or no turn id)."""
        if not isinstance(data, dict) or not isinstance(data.get("schema"), int) or isinstance(data.get("schema"), bool):
            raise ValueError("not a turn record")
        turn_id = data.get("turn_id")
        if not isinstance(turn_id, str):
            raise ValueError("a turn record without a turn id")
        counts = ("prompt_tokens", "tokens", "words")
        optional_counts = ("max_tokens", "reply_words")
        numbers = ("energy_j", "energy_s", "pack_usable_j", "tps", "tpj", "wbl", "words_per_token", "asr_final_s",
                   "first_token_s", "first_audio_s", "total_s")
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = data.get(f.name)
            if f.name in counts:
                values[f.name] = _count(raw)
            elif f.name in optional_counts:
                n = _num(raw)
                values[f.name] = int(n) if n is not None else None
            elif f.name in numbers:
                values[f.name] = _num(raw)
            elif f.name in ("battery_before", "battery_after"):
                values[f.name] = BatteryPoint.from_json(raw)
            elif f.name == "governor":
                values[f.name] = GovernorNote.from_json(raw)
            elif f.name == "energy_measured":
                values[f.name] = _flag(raw)
            elif f.name in ("cancelled", "words_estimated"):
                values[f.name] = raw is True
            elif f.name in ("schema",):
                values[f.name] = raw
            elif f.name == "unix":
                values[f.name] = _num(raw) or 0.0
            elif f.name in ("time", "model"):
                values[f.name] = raw if isinstance(raw, str) else ""
            else:
                values[f.name] = _text(raw) if f.name != "turn_id" else turn_id
        return cls(**values)
