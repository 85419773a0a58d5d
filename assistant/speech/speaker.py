"""Speakers: the Speaker interface, a sounddevice output stream, and the simulated ones re-exported."""

from __future__ import annotations

import logging
import threading
import time
from types import ModuleType, TracebackType
from typing import Any, Protocol, Self

from assistant.errors import AudioDeviceError
from assistant.messages import SAMPLE_WIDTH, AudioClip
from assistant.speech.sound_devices import choose_format, find_device, import_sounddevice
from assistant.speech.wav import convert
from assistant.speech.wav_speaker import ContextSpeaker, NullSpeaker, QueuedClip, WavSpeaker

__all__ = ["NullSpeaker", "QueuedClip", "SoundDeviceSpeaker", "Speaker", "WavSpeaker"]

_LOG = logging.getLogger(__name__)

PLAYBACK_LATENCY_S = 0.1
"""Output buffer the device keeps (s). PortAudio's "low" latency (about 9 ms on an ALSA hw device)
underflows whenever the callback is held up that long, and the speech comes out chopped; ``stop()``
aborts the stream, dropping this buffer, so a barge-in still silences it at once."""


class Speaker(Protocol):
    """Plays clips one after the other, without blocking the caller."""

    def play(self, clip: AudioClip) -> None:
        """Queue ``clip`` after everything already queued; returns at once."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything queued has been heard; False if ``timeout`` s passed first."""
        ...

    def stop(self) -> None:
        """Drop everything queued and silence the speaker now (barge-in)."""
        ...

    def close(self) -> None:
        """Release the device (after stopping)."""
        ...

    def reopen(self) -> None:
        """Close and open the device again (after it went away); nothing to do for a file or null speaker."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class SoundDeviceSpeaker(ContextSpeaker):
    """Plays through a sound card with PortAudio.

    Wiring: any playback device ALSA (or PulseAudio/PipeWire) lists, e.g. an audio HAT or a
    USB speaker, chosen by a part of its name (``device="HAT"``), never by index. The output
    stream is opened once, at ``rate`` or else at the rate of the first clip (at the device's
    own rate if it refuses that one), and stays open: clips at any other rate are resampled to
    the stream rate rather than reopening the stream, so there is never a gap or a click
    between sentences. A PortAudio callback pulls from a byte buffer and plays silence when it
    is empty; ``stop()`` empties the buffer and drops what the device has buffered (abort), so
    sound stops within one block.
    """

    def __init__(self, *, device: str = "default", rate: int | None = None, block_ms: int = 20,
                 stall_s: float = 2.0) -> None:
        """``rate``: stream rate (Hz), None for the first clip's; ``stall_s``: a device that asks
        for no audio for this long has gone away (s)."""
        self.device = device
        self.rate = rate
        self.block_ms = block_ms
        self.stall_s = stall_s
        self.device_name = ""
        """Full name of the device that was opened."""
        self.channels = 1
        """Channels of the output stream (mono clips are copied to both sides of a stereo one)."""
        self.underflows = 0
        """Callbacks in which PortAudio reported that the device ran dry."""
        self._sd: ModuleType | None = None
        self._stream: Any = None
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._failure: str | None = None
        self._closing = False
        self._sound_end = 0.0  # monotonic time when the last audio handed to the device is heard
        self._last_callback = 0.0

    def open(self, rate: int) -> None:
        """Open the output stream at ``rate`` Hz (or the device's own rate); no-op if open."""
        if self._stream is not None:
            return
        sd = self._sd = import_sounddevice()
        index, info = find_device(self.device, "output")
        self.device_name = str(info["name"])
        self.rate, self.channels = choose_format(index, info, "output", rate)
        self._failure, self._closing = None, False
        stream = None
        try:
            stream = sd.RawOutputStream(
                device=index, samplerate=self.rate, channels=self.channels, dtype="int16",
                blocksize=max(1, self.rate * self.block_ms // 1000), latency=PLAYBACK_LATENCY_S,
                callback=self._callback, finished_callback=self._finished)
            self._last_callback = time.monotonic()
            stream.start()
        except sd.PortAudioError as exc:
            if stream is not None:
                self._closing = True
                stream.close(ignore_errors=True)
            raise AudioDeviceError(f"cannot open speaker {self.device_name!r}: {exc}") from exc
        self._stream = stream
        _LOG.info("speaker %r open: %d Hz, %d ch, latency %.0f ms", self.device_name, self.rate,
                  self.channels, 1000 * stream.latency)

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        n = len(outdata)
        now = time.monotonic()
        with self._cond:
            take = min(n, len(self._buf))
            if take:
                outdata[:take] = self._buf[:take]
                del self._buf[:take]
                ahead = max(0.0, time_info.outputBufferDacTime - time_info.currentTime)
                self._sound_end = now + ahead + take / (SAMPLE_WIDTH * self.channels * (self.rate or 1))
            if take < n:
                outdata[take:] = bytes(n - take)
            if status.output_underflow:
                self.underflows += 1
            self._last_callback = now
            self._cond.notify_all()

    def _finished(self) -> None:
        with self._cond:
            if not self._closing:
                self._failure = "the output stream stopped (device unplugged or failed)"
            self._cond.notify_all()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise AudioDeviceError(f"speaker {self.device_name or self.device!r} failed: "
                                   f"{self._failure}; check it and reopen it")

    def play(self, clip: AudioClip) -> None:
        """Queue ``clip`` (converted to the stream's rate and channels); returns at once."""
        self._raise_if_failed()
        if self._stream is None:
            self.open(self.rate or clip.rate)
        assert self.rate is not None
        pcm = convert(clip, self.rate, self.channels).pcm
        with self._cond:
            self._buf += pcm

    @property
    def queued_seconds(self) -> float:
        """Audio queued and not yet handed to the device (s)."""
        return len(self._buf) / (SAMPLE_WIDTH * self.channels * (self.rate or 1))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything queued has been heard; False if ``timeout`` s passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._buf and self._failure is None:
                now = time.monotonic()
                if now - self._last_callback > self.stall_s:
                    self._failure = f"the device took no audio for {now - self._last_callback:.1f} s"
                    break
                if deadline is not None and now >= deadline:
                    return False
                step = self.stall_s if deadline is None else min(self.stall_s, deadline - now)
                self._cond.wait(max(0.001, step))
            end = self._sound_end
        self._raise_if_failed()
        rest = end - time.monotonic()
        if deadline is not None and time.monotonic() + rest > deadline:
            time.sleep(max(0.0, deadline - time.monotonic()))
            return False
        if rest > 0:
            time.sleep(rest)
        return True

    def stop(self) -> None:
        """Drop all queued audio and what the device has buffered; sound stops within a block."""
        with self._cond:
            self._buf.clear()
            self._sound_end = time.monotonic()
            self._cond.notify_all()
        stream = self._stream
        if stream is None or self._failure is not None:
            return
        assert self._sd is not None
        try:
            with self._cond:
                self._closing = True
            stream.abort()
            with self._cond:
                self._closing = False
            stream.start()
        except self._sd.PortAudioError as exc:
            self._failure = f"restarting after stop: {exc}"
            _LOG.warning("speaker %r: %s", self.device_name, self._failure)

    def close(self) -> None:
        """Stop and release the stream; safe to call twice."""
        with self._cond:
            self._buf.clear()
            self._closing = True
        stream, self._stream = self._stream, None
        if stream is None:
            return
        assert self._sd is not None
        try:
            stream.abort()
            stream.close()
        except self._sd.PortAudioError as exc:
            _LOG.warning("closing speaker %r: %s", self.device_name, exc)
        _LOG.info("speaker %r closed (%d underflows)", self.device_name, self.underflows)

    def reopen(self) -> None:
        """Close and open again at the same rate, e.g. after the device came back."""
        rate = self.rate
        self.close()
        if rate is not None:
            self.open(rate)
