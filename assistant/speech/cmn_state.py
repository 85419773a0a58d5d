"""The recogniser's saved normalisation state: the cepstral mean of one microphone, kept between starts.

pocketsphinx subtracts a running cepstral mean from every frame (cepstral mean normalisation,
CMN). The mean depends on the microphone, the room and the speaking level, and a decoder that
starts from a generic estimate mishears the first utterances until it has adapted. So the mean
reached after each good utterance is written to the state directory, one file per input device
and sample rate, and the next start begins from it. With no saved state the recogniser starts
from ``CMN_PRIOR``, measured on a varied set of voices rather than taken from one.

A saved file is trusted only when it is whole, plausible and made for the same device, rate and
acoustic model; otherwise it is ignored with a warning and the prior is used.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.atomic import write_json_atomic

_LOG = logging.getLogger(__name__)

SCHEMA = 1
"""Version of the state file layout."""
DIMS = 13
"""Cepstral coefficients in the mean (pocketsphinx's en-US model: ``ceplen`` 13)."""

CMN_PRIOR: tuple[float, ...] = (50.33, 4.94, -4.04, 9.24, -1.00, 2.15, -4.19, -3.20, -5.36, 2.85, -3.09, 2.69, -0.23)
"""Starting cepstral mean when a device has no saved state.

Measured by ``tests/cmn_prior_measure.py``: the whole-utterance cepstral mean of each recording,
at three speaking levels (-35, -26 and -18 dBFS RMS) and two source rates (16 and 44.1 kHz); the
median per voice, then the median over six voices (five recordings of people from the pocketsphinx
source distribution that no accuracy test uses, and the Piper voice). pocketsphinx's own default,
``40,3,-1``, is the mean of a much quieter signal than a microphone near a speaker gives; c0
(log energy) is the coefficient that matters most.
"""
PRIOR_SOURCE = "median whole-utterance cepstral mean of six voices at three levels and two rates"

C0_RANGE = (20.0, 90.0)
"""Plausible c0 (log energy) of a speech utterance's mean; outside it the state is noise or silence."""
MAX_ABS_COEF = 60.0
"""Largest plausible magnitude of the other coefficients of a mean (speech measured here: at most 42)."""
MIN_FRAMES = 100
"""Frames (10 ms each) an utterance needs before the mean it leaves is worth saving: 1 s of audio."""


def implausible(mean: tuple[float, ...] | list[float]) -> str | None:
    """Why ``mean`` cannot be a cepstral mean of speech, or None when it can."""
    if len(mean) != DIMS:
        return f"it has {len(mean)} coefficients, not {DIMS}"
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in mean):
        return "it holds a value that is not a finite number"
    if not C0_RANGE[0] <= mean[0] <= C0_RANGE[1]:
        return f"its energy c0 = {mean[0]:.1f} is outside {C0_RANGE[0]:g}..{C0_RANGE[1]:g}"
    worst = max(abs(v) for v in mean[1:])
    if worst > MAX_ABS_COEF:
        return f"a coefficient of magnitude {worst:.1f} exceeds {MAX_ABS_COEF:g}"
    return None


def parse_mean(text: str) -> tuple[float, ...]:
    """The comma-separated mean pocketsphinx's ``get_cmn`` returns, as numbers."""
    return tuple(float(v) for v in text.split(","))


def format_mean(mean: tuple[float, ...] | list[float]) -> str:
    """The mean as pocketsphinx's ``set_cmn`` and ``cmninit`` take it."""
    return ",".join(f"{v:.3f}" for v in mean)


@dataclass(frozen=True)
class CmnState:
    """One device's normalisation state, as saved."""

    device: str
    """Input device name as configured (``mic.device``)."""
    rate: int
    """Sample rate the recogniser ran at (Hz)."""
    model: str
    """The acoustic model the mean belongs to (engine, version and model directory name)."""
    mean: tuple[float, ...]
    """Cepstral mean, ``DIMS`` coefficients."""
    utterances: int
    """Good utterances that went into it since the file was created (count)."""
    updated: float
    """When it was written (Unix time, s)."""


def _slug(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", device).strip("_")[:60] or "device"


class CmnStore:
    """The state file of one input device and rate under ``state_dir/asr``.

    Example::

        store = CmnStore(Path("~/.local/state/assistant").expanduser(), device="USB", rate=16000,
                         model="pocketsphinx 5.1.1 en-us")
        start = store.load() or CMN_PRIOR
    """

    def __init__(self, state_dir: Path, *, device: str, rate: int, model: str) -> None:
        self.device = device
        self.rate = rate
        self.model = model
        self.path = Path(state_dir).expanduser() / "asr" / f"cmn-{_slug(device)}-{rate}.json"
        self.utterances = 0

    def load(self) -> tuple[float, ...] | None:
        """The saved mean, or None (with a warning unless the file is simply missing)."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            _LOG.info("no saved normalisation state for '%s' at %d Hz; starting from the prior", self.device,
                      self.rate)
            return None
        except (OSError, UnicodeDecodeError) as exc:
            _LOG.warning("cannot read the normalisation state %s (%s); starting from the prior", self.path, exc)
            return None
        why, state = self._check(raw)
        if state is None:
            _LOG.warning("ignoring the normalisation state %s: %s; starting from the prior", self.path, why)
            return None
        self.utterances = state.utterances
        _LOG.info("starting from the normalisation state saved for '%s' at %d Hz (%d utterances)", self.device,
                  self.rate, state.utterances)
        return state.mean

    def _check(self, raw: str) -> tuple[str, CmnState | None]:
        try:
            data: Any = json.loads(raw)
        except ValueError as exc:
            return f"it is not JSON ({exc})", None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            return f"it is not a schema {SCHEMA} state file", None
        for key, kind in (("device", str), ("rate", int), ("model", str), ("mean", list), ("utterances", int),
                          ("updated", (int, float))):
            if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
                return f"'{key}' is missing or has the wrong type", None
        if data["device"] != self.device:
            return f"it was made for device '{data['device']}', not '{self.device}'", None
        if data["rate"] != self.rate:
            return f"it was made at {data['rate']} Hz, not {self.rate} Hz", None
        if data["model"] != self.model:
            return f"it was made for the model '{data['model']}', not '{self.model}'", None
        mean = data["mean"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in mean):
            return "its mean holds something that is not a number", None
        why = implausible(mean)
        if why is not None:
            return f"its mean is implausible: {why}", None
        return "", CmnState(self.device, self.rate, self.model, tuple(float(v) for v in mean), data["utterances"],
                            float(data["updated"]))

    def save(self, mean: tuple[float, ...]) -> bool:
        """Write ``mean`` atomically (temporary file, fsync, rename); False, with a warning, when it cannot."""
        why = implausible(mean)
        if why is not None:
            _LOG.warning("not saving the normalisation state for '%s': %s", self.device, why)
            return False
        self.utterances += 1
        state = {"schema": SCHEMA, "device": self.device, "rate": self.rate, "model": self.model,
                 "mean": [round(v, 4) for v in mean], "utterances": self.utterances, "updated": time.time()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, state)
        except OSError as exc:
            _LOG.warning("cannot save the normalisation state %s (%s); the next start begins from the last "
                         "saved state or the prior", self.path, exc)
            return False
        return True
