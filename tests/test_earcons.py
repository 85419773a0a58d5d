"""Earcons: length, pitch (by FFT), level, and clean starts and ends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assistant.device import earcons
from assistant.messages import AudioClip
from assistant.speech.wav_speaker import WavSpeaker


def samples(clip: AudioClip) -> np.ndarray:
    return np.frombuffer(clip.pcm, dtype="<i2").astype(np.float64)


def peak_hz(x: np.ndarray, rate: int) -> float:
    """The strongest frequency in ``x`` (Hann window, zero-padded for 1 Hz bins)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=rate))
    return float(np.argmax(spectrum[20:]) + 20)  # bin width is rate / n = 1 Hz


@pytest.mark.parametrize(("name", "seconds"), [
    ("listen_start", 0.12), ("listen_stop", 0.12), ("error", 0.25), ("tap_ignored", 0.025), ("low_battery", 0.38),
])
def test_format_and_length(name: str, seconds: float) -> None:
    clip = earcons.EARCONS[name]()
    assert clip.rate == 22050 and clip.channels == 1
    assert clip.seconds == pytest.approx(seconds, abs=0.002)


@pytest.mark.parametrize("make", list(earcons.EARCONS.values()))
def test_no_clipping_and_silent_ends(make: Callable[..., AudioClip]) -> None:
    x = samples(make())
    assert 0.25 * 32767 <= np.max(np.abs(x)) <= 0.5 * 32767 + 1  # audible, 6 dB below full scale
    assert x[0] == 0 and x[-1] == 0
    assert np.max(np.abs(x[:5])) < 0.01 * 32767 and np.max(np.abs(x[-5:])) < 0.01 * 32767
    # no click anywhere: no step between samples bigger than a full-level 2 kHz sine makes
    assert np.max(np.abs(np.diff(x))) <= 0.5 * 32767 * 2 * np.pi * 2000 / 22050 * 1.05


def test_listen_start_rises_and_stop_falls() -> None:
    start, stop = samples(earcons.listen_start()), samples(earcons.listen_stop())
    half = len(start) // 2
    assert peak_hz(start[:half], 22050) == pytest.approx(660, abs=3)
    assert peak_hz(start[half:], 22050) == pytest.approx(880, abs=3)
    assert peak_hz(stop[:half], 22050) == pytest.approx(880, abs=3)
    assert peak_hz(stop[half:], 22050) == pytest.approx(660, abs=3)


def test_error_is_a_low_buzz_with_odd_harmonics() -> None:
    x = samples(earcons.error())
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=22050))
    assert peak_hz(x, 22050) == pytest.approx(150, abs=3)
    assert spectrum[450] > 0.2 * spectrum[150]  # 3rd harmonic present (square-like)
    assert spectrum[300] < 0.02 * spectrum[150]  # no even harmonics
    power = spectrum**2
    assert np.sum(power[:1000]) > 0.9 * np.sum(power)  # energy below 1 kHz: "low"


def test_tap_ignored_is_a_short_high_tick() -> None:
    x = samples(earcons.tap_ignored())
    assert peak_hz(x, 22050) == pytest.approx(2000, abs=60)
    first, last = np.abs(x[: len(x) // 3]).max(), np.abs(x[-len(x) // 3:]).max()
    assert last < 0.5 * first  # decays


def test_low_battery_three_falling_tones() -> None:
    x = samples(earcons.low_battery())
    rate = 22050
    tones = [x[i * int(0.14 * rate): i * int(0.14 * rate) + int(0.1 * rate)] for i in range(3)]
    assert [round(peak_hz(t, rate) / 10) * 10 for t in tones] == [880, 660, 440]
    gap = x[int(0.1 * rate) + 20: int(0.14 * rate) - 20]
    assert np.all(gap == 0)


def test_rate_and_volume_options_and_cache() -> None:
    clip = earcons.listen_start(rate=16000, volume=0.25)
    assert clip.rate == 16000 and clip.seconds == pytest.approx(0.12, abs=0.001)
    assert np.max(np.abs(samples(clip))) == pytest.approx(0.25 * 32767, abs=1)
    assert earcons.listen_start() is earcons.listen_start()
    with pytest.raises(ValueError, match="volume"):
        earcons.error(volume=1.5)


def test_plays_through_a_speaker(tmp_path: Path) -> None:
    out = tmp_path / "cues.wav"
    with WavSpeaker(out) as speaker:
        for make in earcons.EARCONS.values():
            speaker.play(make())
        assert speaker.wait()
    assert speaker.seconds == pytest.approx(sum(m().seconds for m in earcons.EARCONS.values()))
    assert out.stat().st_size > 44
