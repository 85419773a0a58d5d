"""WAV reading (every common encoding, odd chunk layouts, every error), writing and conversion."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import AssistantError, AudioFormatError
from assistant.messages import AudioClip
from assistant import atomic
from assistant.errors import AudioWriteError
from assistant.speech.wav import convert, parse_wav, read_wav, to_mono, wav_bytes, write_wav

RNG = np.random.default_rng(7)
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def chunk(cid: bytes, body: bytes) -> bytes:
    """A RIFF chunk with its pad byte."""
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def encode(x16: np.ndarray, encoding: str) -> tuple[bytes, int, int]:
    """Samples (int16, frames x channels) in ``encoding``; returns (bytes, format code, bits).

    The extra resolution of 24/32-bit PCM is filled with noise that must round away."""
    flat = x16.reshape(-1).astype(np.int64)
    if encoding == "u8":
        return ((flat >> 8) + 128).astype(np.uint8).tobytes(), 1, 8
    if encoding == "s16":
        return flat.astype("<i2").tobytes(), 1, 16
    if encoding == "s24":
        v = flat * 256 + RNG.integers(-128, 128, len(flat))
        v = np.clip(v, -(1 << 23), (1 << 23) - 1).astype("<i4")
        return v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes(), 1, 24
    if encoding == "s32":
        v = flat * 65536 + RNG.integers(-32768, 32768, len(flat))
        return np.clip(v, -(1 << 31), (1 << 31) - 1).astype("<i4").tobytes(), 1, 32
    if encoding == "f32":
        return (flat / 32768.0).astype("<f4").tobytes(), 3, 32
    if encoding == "f64":
        return (flat / 32768.0).astype("<f8").tobytes(), 3, 64
    raise ValueError(encoding)


def fmt_body(code: int, channels: int, rate: int, bits: int, extensible: bool) -> bytes:
    align = channels * bits // 8
    head = struct.pack("<HHIIHH", 0xFFFE if extensible else code, channels, rate, rate * align, align, bits)
    if not extensible:
        return head + (struct.pack("<H", 0) if code == 3 else b"")
    mask = (1 << channels) - 1
    return head + struct.pack("<HHI", 22, bits, mask) + struct.pack("<H", code) + GUID_TAIL


def make_wav(x16: np.ndarray, rate: int, encoding: str = "s16", *, extensible: bool = False,
             before: bytes = b"", after: bytes = b"", data_size: int | None = None) -> bytes:
    channels = 1 if x16.ndim == 1 else x16.shape[1]
    data, code, bits = encode(x16, encoding)
    fmt = chunk(b"fmt ", fmt_body(code, channels, rate, bits, extensible))
    extra = chunk(b"fact", struct.pack("<I", len(x16))) if code == 3 else b""
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + before + fmt + extra + b"data" + struct.pack("<I", size) + data
    body += (b"\0" if len(data) % 2 else b"") + after
    return b"RIFF" + struct.pack("<I", len(body)) + body


def noise16(frames: int, channels: int = 1) -> np.ndarray:
    x = RNG.integers(-32768, 32768, (frames, channels)).astype(np.int16)
    x[:4] = [[32767], [-32768], [0], [-1]] if channels == 1 else x[:4]
    return x[:, 0] if channels == 1 else x


def samples(clip: AudioClip) -> np.ndarray:
    return np.frombuffer(clip.pcm, "<i2").reshape(-1, clip.channels)


# --- reading every encoding -------------------------------------------------------------------

ENCODINGS = ["u8", "s16", "s24", "s32", "f32", "f64"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("extensible", [False, True])
@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (22050, 2), (44100, 6), (48000, 2)])
def test_reads_every_encoding(tmp_path: Path, encoding: str, extensible: bool, rate: int, channels: int) -> None:
    x = noise16(301, channels)
    path = tmp_path / f"{encoding}.wav"
    path.write_bytes(make_wav(x, rate, encoding, extensible=extensible))
    clip = read_wav(path)
    assert (clip.rate, clip.channels, clip.frames) == (rate, channels, 301)
    want = x.reshape(-1, channels).astype(np.int32)
    got = samples(clip).astype(np.int32)
    if encoding == "u8":
        want = (want >> 8) << 8  # 8-bit keeps the top byte only
    assert np.array_equal(got, want)


def test_float_beyond_full_scale_clips_and_nan_is_silence() -> None:
    values = np.array([1.0, -1.0, 1.5, -3.0, np.nan, 0.25], dtype="<f4")
    fmt = chunk(b"fmt ", fmt_body(3, 1, 16000, 32, False))
    body = b"WAVE" + fmt + chunk(b"data", values.tobytes())
    clip = parse_wav(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert samples(clip)[:, 0].tolist() == [32767, -32768, 32767, -32768, 0, 8192]


def test_24_bit_full_scale_rounds_and_clips() -> None:
    raw = b"".join(v.to_bytes(3, "little", signed=True) for v in (0x7FFFFF, -0x800000, 0x7F, 0x80, -0x81))
    body = b"WAVE" + chunk(b"fmt ", fmt_body(1, 1, 8000, 24, False)) + chunk(b"data", raw)
    clip = parse_wav(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert samples(clip)[:, 0].tolist() == [32767, -32768, 0, 1, -1]


def test_skips_unknown_chunks_with_padding_in_any_order(tmp_path: Path) -> None:
    x = noise16(101)
    odd = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00Lavf\x00")  # odd length: padded
    data = make_wav(x, 16000, before=odd + chunk(b"junk", b"\0" * 3), after=chunk(b"id3 ", b"abc"))
    clip = parse_wav(data)
    assert np.array_equal(samples(clip)[:, 0], x)


@pytest.mark.parametrize("declared", [0, 0xFFFFFFFF, 10_000_000])
def test_streamed_data_size_reads_what_is_there(declared: int) -> None:
    x = noise16(257, 2)
    clip = parse_wav(make_wav(x, 32000, data_size=declared))
    assert clip.frames == 257 and np.array_equal(samples(clip), x)


def test_file_cut_mid_data_keeps_whole_frames() -> None:
    x = noise16(100, 2)
    data = make_wav(x, 16000)[:-5]  # last frame incomplete
    clip = parse_wav(data)
    assert clip.frames == 98 and np.array_equal(samples(clip), x[:98])


def test_round_trip_through_writer(tmp_path: Path) -> None:
    for channels in (1, 2):
        clip = AudioClip(noise16(1000, channels).tobytes(), 44100, channels)
        path = tmp_path / f"rt{channels}.wav"
        write_wav(path, clip)
        assert read_wav(path) == clip
        assert path.read_bytes() == wav_bytes(clip)
    # the standard library agrees on the header
    import wave

    with wave.open(str(tmp_path / "rt2.wav")) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes()) == (2, 44100, 2, 1000)


def test_reads_8_bit_written_by_the_wave_module(tmp_path: Path) -> None:
    """An 8-bit unsigned WAV written by Python's own wave module."""
    import wave

    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(11025)
        w.writeframes(bytes([0, 128, 255, 64]))
    assert samples(read_wav(path))[:, 0].tolist() == [-32768, 0, 32512, -16384]


# --- errors ----------------------------------------------------------------------------------

def _riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", len(body)) + body


GOOD_FMT = chunk(b"fmt ", fmt_body(1, 1, 16000, 16, False))
ERRORS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "is empty"),
    "mp3 with id3": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\0" * 100, "MP3 file"),
    "raw mp3 frame": (b"\xff\xfb\x90\x64" + b"\0" * 100, "MP3 file"),
    "ogg": (b"OggS\x00\x02" + b"\0" * 50, "Ogg file"),
    "text": (b"hello, this is not audio\n" * 3, "not a WAV file"),
    "riff but not wave": (_riff(b"AVI LIST"), "not WAVE"),
    "cut in riff header": (b"RIFF\x24\x00\x00\x00WA", "truncated"),
    "cut in fmt chunk": (_riff(b"WAVE" + GOOD_FMT[:14]), "truncated"),
    "cut in a chunk header": (_riff(b"WAVE" + GOOD_FMT + b"da"), "truncated"),
    "cut in extensible fmt": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(1, 1, 16000, 16, True))[:38]), "truncated"),
    "short extensible fmt": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(1, 1, 16000, 16, True)[:30]) + chunk(b"data", b"\0" * 8)), "shorter than 40 bytes"),
    "no fmt": (_riff(b"WAVE" + chunk(b"data", b"\0" * 8)), "no fmt chunk"),
    "no data": (_riff(b"WAVE" + GOOD_FMT + chunk(b"LIST", b"INFO")), "no data chunk"),
    "zero frames": (_riff(b"WAVE" + GOOD_FMT + chunk(b"data", b"") + chunk(b"LIST", b"INFO")), "contains no audio"),
    "one byte of 16-bit": (_riff(b"WAVE" + GOOD_FMT + b"data\x01\x00\x00\x00\x01"), "contains no audio"),
    "a-law": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(6, 1, 8000, 8, False)) + chunk(b"data", b"\0" * 8)), "A-law (format code 0x0006)"),
    "mu-law": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(7, 1, 8000, 8, False)) + chunk(b"data", b"\0" * 8)), "mu-law (format code 0x0007)"),
    "ima adpcm": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(0x11, 1, 8000, 4, False)) + chunk(b"data", b"\0" * 8)), "IMA ADPCM (format code 0x0011)"),
    "extensible a-law": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(6, 1, 8000, 8, True)) + chunk(b"data", b"\0" * 8)), "format code 0x0006"),
    "extensible foreign guid": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(1, 1, 8000, 16, True)[:-4] + b"abcd") + chunk(b"data", b"\0" * 8)), "subformat"),
    "96 kHz": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(1, 1, 96000, 16, False)) + chunk(b"data", b"\0" * 8)), "96000 Hz, outside the supported 8000..48000 Hz"),
    "4 kHz": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(1, 1, 4000, 16, False)) + chunk(b"data", b"\0" * 8)), "4000 Hz, outside"),
    "16-bit float": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(3, 1, 8000, 16, False)) + chunk(b"data", b"\0" * 8)), "float sample size 16 bits"),
    "0 channels": (_riff(b"WAVE" + chunk(b"fmt ", fmt_body(1, 0, 8000, 16, False)) + chunk(b"data", b"\0" * 8)), "0 channels"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_files_raise_a_clear_error(tmp_path: Path, case: str) -> None:
    data, message = ERRORS[case]
    path = tmp_path / "input.wav"
    path.write_bytes(data)
    with pytest.raises(AudioFormatError) as info:
        read_wav(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text
    assert "\n" not in text


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="nosuch.wav: no such file"):
        read_wav(tmp_path / "nosuch.wav")
    with pytest.raises(AudioFormatError, match="is a directory"):
        read_wav(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root reads anything: use a FIFO-free equivalent, an unreadable /proc file
        path = Path("/proc/self/mem")
    else:
        path = tmp_path / "locked.wav"
        path.write_bytes(b"RIFF")
        path.chmod(0)
    with pytest.raises(AudioFormatError, match="cannot be read"):
        read_wav(path)


# --- writing ---------------------------------------------------------------------------------

def test_write_is_atomic_when_the_disk_fills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "answer.wav"
    old = AudioClip(b"\1\0" * 100, 16000)
    write_wav(path, old)
    real_write = os.write
    calls = []

    def write_then_fill(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[:1000])  # a short write, as on a nearly full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "write", write_then_fill)
    with pytest.raises(AudioWriteError, match=r"answer\.wav: cannot write WAV \(the disk is full\)") as info:
        write_wav(path, AudioClip(b"\0" * 64000, 16000))
    assert isinstance(info.value, AssistantError)
    assert read_wav(path) == old  # the previous file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answer.wav"]  # no temp file left


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_write_on_a_really_full_filesystem(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode:
        pytest.fail("could not mount a tmpfs as root")
    try:
        write_wav(mnt / "small.wav", AudioClip(b"\0" * 20000, 16000))
        with pytest.raises(AudioWriteError, match="disk is full"):
            write_wav(mnt / "big.wav", AudioClip(b"\0" * 200000, 16000))
        assert sorted(p.name for p in mnt.iterdir()) == ["small.wav"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_write_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioWriteError, match="nodir"):
        write_wav(tmp_path / "nodir" / "x.wav", AudioClip(b"\0\0", 16000))


def test_writer_rejects_broken_clips() -> None:
    with pytest.raises(AudioFormatError, match="not whole"):
        wav_bytes(AudioClip(b"\0\0\0", 16000, 2))
    with pytest.raises(AudioFormatError, match="0 Hz"):
        wav_bytes(AudioClip(b"\0\0", 0))


# --- conversion ------------------------------------------------------------------------------

def test_to_mono_averages_channels() -> None:
    x = np.array([[100, 300], [-32768, -32768], [32767, 32767], [1, 2]], dtype=np.int16)
    mono = to_mono(AudioClip(x.tobytes(), 8000, 2))
    assert mono.channels == 1 and samples(mono)[:, 0].tolist() == [200, -32768, 32767, 2]
    six = AudioClip(np.full((10, 6), 600, np.int16).tobytes(), 8000, 6)
    assert samples(to_mono(six))[:, 0].tolist() == [600] * 10


def test_convert_downmixes_resamples_and_upmixes() -> None:
    t = np.arange(44100) / 44100
    left = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    stereo = AudioClip(np.stack([left, left], axis=1).tobytes(), 44100, 2)
    mono16 = convert(stereo, 16000)
    assert (mono16.rate, mono16.channels, mono16.frames) == (16000, 1, 16000)
    up = convert(mono16, 16000, channels=2)
    assert up.channels == 2 and np.array_equal(samples(up)[:, 0], samples(up)[:, 1])
    with pytest.raises(AudioFormatError, match="6-channel"):
        convert(AudioClip(b"\0" * 24, 8000, 6), 8000, channels=2)
    assert convert(mono16, 16000) is mono16
