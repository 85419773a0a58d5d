"""Small typed messages that the stages pass to each other."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """Words spoken (in the reply)."""
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
    extra: dict[str, object] = field(default_factory=dict)
    """Fields added by later stages (tier, battery, energy)."""


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
