"""Microphones: the WAV microphone, and real PortAudio capture from the virtual sound card."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import AudioDeviceError, AudioFormatError
from assistant.messages import AudioClip
from assistant.speech.mic import SoundDeviceMicrophone, WavMicrophone, iter_chunks
from assistant.speech.sound_devices import import_sounddevice
from assistant.speech.wav import convert, write_wav
from audio_fixtures import (MIC_RATE, VirtualAudio, amplitude_at, dominant_frequency, loud_span, realaudio,
                            tone, virtual_audio)

__all__ = ["virtual_audio"]  # the session fixture, imported so that pytest finds it here


# --- the WAV microphone ----------------------------------------------------------------------

def _stereo_wav(tmp_path: Path, seconds: float = 1.0, rate: int = 44100) -> Path:
    path = tmp_path / "question.wav"
    write_wav(path, AudioClip(tone(440, seconds, rate, channels=2).tobytes(), rate, 2))
    return path


def test_wav_mic_serves_converted_chunks_then_ends(tmp_path: Path) -> None:
    path = _stereo_wav(tmp_path, 1.01)
    with WavMicrophone(path, rate=16000, block_ms=50) as mic:
        chunks = list(iter_chunks(mic))
        assert mic.read_chunk(0.1) is None
    assert [len(c) for c in chunks[:-1]] == [1600] * 20 and len(chunks[-1]) == 320
    from assistant.speech.wav import read_wav

    assert b"".join(chunks) == convert(read_wav(path), 16000).pcm


def test_wav_mic_tail_silence_and_seconds_limit(tmp_path: Path) -> None:
    clip = AudioClip(tone(440, 0.5, 16000).tobytes(), 16000)
    mic = WavMicrophone(clip, tail_silence_s=0.3)
    assert mic.seconds == pytest.approx(0.8)
    with mic:
        audio = b"".join(iter_chunks(mic))
    assert len(audio) == 0.8 * 16000 * 2 and audio[-9600:] == bytes(9600)
    with mic:
        assert len(b"".join(iter_chunks(mic, seconds=0.33))) == int(0.33 * 16000) * 2


def test_wav_mic_paces_in_real_time() -> None:
    mic = WavMicrophone(AudioClip(bytes(16000), 16000), realtime=True, block_ms=100)  # 0.5 s
    t0 = time.monotonic()
    with mic:
        assert mic.read_chunk(timeout=0.01) is None  # the first 100 ms are not due yet
        n = sum(1 for _ in iter_chunks(mic, timeout=0.5))
    assert n == 5 and 0.45 < time.monotonic() - t0 < 0.7


def test_wav_mic_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(AudioFormatError, match="bad.wav"):
        WavMicrophone(tmp_path / "bad.wav")
    with pytest.raises(AudioDeviceError, match="not open"):
        WavMicrophone(AudioClip(bytes(100), 16000)).read_chunk(0.1)


# --- real capture on the virtual sound card ------------------------------------------------------

def _capture(mic: SoundDeviceMicrophone, seconds: float) -> np.ndarray:
    pcm = b"".join(iter_chunks(mic, timeout=1.0, seconds=seconds))
    return np.frombuffer(pcm, "<i2")


@realaudio
def test_mic_captures_what_is_spoken(virtual_audio: VirtualAudio) -> None:
    with SoundDeviceMicrophone(device="usb", rate=16000, block_ms=50) as mic:
        assert mic.device_name == "usbmic" and mic.capture_rate == 16000
        first = mic.read_chunk(timeout=2.0)
        assert first is not None and len(first) == 1600
        virtual_audio.feeder.say(tone(440, 1.0, MIC_RATE, amp=0.5))
        x = _capture(mic, 2.0)
    start, end = loud_span(x, 16000, 2000)
    assert 0.9 < end - start < 1.1
    core = x[int((start + 0.1) * 16000) : int((end - 0.1) * 16000)]
    assert abs(dominant_frequency(core, 16000) - 440) < 1
    assert amplitude_at(core, 16000, 440) == pytest.approx(0.5 * 32767, rel=0.02)
    assert mic.overflows == 0


@realaudio
def test_mic_resamples_when_the_device_refuses_the_rate(virtual_audio: VirtualAudio,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A USB microphone that only captures at 48 kHz: the stream runs at 48 kHz, chunks come at 16."""
    sd = import_sounddevice()
    real_check = sd.check_input_settings

    def only_48k(**kw: object) -> None:
        if kw.get("samplerate") != 48000:
            raise sd.PortAudioError("Invalid sample rate", -9997)  # as sounddevice raises it
        real_check(**kw)

    monkeypatch.setattr(sd, "check_input_settings", only_48k)
    monkeypatch.setattr(sd, "query_devices", _with_default_rate(sd.query_devices, 48000))
    with SoundDeviceMicrophone(device="usbmic", rate=16000) as mic:
        assert mic.capture_rate == 48000
        mic.read_chunk(timeout=2.0)
        virtual_audio.feeder.say(tone(1000, 1.0, MIC_RATE, amp=0.5))
        x = _capture(mic, 2.0)
    start, end = loud_span(x, 16000, 2000)
    assert 0.9 < end - start < 1.1
    core = x[int((start + 0.1) * 16000) : int((end - 0.1) * 16000)]
    assert abs(dominant_frequency(core, 16000) - 1000) < 1
    assert abs(20 * np.log10(amplitude_at(core, 16000, 1000) / (0.5 * 32767))) < 0.5


def _with_default_rate(query: object, rate: int) -> object:
    def patched(*args: object, **kw: object) -> object:
        result = query(*args, **kw)  # type: ignore[operator]
        for d in [result] if isinstance(result, dict) else result:
            d["default_samplerate"] = float(rate)
        return result

    return patched


@realaudio
def test_slow_reader_drops_oldest_audio_and_counts_it(virtual_audio: VirtualAudio) -> None:
    with SoundDeviceMicrophone(device="usb", block_ms=50, queue_s=0.3) as mic:
        mic.read_chunk(timeout=2.0)
        time.sleep(0.8)  # nobody reads: the queue holds 0.3 s
        assert mic.overflows >= 5
        backlog = 0
        while mic.read_chunk(timeout=0.0) is not None:
            backlog += 1
        assert backlog <= 7


@realaudio
def test_unplug_raises_then_replug_and_reopen_works(virtual_audio: VirtualAudio) -> None:
    mic = SoundDeviceMicrophone(device="usb", stall_s=1.0)
    mic.open()
    try:
        assert mic.read_chunk(timeout=2.0) is not None
        virtual_audio.unplug_mic()
        t0 = time.monotonic()
        with pytest.raises(AudioDeviceError, match="microphone 'usbmic' failed"):
            while time.monotonic() - t0 < 5:
                mic.read_chunk(timeout=0.2)
        assert time.monotonic() - t0 < 2.0
        with pytest.raises(AudioDeviceError, match="'usbmic' cannot be opened .*unplugged"):
            mic.reopen()  # still unplugged
        virtual_audio.replug_mic()
        mic.reopen()
        mic.read_chunk(timeout=2.0)
        virtual_audio.feeder.say(tone(660, 0.6, MIC_RATE))
        x = _capture(mic, 1.5)
    finally:
        mic.close()
    start, end = loud_span(x, 16000, 2000)
    assert 0.5 < end - start < 0.7
    assert abs(dominant_frequency(x[int(start * 16000) : int(end * 16000)], 16000) - 660) < 2
