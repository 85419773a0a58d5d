"""Fuzzing the WAV reader: arbitrary bytes and mutated valid WAVs give an AudioClip or an AudioFormatError,
never another exception or a hang."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.errors import AssistantError, AudioFormatError
from assistant.messages import AudioClip
from assistant.speech.wav import EXTENSIBLE, IEEE_FLOAT, MAX_RATE, MIN_RATE, PCM, _GUID_TAIL, parse_wav
from fuzzing import result_or_our_error

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(outcome: AudioClip | AssistantError) -> None:
    if isinstance(outcome, AssistantError):
        assert isinstance(outcome, AudioFormatError), outcome
        assert str(outcome).startswith("<fuzz>: ")
        return
    assert isinstance(outcome, AudioClip)
    assert outcome.channels >= 1 and MIN_RATE <= outcome.rate <= MAX_RATE
    assert len(outcome.pcm) > 0 and len(outcome.pcm) % (2 * outcome.channels) == 0


def chunk(cid: bytes, body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return cid + struct.pack("<I", size) + body + (b"\0" if len(body) % 2 else b"")


@st.composite
def valid_wavs(draw: st.DrawFn) -> bytes:
    """A well-formed WAV of any layout the reader supports, with extra chunks here and there."""
    kind = draw(st.sampled_from(["pcm8", "pcm16", "pcm24", "pcm32", "float32", "float64", "ext16"]))
    bits = {"pcm8": 8, "pcm16": 16, "pcm24": 24, "pcm32": 32, "float32": 32, "float64": 64, "ext16": 16}[kind]
    tag = IEEE_FLOAT if kind.startswith("float") else EXTENSIBLE if kind == "ext16" else PCM
    channels = draw(st.integers(1, 3))
    rate = draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]))
    frames = draw(st.integers(1, 64))
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if tag == EXTENSIBLE:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", PCM) + _GUID_TAIL
    if kind.startswith("float"):
        samples = draw(st.lists(st.floats(width=32 if bits == 32 else 64), min_size=frames * channels,
                                max_size=frames * channels))
        audio = np.array(samples, dtype="<f4" if bits == 32 else "<f8").tobytes()
    else:
        audio = draw(st.binary(min_size=frames * align, max_size=frames * align))
    extra = [chunk(b"LIST", draw(st.binary(max_size=20))) for _ in range(draw(st.integers(0, 2)))]
    body = b"WAVE" + b"".join(extra[:1]) + chunk(b"fmt ", fmt) + b"".join(extra[1:]) + chunk(b"data", audio)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@st.composite
def mutated_wavs(draw: st.DrawFn) -> bytes:
    """A valid WAV with bytes overwritten, a header field set to anything, cut short or grown."""
    data = bytearray(draw(valid_wavs()))
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.sampled_from(["byte", "u16", "u32", "truncate", "insert"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if how == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif how in ("u16", "u32"):
            width = 2 if how == "u16" else 4
            value = draw(st.integers(0, (1 << (8 * width)) - 1))
            data[pos:pos + width] = value.to_bytes(width, "little")
        elif how == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    check(result_or_our_error(lambda: parse_wav(data, "<fuzz>")))


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_after_a_riff_wave_header(tail: bytes) -> None:
    data = b"RIFF" + struct.pack("<I", len(tail) + 4) + b"WAVE" + tail
    check(result_or_our_error(lambda: parse_wav(data, "<fuzz>")))


@FUZZ
@given(valid_wavs())
def test_valid_wavs_decode(data: bytes) -> None:
    outcome = result_or_our_error(lambda: parse_wav(data, "<fuzz>"))
    assert isinstance(outcome, AudioClip), outcome
    check(outcome)


@FUZZ
@given(mutated_wavs())
def test_mutated_wavs(data: bytes) -> None:
    check(result_or_our_error(lambda: parse_wav(data, "<fuzz>")))


def test_a_huge_declared_chunk_is_not_allocated() -> None:
    body = b"WAVE" + chunk(b"fmt ", struct.pack("<HHIIHH", PCM, 1, 16000, 32000, 2, 16)) + b"data" + \
        struct.pack("<I", 0xFFFFFFF0) + b"\x01\x00" * 10
    clip = result_or_our_error(lambda: parse_wav(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body, "<fuzz>"))
    assert isinstance(clip, AudioClip) and len(clip.pcm) == 20  # read to the end of what is there
