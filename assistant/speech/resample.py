"""Band-limited sample-rate conversion through libsoxr (python-soxr): whole signals and streams."""

from __future__ import annotations

import logging

import numpy as np
import soxr

_LOG = logging.getLogger(__name__)

QUALITY = "HQ"
"""libsoxr's high quality: 20-bit precision, passband flat to 0.91 of Nyquist, linear phase."""


def _check(rate_in: int, rate_out: int) -> None:
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} and {rate_out}")


def _to_int16(y: np.ndarray) -> np.ndarray:
    """Round and clip float samples to int16."""
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def _length(n_in: int, rate_in: int, rate_out: int) -> int:
    """Output samples of ``n_in`` input samples: ``ceil(n_in * out / in)``."""
    return -(-n_in * rate_out // rate_in)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut or zero-padded to ``n`` samples (libsoxr rounds its lengths its own way)."""
    return y[:n] if len(y) >= n else np.concatenate([y, np.zeros(n - len(y), dtype=y.dtype)])


def resample_array(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a whole 1-D int16 (or float) signal; returns int16 of ``ceil(len * out / in)``."""
    _check(rate_in, rate_out)
    a = np.asarray(x, dtype=np.float32)
    if rate_in == rate_out:
        return _to_int16(a)
    return _to_int16(_fit(soxr.resample(a, rate_in, rate_out, quality=QUALITY), _length(len(a), rate_in, rate_out)))


class StreamResampler:
    """Resamples a signal that arrives in pieces, with no clicks at the piece boundaries.

    Feed int16 blocks with :meth:`feed`; each call returns the output samples the converter has
    ready (it holds back a filter's length); :meth:`flush` returns the rest once the input has
    ended, ``ceil(total * out / in)`` samples in all, the same as ``resample_array`` of the whole.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        """Prepare a converter from ``rate_in`` to ``rate_out`` (Hz)."""
        _check(rate_in, rate_out)
        self.rate_in = rate_in
        self.rate_out = rate_out
        self._reset()

    def _reset(self) -> None:
        self._rs = (soxr.ResampleStream(self.rate_in, self.rate_out, 1, dtype="float32", quality=QUALITY)
                    if self.rate_in != self.rate_out else None)
        self._consumed = 0
        self._given = 0

    def reset(self) -> None:
        """Forget all buffered input (after a gap in the stream)."""
        self._reset()

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Add input samples; return the int16 output samples that are ready."""
        a = np.asarray(block, dtype=np.float32)
        if self._rs is None:
            return _to_int16(a)
        self._consumed += len(a)
        y = self._rs.resample_chunk(a)
        self._given += len(y)
        return _to_int16(y)

    def flush(self) -> np.ndarray:
        """The input has ended: return the remaining output."""
        if self._rs is None:
            return np.zeros(0, dtype=np.int16)
        y = self._rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        n = _length(self._consumed, self.rate_in, self.rate_out) - self._given
        out = _to_int16(_fit(y, max(0, n)))
        self._reset()
        return out
