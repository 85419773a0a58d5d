"""The simulated speakers: WavSpeaker (collects and writes a WAV, optionally in real time) and NullSpeaker."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from assistant.messages import AudioClip
from assistant.speech.wav import read_wav
from assistant.speech.wav_speaker import NullSpeaker, WavSpeaker
from audio_fixtures import dominant_frequency, tone


def clip_of(freq: float, seconds: float, rate: int, amp: float = 0.5) -> AudioClip:
    return AudioClip(tone(freq, seconds, rate, amp).tobytes(), rate)


def test_wav_speaker_collects_converts_and_writes(tmp_path: Path) -> None:
    path = tmp_path / "answer.wav"
    before = time.time()
    with WavSpeaker(path) as speaker:
        speaker.play(clip_of(440, 0.5, 22050))
        speaker.play(clip_of(880, 0.25, 16000))  # another rate: converted to the first one's
        assert speaker.wait() is True
        assert read_wav(path).seconds == pytest.approx(0.75, abs=0.001)
        speaker.play(clip_of(440, 0.25, 22050))
    out = read_wav(path)
    assert (out.rate, out.channels) == (22050, 1) and out.seconds == pytest.approx(1.0, abs=0.001)
    assert [c.start_s for c in speaker.clips] == pytest.approx([0.0, 0.5, 0.75], abs=0.001)
    assert [c.rate for c in speaker.clips] == [22050, 16000, 22050]
    assert all(before <= c.wall_time <= time.time() for c in speaker.clips)
    x = np.frombuffer(out.pcm, "<i2")
    assert abs(dominant_frequency(x[int(0.52 * 22050) : int(0.73 * 22050)], 22050) - 880) < 2


def test_wav_speaker_without_a_file_keeps_audio_in_memory(tmp_path: Path) -> None:
    with WavSpeaker(None) as speaker:
        speaker.play(clip_of(440, 0.2, 16000))
        speaker.stop()  # everything was heard already: nothing to cut
    assert speaker.audio.seconds == pytest.approx(0.2) and speaker.stops == 1
    assert list(tmp_path.iterdir()) == []


def test_realtime_wav_speaker_is_cut_by_stop() -> None:
    speaker = WavSpeaker(None, realtime=True)
    speaker.play(clip_of(440, 1.0, 16000))
    speaker.play(clip_of(440, 1.0, 16000))
    time.sleep(0.3)
    t0 = time.monotonic()
    speaker.stop()
    assert time.monotonic() - t0 < 0.01
    assert speaker.audio.seconds == pytest.approx(0.3, abs=0.05)
    assert speaker.wait(timeout=0.1) is True  # nothing left to play


def test_realtime_wav_speaker_wait_lasts_as_long_as_the_audio() -> None:
    speaker = WavSpeaker(None, realtime=True)
    speaker.play(clip_of(440, 0.4, 16000))
    assert speaker.wait(timeout=0.1) is False
    t0 = time.monotonic()
    assert speaker.wait() is True
    assert 0.2 < time.monotonic() - t0 < 0.4


def test_null_speaker_counts() -> None:
    with NullSpeaker() as speaker:
        speaker.play(clip_of(440, 0.5, 22050))
        speaker.play(clip_of(440, 0.25, 16000))
        speaker.stop()
        assert speaker.wait(0) is True
    assert (speaker.clips, speaker.stops) == (2, 1) and speaker.seconds == pytest.approx(0.75)
