"""Microphones: a sounddevice input stream (device chosen by name) and a WAV-file microphone."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import numpy as np

from assistant.errors import AudioDeviceError
from assistant.messages import SAMPLE_WIDTH, AudioClip
from assistant.speech.resample import StreamResampler
from assistant.speech.sound_devices import choose_format, find_device, import_sounddevice
from assistant.speech.wav import convert, read_wav

_LOG = logging.getLogger(__name__)

CAPTURE_LATENCY_S = 0.3
"""Input buffer the device keeps (s). PortAudio's own "high" latency is about 35 ms on an ALSA hw
device, so a capture callback held up longer than that (a busy CPU, a recogniser holding the GIL)
loses audio: measured on a slow CPU, 60 % of a spoken question. Blocks still arrive every
``block_ms``; a larger buffer only absorbs the stalls."""


class Microphone(Protocol):
    """A source of mono s16le PCM at ``rate``, delivered in chunks."""

    rate: int
    """Sample rate of the chunks (Hz)."""

    def open(self) -> None:
        """Start capturing."""
        ...

    def read_chunk(self, timeout: float) -> bytes | None:
        """The next chunk, or None if none came within ``timeout`` s (or the source has ended)."""
        ...

    def close(self) -> None:
        """Stop capturing and release the device."""
        ...

    def reopen(self) -> None:
        """Close and open again (after the device was unplugged and came back)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None: ...


def iter_chunks(mic: Microphone, *, timeout: float = 1.0, seconds: float | None = None) -> Iterator[bytes]:
    """Yield chunks from an open microphone until it ends, stalls for ``timeout`` s, or
    ``seconds`` of audio have been delivered."""
    limit = None if seconds is None else int(seconds * mic.rate) * SAMPLE_WIDTH
    delivered = 0
    while limit is None or delivered < limit:
        chunk = mic.read_chunk(timeout)
        if chunk is None:
            return
        if limit is not None:
            chunk = chunk[: limit - delivered]
        delivered += len(chunk)
        yield chunk


# --- the real microphone ------------------------------------------------------------------------

class SoundDeviceMicrophone:
    """Captures from a sound card through PortAudio, as mono s16le chunks of ``block_ms``.

    Wiring: any capture device ALSA (or PulseAudio/PipeWire) lists, e.g. a USB microphone,
    chosen by a part of its name (``device="USB"``), never by index, because indexes change
    when devices come and go. The stream is opened once and kept open; if the device cannot
    capture at ``rate`` (or in mono), it captures at its own rate (or in stereo) and the audio
    is converted. The audio thread only appends to a bounded queue: when the reader falls
    behind by more than ``queue_s``, the oldest audio is dropped and counted in ``overflows``.

    Example::

        with SoundDeviceMicrophone(device="USB", rate=16000) as mic:
            for chunk in iter_chunks(mic, seconds=5):
                session.feed(chunk)
    """

    def __init__(self, *, device: str = "default", rate: int = 16000, block_ms: int = 50,
                 queue_s: float = 5.0, stall_s: float = 2.0, capture_rate: int | None = None) -> None:
        """``rate``: of the chunks delivered (Hz); ``capture_rate``: the rate to open the device at,
        if it takes it (None: ``rate``); ``stall_s``: no audio from the device for this long means it
        has gone away (s)."""
        self.device = device
        self.rate = rate
        self.preferred_rate = capture_rate or rate
        self.block_ms = block_ms
        self.stall_s = stall_s
        self.overflows = 0
        """Blocks dropped because the reader fell behind."""
        self.device_overflows = 0
        """Blocks in which PortAudio itself reported lost input."""
        self.device_name = ""
        """Full name of the device that was opened."""
        self.capture_rate = rate
        """Rate the device actually captures at (Hz)."""
        self._chunk_bytes = max(1, rate * block_ms // 1000) * SAMPLE_WIDTH
        self._max_blocks = max(2, int(queue_s * 1000 / block_ms))
        self._queue: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._stream: Any = None
        self._channels = 1
        self._resampler: StreamResampler | None = None
        self._pending = bytearray()
        self._failure: str | None = None
        self._closing = False
        self._last_audio = 0.0

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Find the device and start the input stream (does nothing if it is already open)."""
        if self._stream is not None:
            return
        sd = import_sounddevice()
        index, info = find_device(self.device, "input")
        self.device_name = str(info["name"])
        rate, channels = choose_format(index, info, "input", self.preferred_rate)
        self.capture_rate, self._channels = rate, channels
        self._resampler = StreamResampler(rate, self.rate) if rate != self.rate else None
        self._queue.clear()
        self._pending.clear()
        self._failure = None
        self._closing = False
        stream = None
        try:
            stream = sd.RawInputStream(
                device=index, samplerate=rate, channels=channels, dtype="int16",
                blocksize=max(1, rate * self.block_ms // 1000), latency=CAPTURE_LATENCY_S,
                callback=self._callback, finished_callback=self._finished)
            self._last_audio = time.monotonic()
            stream.start()
        except sd.PortAudioError as exc:
            if stream is not None:
                self._closing = True
                stream.close(ignore_errors=True)
            raise AudioDeviceError(f"cannot open microphone {self.device_name!r}: {exc}") from exc
        self._stream = stream
        _LOG.info("microphone %r open: %d Hz, %d ch%s", self.device_name, rate, channels,
                  f", resampled to {self.rate} Hz" if rate != self.rate else "")

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        data = bytes(indata)
        with self._cond:
            if status and status.input_overflow:
                self.device_overflows += 1
            if len(self._queue) >= self._max_blocks:
                self._queue.popleft()
                self.overflows += 1
            self._queue.append(data)
            self._last_audio = time.monotonic()
            self._cond.notify()

    def _finished(self) -> None:
        with self._cond:
            if not self._closing:
                self._failure = "the input stream stopped (device unplugged or failed)"
            self._cond.notify()

    def read_chunk(self, timeout: float) -> bytes | None:
        """Next ``block_ms`` chunk of mono s16le at ``rate``; None if none within ``timeout`` s.

        Raises AudioDeviceError when the device failed or delivered nothing for ``stall_s``.
        """
        if self._stream is None:
            raise AudioDeviceError(f"microphone {self.device!r} is not open")
        deadline = time.monotonic() + timeout
        while len(self._pending) < self._chunk_bytes:
            with self._cond:
                while not self._queue and self._failure is None:
                    now = time.monotonic()
                    if now - self._last_audio > self.stall_s:
                        self._failure = f"no audio for {now - self._last_audio:.1f} s"
                        break
                    if now >= deadline:
                        return None
                    self._cond.wait(min(deadline, self._last_audio + self.stall_s) - now + 0.001)
                if self._failure is not None and not self._queue:
                    raise AudioDeviceError(f"microphone {self.device_name!r} failed: {self._failure}; "
                                           "check the cable and reopen it")
                block = self._queue.popleft()
            self._pending += self._convert(block)
        chunk = bytes(self._pending[: self._chunk_bytes])
        del self._pending[: self._chunk_bytes]
        return chunk

    def _convert(self, block: bytes) -> bytes:
        x = np.frombuffer(block, dtype="<i2")
        if self._channels > 1:
            x = np.rint(x.reshape(-1, self._channels).astype(np.float32).mean(axis=1))
        if self._resampler is not None:
            return self._resampler.feed(x).astype("<i2").tobytes()
        return x.astype("<i2").tobytes()

    def close(self) -> None:
        """Stop and release the stream; safe to call twice."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        with self._cond:
            self._closing = True
        sd = import_sounddevice()
        try:
            stream.abort()
            stream.close()
        except sd.PortAudioError as exc:
            _LOG.warning("closing microphone %r: %s", self.device_name, exc)
        _LOG.info("microphone %r closed (%d overflows)", self.device_name, self.overflows)

    def reopen(self) -> None:
        """Close and open again, e.g. after the device was unplugged and plugged back in."""
        self.close()
        self.open()


# --- the simulated microphone ---------------------------------------------------------------------

class WavMicrophone:
    """Serves a WAV file (or a clip) as if it came from a microphone: mono s16le at ``rate``,
    ``block_ms`` per chunk, optionally paced in real time, then ``tail_silence_s`` of silence,
    then the end (``read_chunk`` returns None)."""

    def __init__(self, source: Path | AudioClip, *, rate: int = 16000, block_ms: int = 50,
                 realtime: bool = False, tail_silence_s: float = 0.0) -> None:
        """``source`` is read (and converted) right away, so a bad file fails here."""
        clip = source if isinstance(source, AudioClip) else read_wav(Path(source))
        pcm = convert(clip, rate, 1).pcm
        self._pcm = pcm + b"\0" * (int(tail_silence_s * rate) * SAMPLE_WIDTH)
        self.rate = rate
        self.realtime = realtime
        self._chunk_bytes = max(1, rate * block_ms // 1000) * SAMPLE_WIDTH
        self._pos = 0
        self._started = 0.0
        self._open = False

    @property
    def seconds(self) -> float:
        """Total audio served, including the tail silence (s)."""
        return len(self._pcm) / SAMPLE_WIDTH / self.rate

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Rewind to the start."""
        self._pos = 0
        self._started = time.monotonic()
        self._open = True

    def read_chunk(self, timeout: float) -> bytes | None:
        """Next chunk; None at the end (or, in real time, if it is not due within ``timeout``)."""
        if not self._open:
            raise AudioDeviceError("WAV microphone is not open")
        if self._pos >= len(self._pcm):
            return None
        end = min(self._pos + self._chunk_bytes, len(self._pcm))
        if self.realtime:
            due = self._started + end / SAMPLE_WIDTH / self.rate
            wait = due - time.monotonic()
            if wait > timeout:
                time.sleep(max(0.0, timeout))
                return None
            if wait > 0:
                time.sleep(wait)
        chunk = self._pcm[self._pos : end]
        self._pos = end
        return chunk

    def close(self) -> None:
        """Stop serving."""
        self._open = False

    def reopen(self) -> None:
        """Rewind to the start."""
        self.open()
