"""Faults the soak test injects: a sound card that goes away, engines that raise, broken model files, a full disk."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from assistant.errors import AudioDeviceError, ModelError
from assistant.messages import AudioClip, Transcript
from assistant.speech.asr import AsrSession, Transcriber
from assistant.speech.wav_speaker import ContextSpeaker

_LOG = logging.getLogger(__name__)

ErrorFactory = Callable[[], BaseException]


def engine_error(rng: random.Random, engine: str) -> ErrorFactory:
    """An error an engine may raise mid-turn: one of ours (an adapter that wraps) or a raw one (a crash)."""
    if rng.random() < 0.5:
        return lambda: ModelError(f"{engine} failed mid-turn (injected)")
    return lambda: RuntimeError(f"{engine} crashed mid-turn (injected)")


class FlakySpeaker(ContextSpeaker):
    """A speaker that plays at ``time_scale`` times real time, keeps no audio, and can be unplugged.

    It fails the way ``SoundDeviceSpeaker`` does: once the device is gone, ``play`` and ``wait``
    raise AudioDeviceError until ``reopen()`` succeeds, which needs the device back (``plug()``).
    """

    def __init__(self, *, time_scale: float = 1.0) -> None:
        """``time_scale``: seconds of audio played per wall-clock second (> 0)."""
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.time_scale = time_scale
        self.played_s = 0.0
        """Audio handed to the speaker (s of audio)."""
        self.clips = 0
        self.stops = 0
        self.reopens = 0
        """Successful reopens (after the device came back)."""
        self._end = 0.0
        self._lock = threading.Lock()
        self._present = True
        self._failed = False

    def _check(self) -> None:
        if self._failed:
            raise AudioDeviceError("speaker 'soak' failed: the output stream stopped (device unplugged or "
                                   "failed); check it and reopen it")

    def play(self, clip: AudioClip) -> None:
        """Queue ``clip`` after what is queued; raises once the device is gone."""
        self._check()
        with self._lock:
            now = time.monotonic()
            self._end = max(now, self._end) + clip.seconds / self.time_scale
            self.played_s += clip.seconds
            self.clips += 1

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queued audio has been heard (False after ``timeout`` s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check()
            now = time.monotonic()
            with self._lock:
                rest = self._end - now
            if rest <= 0:
                return True
            if deadline is not None and now >= deadline:
                return False
            step = min(rest, 0.05) if deadline is None else min(rest, 0.05, max(0.0, deadline - now))
            time.sleep(step)

    def stop(self) -> None:
        """Silence now: drop what has not been heard."""
        with self._lock:
            self.stops += 1
            self._end = time.monotonic()

    def close(self) -> None:
        """Stop; nothing else to release."""
        self.stop()

    def reopen(self) -> None:
        """Open the device again; AudioDeviceError while it is absent."""
        if not self._present:
            raise AudioDeviceError("cannot open speaker 'soak': the device is not present")
        with self._lock:
            self._end = time.monotonic()
        self._failed = False
        self.reopens += 1

    def unplug(self) -> None:
        """The device goes away: every call fails from now on, until it is back and reopened."""
        self._present = False
        self._failed = True

    def plug(self) -> None:
        """The device is back; it still needs ``reopen()``, as a real output stream does."""
        self._present = True


class _Armed:
    """A one-shot fault: the next session (or synthesis) raises after ``after`` items."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: tuple[int, ErrorFactory] | None = None
        self.fired = 0

    def arm(self, after: int, error: ErrorFactory) -> None:
        with self._lock:
            self._next = (after, error)

    def take(self) -> tuple[int, ErrorFactory] | None:
        with self._lock:
            armed, self._next = self._next, None
            return armed


class FlakyTranscriber:
    """Wraps a real Transcriber; ``arm(after, error)`` makes the next utterance raise after ``after`` chunks."""

    def __init__(self, inner: Transcriber) -> None:
        self.inner = inner
        self.engine = inner.engine
        self.rate = inner.rate
        self._armed = _Armed()

    @property
    def fired(self) -> int:
        """How many armed faults went off."""
        return self._armed.fired

    def arm(self, after: int, error: ErrorFactory) -> None:
        """Fail the next utterance at its ``after``-th chunk (the real session has started by then)."""
        self._armed.arm(after, error)

    def session(self, *, whole: bool = False) -> AsrSession:
        inner = self.inner.session(whole=True) if whole else self.inner.session()
        return _FlakySession(inner, self._armed.take(), self._armed)

    def close(self) -> None:
        self.inner.close()


class _FlakySession:
    def __init__(self, inner: AsrSession, armed: tuple[int, ErrorFactory] | None, owner: _Armed) -> None:
        self.inner = inner
        self.armed = armed
        self.owner = owner
        self.chunks = 0

    def feed(self, pcm: bytes) -> Transcript | None:
        self.chunks += 1
        if self.armed is not None and self.chunks > self.armed[0]:
            error, self.armed = self.armed[1], None
            self.owner.fired += 1
            raise error()
        return self.inner.feed(pcm)

    def finish(self) -> Transcript:
        return self.inner.finish()


class FlakySynthesizer:
    """Wraps a real synthesizer; ``arm(after, error)`` makes the next sentence raise after ``after`` clips."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._armed = _Armed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def fired(self) -> int:
        """How many armed faults went off."""
        return self._armed.fired

    def arm(self, after: int, error: ErrorFactory) -> None:
        """Fail the next ``synthesize`` call once it has produced ``after`` clips."""
        self._armed.arm(after, error)

    def synthesize(self, text: str) -> Iterator[AudioClip]:
        armed = self._armed.take()
        produced = 0
        for clip in self.inner.synthesize(text):
            if armed is not None and produced >= armed[0]:
                self._armed.fired += 1
                raise armed[1]()
            produced += 1
            yield clip
        if armed is not None:
            self._armed.fired += 1
            raise armed[1]()

    def close(self) -> None:
        self.inner.close()
