"""Test helpers for audio: signal measurements and the virtual sound card (tests/virtual_audio.sh)."""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from assistant.speech.sound_devices import rescan_devices

_LOG = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("virtual_audio.sh")
MIC_RATE = 16000
"""Rate of the virtual microphone's FIFO (Hz), fixed in virtual_audio.sh."""
realaudio = pytest.mark.realaudio
"""Marks the tests that run real PortAudio streams on the virtual sound card."""


# --- signals ---------------------------------------------------------------------------------

def tone(freq: float, seconds: float, rate: int, amp: float = 0.5, channels: int = 1) -> np.ndarray:
    """A sine of ``amp`` full scale as int16, shape (frames,) or (frames, channels)."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.rint(amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return x if channels == 1 else np.repeat(x[:, None], channels, axis=1)


def amplitude_at(x: np.ndarray, rate: int, freq: float) -> float:
    """Least-squares amplitude of a sine at ``freq`` in ``x`` (same units as ``x``)."""
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, np.asarray(x, dtype=np.float64), rcond=None)
    return float(np.hypot(*coef))


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    """Frequency of the strongest spectral peak (Hann window, parabolic interpolation) (Hz)."""
    y = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft((y - y.mean()) * np.hanning(len(y))))
    k = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(y)


def band_level_db(x: np.ndarray, rate: int, lo: float, hi: float, ref: float) -> float:
    """Peak spectral amplitude in [lo, hi) Hz relative to a sine of amplitude ``ref`` (dB)."""
    y = np.asarray(x, dtype=np.float64)
    w = np.blackman(len(y))
    spec = np.abs(np.fft.rfft(y * w)) / (w.sum() / 2)
    f = np.fft.rfftfreq(len(y), 1 / rate)
    band = spec[(f >= lo) & (f < hi)]
    return float(20 * np.log10(band.max() / ref + 1e-15))


def loud_span(x: np.ndarray, rate: int, threshold: float, win_s: float = 0.005) -> tuple[float, float]:
    """First and last time (s) where the short-window RMS of ``x`` exceeds ``threshold``."""
    win = max(1, int(win_s * rate))
    n = len(x) // win
    rms = np.sqrt((np.asarray(x[: n * win], dtype=np.float64).reshape(n, win) ** 2).mean(axis=1))
    idx = np.flatnonzero(rms > threshold)
    if not len(idx):
        return (0.0, 0.0)
    return idx[0] * win / rate, (idx[-1] + 1) * win / rate


def loud_spans(x: np.ndarray, rate: int, threshold: float, gap_s: float = 0.1) -> list[tuple[float, float]]:
    """Separate loud stretches of ``x`` (s), split where it is quiet for ``gap_s``."""
    win = int(0.005 * rate)
    n = len(x) // win
    rms = np.sqrt((x[: n * win].astype(np.float64).reshape(n, win) ** 2).mean(axis=1))
    spans: list[tuple[float, float]] = []
    for i in np.flatnonzero(rms > threshold):
        t = i * win / rate
        if spans and t - spans[-1][1] < gap_s:
            spans[-1] = (spans[-1][0], t + win / rate)
        else:
            spans.append((t, t + win / rate))
    return spans


# --- the virtual microphone's feeder ---------------------------------------------------------------

class MicFeeder(threading.Thread):
    """Writes the virtual microphone's FIFO in real time: queued audio, else silence.

    PulseAudio's pipe source only produces the samples written to it, so this runs for the
    whole session. The FIFO is shrunk to one page so that what was written while nobody
    recorded is at most 128 ms old; writes to a full FIFO are dropped, never blocked on. After
    an unplug (the FIFO disappears) it reopens the FIFO when it comes back.
    """

    BLOCK = MIC_RATE // 100  # 10 ms

    def __init__(self, fifo: Path) -> None:
        super().__init__(name="virtual-mic-feeder", daemon=True)
        self.fifo = fifo
        self._pending: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def say(self, samples: np.ndarray) -> float:
        """Queue 16 kHz mono int16 samples; returns when they will have been written (monotonic)."""
        pcm = np.asarray(samples, dtype="<i2").tobytes()
        step = self.BLOCK * 2
        with self._lock:
            backlog = sum(len(b) for b in self._pending) / 2 / MIC_RATE
            self._pending.extend(pcm[i : i + step] for i in range(0, len(pcm), step))
        return time.monotonic() + backlog + len(pcm) / 2 / MIC_RATE

    def _open(self) -> int | None:
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return None
        fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ
        return fd

    def run(self) -> None:
        fd: int | None = None
        silence = bytes(self.BLOCK * 2)
        t_next = time.monotonic()
        while not self._halt.is_set():
            if fd is None:
                fd = self._open()
            with self._lock:
                block = self._pending.popleft() if self._pending else silence
            if fd is not None:
                try:
                    os.write(fd, block)
                except BlockingIOError:
                    pass  # nobody is recording: the audio goes nowhere, as in a room
                except OSError:  # the source was unplugged
                    os.close(fd)
                    fd = None
            t_next += self.BLOCK / MIC_RATE
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5:
                t_next = time.monotonic()
        if fd is not None:
            os.close(fd)

    def halt(self) -> None:
        """Stop feeding."""
        self._halt.set()
        self.join(timeout=2)


# --- the virtual sound card ----------------------------------------------------------------------

@dataclass
class VirtualAudio:
    """The running virtual sound card."""

    dir: Path
    env: dict[str, str]
    feeder: MicFeeder

    def _run(self, action: str, which: str) -> None:
        subprocess.run(["bash", str(SCRIPT), action, str(self.dir), which], check=True, timeout=30,
                       capture_output=True)

    def unplug_mic(self) -> None:
        """Pull the microphone's cable."""
        self._run("unplug", "mic")

    def replug_mic(self) -> None:
        """Plug the microphone back in."""
        self._run("replug", "mic")

    def unplug_speaker(self) -> None:
        """Pull the speaker's cable."""
        self._run("unplug", "speaker")

    def replug_speaker(self) -> None:
        """Plug the speaker back in."""
        self._run("replug", "speaker")

    def record_speaker(self) -> SpeakerRecorder:
        """Start recording what the virtual speaker plays (16 kHz mono)."""
        return SpeakerRecorder(self.env["VIRTUAL_SPEAKER_SERVER"])


class SpeakerRecorder:
    """parecord on the speaker's monitor, collecting 16 kHz mono s16le until ``stop()``."""

    def __init__(self, server: str) -> None:
        self._proc = subprocess.Popen(
            ["parecord", f"--server={server}", "--device=hatspeaker.monitor", "--raw",
             "--format=s16le", "--rate=16000", "--channels=1", "--latency-msec=10"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._data = bytearray()
        self._first: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 4096):
            if self._first is None:
                self._first = time.monotonic()
            self._data += chunk

    def wait_started(self, timeout: float = 5.0) -> None:
        """Block until the first audio arrived (the stream is running)."""
        end = time.monotonic() + timeout
        while self._first is None and time.monotonic() < end:
            time.sleep(0.01)
        assert self._first is not None, "parecord delivered nothing"

    def stop(self) -> np.ndarray:
        """Stop recording; return the samples."""
        self._proc.terminate()
        self._proc.wait(timeout=5)
        self._reader.join(timeout=5)
        return np.frombuffer(bytes(self._data[: len(self._data) // 2 * 2]), dtype="<i2")


class _Card:
    """The one virtual sound card of the test process, shared by every module that uses it."""

    running: VirtualAudio | None = None
    users = 0
    saved_env: dict[str, str | None] = {}


def _start(d: Path) -> VirtualAudio:
    out = subprocess.run(["bash", str(SCRIPT), "start", str(d)], capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        pytest.fail(f"virtual sound card did not start: {out.stderr.strip()}")
    pairs = (line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    env = {k.strip(): v.strip().strip("'") for k, v in pairs}
    _Card.saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    if "sounddevice" in sys.modules:  # PortAudio enumerated devices before: make it look again
        rescan_devices()
    feeder = MicFeeder(Path(env["VIRTUAL_MIC_FIFO"]))
    feeder.start()
    return VirtualAudio(d, env, feeder)


def _stop(card: VirtualAudio) -> None:
    card.feeder.halt()
    subprocess.run(["bash", str(SCRIPT), "stop", str(card.dir)], capture_output=True, timeout=30)
    for k, v in _Card.saved_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def virtual_audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualAudio]:
    """The virtual sound card, started once per test session (however many modules import this
    fixture), with PortAudio pointed at it; stopped after the last user."""
    if _Card.running is None:
        _Card.running = _start(tmp_path_factory.mktemp("vaudio"))
    _Card.users += 1
    try:
        yield _Card.running
    finally:
        _Card.users -= 1
        if _Card.users == 0:
            _stop(_Card.running)
            _Card.running = None
