"""Short cue sounds, computed in code: listening starts and stops, a tap ignored, an error, a low battery."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

import numpy as np

from assistant.messages import AudioClip

_LOG = logging.getLogger(__name__)

RATE = 22050
"""Sample rate of every earcon (Hz), the rate of the default Piper voice, so no resampling is needed."""

VOLUME = 0.5
"""Default peak level as a fraction of full scale: loud enough to hear, well clear of clipping."""

FADE_S = 0.005
"""Raised-cosine fade at both ends of every tone (s): long enough that no edge clicks."""

FULL_SCALE = 32767


def _fade(n: int, rate: int) -> np.ndarray:
    """Gain ramp 0 -> 1 over FADE_S (or a third of the tone if that is shorter), starting exactly at 0."""
    k = max(2, min(int(FADE_S * rate), n // 3))
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / (k - 1))


def _envelope(x: np.ndarray, rate: int) -> np.ndarray:
    ramp = _fade(len(x), rate)
    x[: len(ramp)] *= ramp
    x[len(x) - len(ramp):] *= ramp[::-1]
    return x


def _tone(freq_hz: float, seconds: float, rate: int, harmonics: Sequence[float] = (1.0,)) -> np.ndarray:
    """A faded tone; ``harmonics[i]`` is the amplitude of partial ``i + 1``, partials above Nyquist dropped."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = np.zeros_like(t)
    for i, amp in enumerate(harmonics):
        f = freq_hz * (i + 1)
        if amp and f < rate / 2:
            x += amp * np.sin(2 * np.pi * f * t)
    return _envelope(x, rate)


def _silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(round(seconds * rate)))


def _clip(parts: Sequence[np.ndarray], rate: int, volume: float) -> AudioClip:
    """Join the parts, scale the peak to ``volume`` of full scale, and pack as 16-bit mono PCM."""
    if not 0.0 < volume <= 1.0:
        raise ValueError(f"earcon volume must be within (0, 1], got {volume}")
    x = np.concatenate(parts)
    peak = float(np.max(np.abs(x))) or 1.0
    pcm = np.round(x / peak * volume * FULL_SCALE).astype("<i2")
    return AudioClip(pcm.tobytes(), rate, 1)


@functools.lru_cache(maxsize=32)
def listen_start(*, rate: int = RATE, volume: float = VOLUME) -> AudioClip:
    """Listening begins: a rising two-tone (660 Hz then 880 Hz, 60 ms each)."""
    return _clip([_tone(660.0, 0.06, rate), _tone(880.0, 0.06, rate)], rate, volume)


@functools.lru_cache(maxsize=32)
def listen_stop(*, rate: int = RATE, volume: float = VOLUME) -> AudioClip:
    """Listening ends: the same two tones falling (880 Hz then 660 Hz)."""
    return _clip([_tone(880.0, 0.06, rate), _tone(660.0, 0.06, rate)], rate, volume)


@functools.lru_cache(maxsize=32)
def error(*, rate: int = RATE, volume: float = VOLUME) -> AudioClip:
    """Something failed: a low 150 Hz buzz (odd harmonics, square-like), 250 ms."""
    square = tuple(1.0 / k if k % 2 else 0.0 for k in range(1, 12))
    return _clip([_tone(150.0, 0.25, rate, square)], rate, volume)


@functools.lru_cache(maxsize=32)
def tap_ignored(*, rate: int = RATE, volume: float = VOLUME) -> AudioClip:
    """A press too short to be speech: a 25 ms tick at 2 kHz that decays fast."""
    x = _tone(2000.0, 0.025, rate)
    x *= np.exp(-np.arange(len(x)) / (0.006 * rate))
    return _clip([x], rate, volume * 0.6)


@functools.lru_cache(maxsize=32)
def low_battery(*, rate: int = RATE, volume: float = VOLUME) -> AudioClip:
    """The pack is nearly empty: three falling tones (880, 660, 440 Hz, 100 ms each, 40 ms apart)."""
    gap = _silence(0.04, rate)
    return _clip([_tone(880.0, 0.1, rate), gap, _tone(660.0, 0.1, rate), gap, _tone(440.0, 0.1, rate)],
                 rate, volume)


EARCONS: dict[str, Callable[..., AudioClip]] = {
    "listen_start": listen_start,
    "listen_stop": listen_stop,
    "error": error,
    "tap_ignored": tap_ignored,
    "low_battery": low_battery,
}
"""Every earcon by name (for ``assistant check`` and tests)."""
