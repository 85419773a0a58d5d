"""Band-limited sample-rate conversion: a Kaiser-windowed sinc polyphase resampler in numpy."""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np

_LOG = logging.getLogger(__name__)

STOPBAND_DB = 80.0
"""Attenuation of everything that would alias into (or image out of) the passband (dB)."""
TRANSITION = 0.1
"""Half-width of the transition band around the lower Nyquist frequency, as a fraction of it:
the passband is flat to 0.9 x Nyquist and the stopband starts at 1.1 x Nyquist, so aliases of
the transition band land above the passband and never inside it."""
MAX_EXACT_PHASES = 2048
"""Rate ratios needing more filter phases than this use a table this fine, with the time of
each output rounded to the nearest phase (error at most 1/4096 of an input sample)."""
_GATHER_BELOW = 200_000
"""Below this many multiply-adds a block is computed in one gather instead of per phase."""


@dataclass(frozen=True)
class _Design:
    """A polyphase filter table for one rate pair."""

    up: int
    """Interpolation factor L of the reduced ratio out/in = L/M."""
    down: int
    """Decimation factor M."""
    half: int
    """Filter half-length in input samples; each output reads ``2 * half + 1`` inputs."""
    table: np.ndarray
    """``(phases, 2 * half + 1)`` float32 coefficients; row j is for fractional time j/phases."""

    @property
    def phases(self) -> int:
        """Number of fractional-time rows in the table."""
        return int(self.table.shape[0])


@functools.lru_cache(maxsize=16)
def _design(rate_in: int, rate_out: int) -> _Design:
    """Build (once per rate pair) the Kaiser-windowed sinc table for ``rate_in`` -> ``rate_out``."""
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    nyquist = min(rate_in, rate_out) / 2.0
    cutoff = nyquist / rate_in  # cycles per input sample
    width = 2.0 * math.pi * (2.0 * TRANSITION * nyquist) / rate_in  # rad per input sample
    taps = (STOPBAND_DB - 8.0) / (2.285 * width)
    half = max(2, math.ceil(taps / 2.0))
    beta = 0.1102 * (STOPBAND_DB - 8.7)
    phases = up if up <= MAX_EXACT_PHASES else MAX_EXACT_PHASES
    frac = np.arange(phases, dtype=np.float64)[:, None] / phases
    t = frac + half - np.arange(2 * half + 1, dtype=np.float64)[None, :]
    inside = np.clip(1.0 - (t / half) ** 2, 0.0, None)
    window = np.i0(beta * np.sqrt(inside)) / np.i0(beta)
    window[np.abs(t) > half] = 0.0
    h = 2.0 * cutoff * np.sinc(2.0 * cutoff * t) * window
    h /= h.sum(axis=1, keepdims=True)
    _LOG.debug("resampler %d->%d Hz: L=%d M=%d, %d taps, %d phases", rate_in, rate_out, up, down,
               2 * half + 1, phases)
    return _Design(up=up, down=down, half=half, table=h.astype(np.float32))


def _compute(d: _Design, buf: np.ndarray, base: int, n_a: int, n_b: int) -> np.ndarray:
    """Outputs ``n_a..n_b-1``; ``buf[0]`` is input sample ``base`` (negative: leading zeros)."""
    count = n_b - n_a
    taps = d.table.shape[1]
    out = np.empty(count, dtype=np.float32)
    if count <= 0:
        return out
    exact = d.phases == d.up
    if not exact or count * taps < _GATHER_BELOW:
        n = np.arange(n_a, n_b, dtype=np.int64)
        pos = n * d.down
        q = pos // d.up
        if exact:
            phase = pos % d.up
        else:
            phase = np.rint((pos % d.up) * (d.phases / d.up)).astype(np.int64)
            q = q + phase // d.phases
            phase %= d.phases
        start = q - d.half - base
        ar = np.arange(taps, dtype=np.int64)
        for s in range(0, count, 4096):
            rows = buf[start[s : s + 4096, None] + ar]
            out[s : s + 4096] = np.einsum("ij,ij->i", rows, d.table[phase[s : s + 4096]])
        return out
    item = buf.strides[0]
    for p in range(d.up):
        # outputs with phase p: n * M = q * L + p, i.e. n = n0 (mod L), and q steps by M
        first = _first_with_phase(d, p, n_a)
        if first >= n_b:
            continue
        rows = (n_b - 1 - first) // d.up + 1
        offset = (first * d.down) // d.up - d.half - base
        view = np.lib.stride_tricks.as_strided(
            buf[offset:], shape=(rows, taps), strides=(d.down * item, item), writeable=False
        )
        out[first - n_a :: d.up] = view @ d.table[p]
    return out


def _first_with_phase(d: _Design, phase: int, n_a: int) -> int:
    """Smallest output index ``n >= n_a`` with ``n * M % L == phase``."""
    if d.up == 1:
        return n_a
    n0 = (phase * pow(d.down, -1, d.up)) % d.up
    return n_a + (n0 - n_a) % d.up


def _to_int16(y: np.ndarray) -> np.ndarray:
    """Round and clip float samples to int16."""
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def resample_array(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a whole 1-D int16 (or float) signal; returns int16 of ``ceil(len * out / in)``."""
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} and {rate_out}")
    if rate_in == rate_out:
        return _to_int16(np.asarray(x, dtype=np.float32))
    d = _design(rate_in, rate_out)
    n_out = -(-len(x) * d.up // d.down)
    buf = np.zeros(len(x) + 2 * d.half + 2, dtype=np.float32)
    buf[d.half : d.half + len(x)] = x
    return _to_int16(_compute(d, buf, -d.half, 0, n_out))


class StreamResampler:
    """Resamples a signal that arrives in pieces, with no clicks at the piece boundaries.

    Feed int16 blocks with :meth:`feed`; each call returns every output sample that the input so
    far determines; :meth:`flush` returns the rest once the input has ended.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        """Prepare a converter from ``rate_in`` to ``rate_out`` (Hz)."""
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} and {rate_out}")
        self.rate_in = rate_in
        self.rate_out = rate_out
        self._d = _design(rate_in, rate_out) if rate_in != rate_out else None
        self._reset()

    def _reset(self) -> None:
        half = self._d.half if self._d else 0
        self._buf = np.zeros(half, dtype=np.float32)
        self._base = -half  # input index of _buf[0]
        self._consumed = 0  # input samples fed so far
        self._next = 0  # next output index

    def reset(self) -> None:
        """Forget all buffered input (after a gap in the stream)."""
        self._reset()

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Add input samples; return the int16 output samples that are now complete."""
        if self._d is None:
            return _to_int16(np.asarray(block, dtype=np.float32))
        self._buf = np.concatenate([self._buf, np.asarray(block, dtype=np.float32)])
        self._consumed += len(block)
        return self._produce(self._base + len(self._buf))

    def flush(self) -> np.ndarray:
        """The input has ended: return the remaining output (``ceil(total * out / in)`` in all)."""
        if self._d is None:
            return np.zeros(0, dtype=np.int16)
        self._buf = np.concatenate([self._buf, np.zeros(self._d.half + 2, dtype=np.float32)])
        end = -(-self._consumed * self._d.up // self._d.down)
        out = self._produce(self._base + len(self._buf), limit=end)
        self._reset()
        return out

    def _produce(self, avail_end: int, limit: int | None = None) -> np.ndarray:
        d = self._d
        assert d is not None
        # output n needs inputs up to floor(n*M/L) + half + 1 (the +1 covers phase rounding)
        last = ((avail_end - d.half - 2) * d.up) // d.down
        n_b = max(self._next, last + 1)
        if limit is not None:
            n_b = min(max(n_b, self._next), limit)
        y = _compute(d, self._buf, self._base, self._next, n_b)
        self._next = n_b
        keep_from = (n_b * d.down) // d.up - d.half - 1
        drop = max(0, keep_from - self._base)
        if drop:
            self._buf = self._buf[drop:]
            self._base += drop
        return _to_int16(y)
