"""Read any WAV file a person hands us, convert it, and write 16-bit PCM WAVs safely."""

from __future__ import annotations

import errno
import logging
import struct
from pathlib import Path

import numpy as np

from assistant.atomic import write_bytes_atomic
from assistant.errors import AudioFormatError, AudioWriteError
from assistant.messages import SAMPLE_WIDTH, AudioClip
from assistant.speech.resample import resample_array

_LOG = logging.getLogger(__name__)

MIN_RATE = 8000
"""Lowest sample rate accepted from a file (Hz)."""
MAX_RATE = 48000
"""Highest sample rate accepted from a file (Hz)."""

PCM = 0x0001
IEEE_FLOAT = 0x0003
EXTENSIBLE = 0xFFFE
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_ENCODINGS = {
    0x0002: "Microsoft ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10", 0x0050: "MPEG", 0x0055: "MPEG Layer 3", 0x0161: "Windows Media Audio",
}
_NOT_WAV = {b"ID3": "an MP3 file", b"OggS": "an Ogg file", b"fLaC": "a FLAC file",
            b"RF64": "an RF64 (over 4 GiB) WAV, which is not supported",
            b"RIFX": "a big-endian (RIFX) WAV, which is not supported"}


def _fail(name: str, problem: str) -> AudioFormatError:
    return AudioFormatError(f"{name}: {problem}")


def read_wav(path: Path) -> AudioClip:
    """Read a WAV file of any common encoding; return s16le PCM at its own rate and channels."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail(str(path), "no such file") from None
    except IsADirectoryError:
        raise _fail(str(path), "is a directory, not a WAV file") from None
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc})") from None
    return parse_wav(data, str(path))


def parse_wav(data: bytes, name: str = "<wav bytes>") -> AudioClip:
    """Decode the bytes of a WAV file; ``name`` is used in error messages."""
    if not data:
        raise _fail(name, "is empty (0 bytes)")
    if data[:4] != b"RIFF":
        for magic, what in _NOT_WAV.items():
            if data.startswith(magic):
                raise _fail(name, f"is {what}, not a WAV file")
        if data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xfa"):
            raise _fail(name, "is an MP3 file, not a WAV file")
        raise _fail(name, "is not a WAV file (no RIFF header)")
    if len(data) < 12:
        raise _fail(name, f"is truncated: {len(data)} bytes, cut inside the RIFF header")
    if data[8:12] != b"WAVE":
        raise _fail(name, f"is a RIFF file of type {data[8:12]!r}, not WAVE")
    fmt: bytes | None = None
    audio: memoryview | None = None
    view = memoryview(data)
    pos, cid = 12, b""
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise _fail(name, "is truncated: the fmt chunk is cut short")
            fmt = data[body : body + min(size, len(data) - body)]
        elif cid == b"data":
            remaining = len(data) - body
            if size > remaining or (size == 0 and remaining and not _looks_like_chunk(data, body)):
                _LOG.debug("%s: data chunk size %d, %d bytes present: reading to the end",
                           name, size, remaining)
                audio = view[body:]
                break
            audio = view[body : body + size]
        pos = body + size + (size & 1)
        if fmt is not None and audio is not None:
            break
    if fmt is None or audio is None:
        if len(data) < pos + 8 and pos < len(data):
            raise _fail(name, "is truncated: cut inside a chunk header")
        if pos > len(data):
            raise _fail(name, f"is truncated: chunk {cid.decode('latin-1')!r} is cut short")
    if fmt is None:
        raise _fail(name, "has no fmt chunk")
    if audio is None:
        raise _fail(name, "has no data chunk (contains no audio)")
    return _decode(name, fmt, audio)


def _looks_like_chunk(data: bytes, pos: int) -> bool:
    """True when a well-formed chunk header follows (so a 0-byte data chunk really is empty)."""
    if pos + 8 > len(data):
        return False
    cid = data[pos : pos + 4]
    size = struct.unpack_from("<I", data, pos + 4)[0]
    return all(32 <= b < 127 for b in cid) and pos + 8 + size <= len(data) + 1


def _decode(name: str, fmt: bytes, audio: memoryview) -> AudioClip:
    tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == EXTENSIBLE:
        if len(fmt) < 40:
            raise _fail(name, "has a WAVE_FORMAT_EXTENSIBLE fmt chunk shorter than 40 bytes")
        guid = fmt[24:40]
        tag = struct.unpack_from("<H", guid)[0]
        if guid[2:] != _GUID_TAIL:
            raise _fail(name, f"has an unsupported WAVE_FORMAT_EXTENSIBLE subformat {guid.hex()}")
    if tag not in (PCM, IEEE_FLOAT):
        what = _ENCODINGS.get(tag, "unknown")
        raise _fail(name, f"uses unsupported encoding {what} (format code 0x{tag:04X}); "
                          "only PCM and IEEE float WAVs can be read")
    if channels < 1:
        raise _fail(name, "declares 0 channels")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise _fail(name, f"has sample rate {rate} Hz, outside the supported "
                          f"{MIN_RATE}..{MAX_RATE} Hz")
    width = (bits + 7) // 8
    if align >= channels * width and align % channels == 0:
        width = align // channels
    ok = {PCM: (1, 2, 3, 4), IEEE_FLOAT: (4, 8)}[tag]
    if width not in ok:
        kind = "PCM" if tag == PCM else "float"
        raise _fail(name, f"has unsupported {kind} sample size {bits} bits "
                          f"(supported: {', '.join(str(8 * w) for w in ok)})")
    frame = width * channels
    frames = len(audio) // frame
    if frames == 0:
        raise _fail(name, "contains no audio (0 sample frames)")
    samples = _to_int16(audio[: frames * frame], width, tag == IEEE_FLOAT)
    _LOG.debug("%s: %s %d-bit, %d ch, %d Hz, %d frames", name,
               "float" if tag == IEEE_FLOAT else "PCM", 8 * width, channels, rate, frames)
    return AudioClip(pcm=samples.astype("<i2").tobytes(), rate=rate, channels=channels)


def _to_int16(buf: memoryview, width: int, is_float: bool) -> np.ndarray:
    """Convert little-endian samples of ``width`` bytes to int16 with rounding and clipping."""
    if is_float:
        x = np.frombuffer(buf, dtype="<f4" if width == 4 else "<f8")
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0) * 32768.0
        return np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    if width == 1:
        return ((np.frombuffer(buf, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 2:
        return np.frombuffer(buf, dtype="<i2").astype(np.int16)
    if width == 3:
        b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)  # sign lands in bit 31
    else:
        v = np.frombuffer(buf, dtype="<i4")
    wide = (v.astype(np.int64) + (1 << 15)) >> 16
    return np.clip(wide, -32768, 32767).astype(np.int16)


def wav_header(rate: int, channels: int, data_bytes: int) -> bytes:
    """The 44-byte header of a 16-bit PCM WAV holding ``data_bytes`` of samples."""
    align = channels * SAMPLE_WIDTH
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, PCM,
                       channels, rate, rate * align, align, 8 * SAMPLE_WIDTH, b"data", data_bytes)


def wav_bytes(clip: AudioClip) -> bytes:
    """The complete 16-bit PCM WAV file for ``clip``."""
    _check_clip(clip)
    return wav_header(clip.rate, clip.channels, len(clip.pcm)) + clip.pcm


def _check_clip(clip: AudioClip) -> None:
    if clip.rate <= 0 or clip.channels <= 0:
        raise AudioFormatError(f"cannot write audio at {clip.rate} Hz with {clip.channels} channels")
    if len(clip.pcm) % (SAMPLE_WIDTH * clip.channels):
        raise AudioFormatError(f"audio of {len(clip.pcm)} bytes is not whole {clip.channels}-channel "
                               "16-bit frames")
    if len(clip.pcm) + 36 >= 1 << 32:
        raise AudioFormatError(f"audio of {len(clip.pcm)} bytes is too long for a WAV file (4 GiB)")


def write_wav(path: Path, clip: AudioClip) -> None:
    """Write ``clip`` as 16-bit PCM; atomic: the file appears whole or not at all."""
    path = Path(path)
    blob = wav_bytes(clip)
    try:
        write_bytes_atomic(path, blob)
    except OSError as exc:
        why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise AudioWriteError(f"{path}: cannot write WAV ({why}); no file was written") from exc
    _LOG.debug("wrote %s: %.2f s at %d Hz, %d ch", path, clip.seconds, clip.rate, clip.channels)


def to_mono(clip: AudioClip) -> AudioClip:
    """Average the channels of ``clip`` into one."""
    if clip.channels == 1:
        return clip
    x = np.frombuffer(clip.pcm, dtype="<i2").reshape(-1, clip.channels).astype(np.int32)
    mono = np.floor_divide(x.sum(axis=1) + clip.channels // 2, clip.channels)
    return AudioClip(pcm=mono.astype("<i2").tobytes(), rate=clip.rate, channels=1)


def resample(clip: AudioClip, rate: int) -> AudioClip:
    """Convert ``clip`` to ``rate`` Hz with a band-limited (Kaiser-windowed sinc) resampler."""
    if rate <= 0:
        raise AudioFormatError(f"cannot resample to {rate} Hz")
    if rate == clip.rate:
        return clip
    x = np.frombuffer(clip.pcm, dtype="<i2").reshape(-1, clip.channels)
    cols = [resample_array(x[:, c], clip.rate, rate) for c in range(clip.channels)]
    y = cols[0] if clip.channels == 1 else np.stack(cols, axis=1)
    return AudioClip(pcm=y.astype("<i2").tobytes(), rate=rate, channels=clip.channels)


def convert(clip: AudioClip, rate: int, channels: int = 1) -> AudioClip:
    """Bring ``clip`` to ``rate`` Hz and ``channels`` (downmix to mono, or copy mono out)."""
    if channels == 1:
        clip = to_mono(clip)
    elif channels != clip.channels:
        if clip.channels != 1:
            raise AudioFormatError(f"cannot convert {clip.channels}-channel audio to {channels} channels")
        x = np.frombuffer(clip.pcm, dtype="<i2")
        clip = AudioClip(pcm=np.repeat(x, channels).tobytes(), rate=clip.rate, channels=channels)
    return resample(clip, rate)
