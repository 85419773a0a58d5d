"""The sounddevice speaker: real PortAudio playback on the virtual sound card."""

from __future__ import annotations

import time

import pytest

from assistant.errors import AudioDeviceError
from assistant.messages import AudioClip
from assistant.speech.speaker import SoundDeviceSpeaker
from audio_fixtures import (VirtualAudio, amplitude_at, dominant_frequency, loud_span, loud_spans, realaudio, tone,
                            virtual_audio)

__all__ = ["virtual_audio"]  # the session fixture, imported so that pytest finds it here


def clip_of(freq: float, seconds: float, rate: int, amp: float = 0.5) -> AudioClip:
    return AudioClip(tone(freq, seconds, rate, amp).tobytes(), rate)


# --- real playback on the virtual sound card -----------------------------------------------------

@realaudio
def test_unknown_speaker_lists_the_outputs(virtual_audio: VirtualAudio) -> None:
    with pytest.raises(AudioDeviceError) as info:
        SoundDeviceSpeaker(device="JBL Flip").play(clip_of(440, 0.1, 16000))
    assert "no output sound device matches 'JBL Flip'" in str(info.value)
    assert "'hatspeaker'" in str(info.value)


@realaudio
def test_speaker_plays_what_it_is_given(virtual_audio: VirtualAudio) -> None:
    rec = virtual_audio.record_speaker()
    rec.wait_started()
    with SoundDeviceSpeaker(device="HAT") as speaker:
        t0 = time.monotonic()
        speaker.play(clip_of(1000, 0.8, 22050))  # Piper's rate: the stream opens at it
        speaker.play(clip_of(2000, 0.4, 16000))  # resampled to the stream rate
        assert time.monotonic() - t0 < 0.3  # play() only queues
        assert speaker.device_name == "hatspeaker" and speaker.rate == 22050
        assert speaker.wait(timeout=5) is True
        waited = time.monotonic() - t0
    x = rec.stop()
    assert 1.15 < waited < 1.6
    start, end = loud_span(x, 16000, 2000)
    assert end - start == pytest.approx(1.2, abs=0.05)
    first = x[int((start + 0.1) * 16000) : int((start + 0.7) * 16000)]
    second = x[int((start + 0.9) * 16000) : int((start + 1.1) * 16000)]
    assert abs(dominant_frequency(first, 16000) - 1000) < 2
    assert abs(dominant_frequency(second, 16000) - 2000) < 3
    assert amplitude_at(first, 16000, 1000) == pytest.approx(0.5 * 32767, rel=0.05)


@realaudio
def test_stop_silences_the_speaker_quickly(virtual_audio: VirtualAudio) -> None:
    rec = virtual_audio.record_speaker()
    rec.wait_started()
    with SoundDeviceSpeaker(device="hatspeaker") as speaker:
        speaker.play(clip_of(1000, 0.2, 16000))  # open the stream and let it settle
        speaker.wait(timeout=3)
        time.sleep(0.2)
        t_play = time.monotonic()
        speaker.play(clip_of(1000, 3.0, 16000))
        time.sleep(0.6)
        t0 = time.monotonic()
        speaker.stop()
        t_stop = time.monotonic()
        assert t_stop - t0 < 0.05
        assert speaker.wait(timeout=0.2) is True and speaker.queued_seconds == 0
        time.sleep(0.4)
        speaker.play(clip_of(500, 0.3, 16000))  # still usable after a stop
        assert speaker.wait(timeout=3) is True
    x = rec.stop()
    spans = loud_spans(x, 16000, 2000)
    assert len(spans) == 3, spans
    heard = spans[1][1] - spans[1][0]
    # the 3 s tone cannot have sounded for longer than from play() to ~50 ms after stop()
    assert heard < (t_stop - t_play) + 0.05, (heard, t_stop - t_play)
    assert heard > 0.4
    assert abs(dominant_frequency(x[int(spans[2][0] * 16000) : int(spans[2][1] * 16000)], 16000) - 500) < 3


@realaudio
def test_wait_times_out_while_audio_is_still_playing(virtual_audio: VirtualAudio) -> None:
    with SoundDeviceSpeaker(device="hat") as speaker:
        speaker.play(clip_of(440, 1.0, 16000))
        t0 = time.monotonic()
        assert speaker.wait(timeout=0.2) is False
        assert 0.15 < time.monotonic() - t0 < 0.35
        speaker.stop()


@realaudio
def test_unplugged_speaker_raises_then_reopens(virtual_audio: VirtualAudio) -> None:
    speaker = SoundDeviceSpeaker(device="hat")
    try:
        speaker.play(clip_of(440, 2.0, 16000))
        time.sleep(0.3)
        virtual_audio.unplug_speaker()
        t0 = time.monotonic()
        with pytest.raises(AudioDeviceError, match="speaker 'hatspeaker' failed"):
            speaker.wait(timeout=5)
        assert time.monotonic() - t0 < 2.5
        with pytest.raises(AudioDeviceError, match="speaker 'hatspeaker' failed"):
            speaker.play(clip_of(440, 0.1, 16000))
        virtual_audio.replug_speaker()
        rec = virtual_audio.record_speaker()
        rec.wait_started()
        speaker.reopen()
        speaker.play(clip_of(750, 0.5, 16000))
        assert speaker.wait(timeout=3) is True
        x = rec.stop()
    finally:
        speaker.close()
    start, end = loud_span(x, 16000, 2000)
    assert end - start == pytest.approx(0.5, abs=0.05)
    assert abs(dominant_frequency(x[int(start * 16000) : int(end * 16000)], 16000) - 750) < 2
