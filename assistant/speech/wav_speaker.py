"""Simulated speakers: one that writes everything it plays to a WAV file, and one that discards it."""

from __future__ import annotations

import abc
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from assistant.messages import SAMPLE_WIDTH, AudioClip
from assistant.speech.wav import convert, write_wav

_LOG = logging.getLogger(__name__)


class ContextSpeaker(abc.ABC):
    """Base of the speakers: a context manager that closes the speaker on exit."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None:
        """Release the speaker."""

    def reopen(self) -> None:
        """A speaker without a device has nothing to reopen."""


@dataclass(frozen=True)
class QueuedClip:
    """One clip handed to a simulated speaker."""

    wall_time: float
    """``time.time()`` when it was queued (s since the epoch)."""
    start_s: float
    """Where it starts in the speaker's output (s)."""
    seconds: float
    """Its length (s)."""
    rate: int
    """Its own sample rate, before conversion to the output's (Hz)."""


class WavSpeaker(ContextSpeaker):
    """Collects everything played into one WAV written on ``wait()`` and ``close()``.

    The output has the rate and channels of the first clip; later clips are converted to it.
    ``path`` None keeps the audio in memory only (``audio``). With ``realtime`` the clips are
    heard as a real speaker would play them: ``wait()`` lasts as long as the audio and
    ``stop()`` cuts off what would not have been heard yet.
    """

    def __init__(self, path: Path | None, *, realtime: bool = False) -> None:
        """``path``: the WAV to write (None: none); ``realtime``: pace playback by the clock."""
        self.path = None if path is None else Path(path)
        self.realtime = realtime
        self.clips: list[QueuedClip] = []
        """Every clip queued, with when it was queued."""
        self.stops = 0
        """How many times ``stop()`` was called."""
        self.rate: int | None = None
        self.channels = 1
        self._segments: list[tuple[float, bytearray]] = []  # (monotonic start, pcm)
        self._lock = threading.Lock()

    def play(self, clip: AudioClip) -> None:
        """Queue ``clip``: it starts when everything before it has been heard."""
        with self._lock:
            if self.rate is None:
                self.rate, self.channels = clip.rate, clip.channels
            pcm = bytearray(convert(clip, self.rate, self.channels).pcm)
            now = time.monotonic()
            start = max(now, self._end_locked()) if self.realtime else now
            self.clips.append(QueuedClip(time.time(), self._seconds_locked(), clip.seconds, clip.rate))
            self._segments.append((start, pcm))

    def _frame_bytes(self) -> int:
        return SAMPLE_WIDTH * self.channels

    def _end_locked(self) -> float:
        if not self._segments or self.rate is None:
            return 0.0
        start, pcm = self._segments[-1]
        return start + len(pcm) / self._frame_bytes() / self.rate

    def _seconds_locked(self) -> float:
        """Length of the output so far (s); the caller holds the lock."""
        if self.rate is None:
            return 0.0
        return sum(len(p) for _, p in self._segments) / self._frame_bytes() / self.rate

    @property
    def seconds(self) -> float:
        """Length of everything that was (or will be) heard (s)."""
        with self._lock:
            return self._seconds_locked()

    @property
    def audio(self) -> AudioClip:
        """Everything heard, as one clip (empty at 16 kHz if nothing was played)."""
        with self._lock:
            pcm = b"".join(bytes(p) for _, p in self._segments)
            return AudioClip(pcm, self.rate or 16000, self.channels)

    def wait(self, timeout: float | None = None) -> bool:
        """Write the WAV; in real time, first wait until the last clip has been heard."""
        done = True
        if self.realtime:
            with self._lock:
                rest = self._end_locked() - time.monotonic()
            if timeout is not None and rest > timeout:
                time.sleep(max(0.0, timeout))
                done = False
            elif rest > 0:
                time.sleep(rest)
        self._write()
        return done

    def stop(self) -> None:
        """Cut off everything not heard yet (in real time; otherwise all was heard already)."""
        with self._lock:
            self.stops += 1
            if not self.realtime or self.rate is None:
                return
            now = time.monotonic()
            kept: list[tuple[float, bytearray]] = []
            for start, pcm in self._segments:
                if start >= now:
                    break
                heard = int((now - start) * self.rate) * self._frame_bytes()
                kept.append((start, pcm[:heard]))
            self._segments = kept

    def close(self) -> None:
        """Stop (in real time) and write the WAV."""
        if self.realtime:
            self.stop()
        self._write()

    def _write(self) -> None:
        if self.path is not None:
            audio = self.audio
            write_wav(self.path, audio)
            _LOG.debug("speaker output written to %s (%.2f s)", self.path, audio.seconds)


class NullSpeaker(ContextSpeaker):
    """Discards audio, counting what it was given."""

    def __init__(self) -> None:
        self.seconds = 0.0
        """Total length of the clips played (s)."""
        self.clips = 0
        """Number of clips played."""
        self.stops = 0
        """How many times ``stop()`` was called."""

    def play(self, clip: AudioClip) -> None:
        """Count ``clip`` and drop it."""
        self.clips += 1
        self.seconds += clip.seconds

    def wait(self, timeout: float | None = None) -> bool:
        """Nothing is ever pending."""
        return True

    def stop(self) -> None:
        """Nothing to cancel; counted."""
        self.stops += 1

    def close(self) -> None:
        """Nothing to release."""
