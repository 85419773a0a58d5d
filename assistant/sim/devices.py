"""Simulated hardware for `assistant run --sim`: a live microphone fed from clips, mock GPIO pins."""

from __future__ import annotations

import logging
import queue
import threading
import time
from types import TracebackType
from typing import Any, Self

from assistant.errors import AudioDeviceError
from assistant.messages import SAMPLE_WIDTH, AudioClip
from assistant.speech.wav import convert

_LOG = logging.getLogger(__name__)


class SimMicrophone:
    """A microphone that is always on, like a real one: silence in real time, and speech when told.

    ``say(clip)`` queues speech that comes out of the following chunks, paced by the clock, as a
    person speaking into the device would. Chunks are produced on demand by ``read_chunk`` from
    the clock, so the microphone costs nothing while nobody reads it. ``time_scale`` runs that
    clock faster than the wall clock (4: a second of audio every quarter second), for soak tests.

    ``unplug()`` and ``plug()`` emulate a USB microphone that goes away and comes back, as
    ``SoundDeviceMicrophone`` reports it: once unplugged, ``read_chunk`` raises AudioDeviceError
    until ``reopen()`` succeeds, and ``open()`` raises while the device is absent.
    """

    def __init__(self, *, rate: int = 16000, block_ms: int = 50, noise_dbfs: float | None = None,
                 time_scale: float = 1.0) -> None:
        """``time_scale``: seconds of audio the microphone captures per wall-clock second (> 0)."""
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.rate = rate
        self.time_scale = time_scale
        self.block_bytes = max(1, rate * block_ms // 1000) * SAMPLE_WIDTH
        self.block_s = self.block_bytes / SAMPLE_WIDTH / rate
        """Audio length of one block (s)."""
        self._block_wall_s = self.block_s / time_scale
        self._speech: queue.Queue[bytes] = queue.Queue()
        self._pending = b""
        self._next_t: float | None = None
        self._lock = threading.Lock()
        self._open = False
        self._noise = None if noise_dbfs is None else 32768 * 10 ** (noise_dbfs / 20)
        self._present = True
        self._failed = False

    def open(self) -> None:
        if not self._present:
            raise AudioDeviceError("cannot open microphone 'sim': the device is not present")
        if self._failed:  # a stream opened anew starts empty: what was said into the dead one is lost
            self._pending = b""
            while not self._speech.empty():
                self._speech.get_nowait()
        self._failed = False
        self._open = True
        self._next_t = time.monotonic()

    def close(self) -> None:
        self._open = False

    def reopen(self) -> None:
        """Close and open again (after the device came back)."""
        self.close()
        self.open()

    def unplug(self) -> None:
        """The device goes away: reads fail from now on, until it is back and reopened."""
        self._present = False
        self._failed = True

    def plug(self) -> None:
        """The device is back; reads keep failing until ``reopen()``, as with a real stream."""
        self._present = True

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def say(self, clip: AudioClip) -> float:
        """Queue speech (any rate or channels); returns its length in seconds."""
        mono = convert(clip, self.rate, 1)
        self._speech.put(mono.pcm)
        return mono.seconds

    def wait_said(self, timeout: float) -> bool:
        """Wait until everything queued by ``say`` has been read out of the microphone; False on timeout
        (nobody is reading it)."""
        deadline = time.monotonic() + timeout
        while not self._speech.empty() or self._pending:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _silence(self) -> bytes:
        if self._noise is None:
            return b"\0" * self.block_bytes
        import numpy as np

        noise = np.random.default_rng().normal(0, self._noise, self.block_bytes // SAMPLE_WIDTH)
        return np.clip(noise, -32768, 32767).astype("<i2").tobytes()

    def read_chunk(self, timeout: float) -> bytes | None:
        """The next block, waiting until the clock has reached its end; None if that is beyond ``timeout``."""
        if self._failed:
            raise AudioDeviceError("microphone 'sim' failed: the input stream stopped (device unplugged); "
                                   "check the cable and reopen it")
        if not self._open:
            return None
        with self._lock:
            assert self._next_t is not None
            now = time.monotonic()
            keep = 5.0 / self.time_scale  # nobody read for a while: a real capture queue would have dropped it
            if self._next_t < now - keep:
                self._next_t = now - keep
            due = self._next_t + self._block_wall_s
            if due > now + timeout:
                time.sleep(max(0.0, timeout))
                return None
            if due > now:
                time.sleep(due - now)
            self._next_t = due
            while len(self._pending) < self.block_bytes:
                try:
                    self._pending += self._speech.get_nowait()
                except queue.Empty:
                    break
            if self._pending:
                block, self._pending = self._pending[: self.block_bytes], self._pending[self.block_bytes :]
                return block + self._silence()[len(block) :]
            return self._silence()

    def discard_backlog(self) -> None:
        """Drop what was captured before now (a real microphone's queue emptied at a key press)."""
        with self._lock:
            self._next_t = time.monotonic()


def mock_pin_factory() -> Any:
    """gpiozero's mock pin factory (PWM-capable pins, so every LED kind works)."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)
