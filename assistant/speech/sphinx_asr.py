"""The English fallback recogniser: pocketsphinx 5 with the US English model its wheel ships."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError, ModelError, ModelNotFound
from assistant.messages import Transcript, Word
from assistant.speech.cmn_state import CMN_PRIOR, MIN_FRAMES, CmnStore, format_mean, implausible, parse_mean

_LOG = logging.getLogger(__name__)

ENGINE = "pocketsphinx (fallback)"
FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[BREATH]", "[COUGH]", "[SMACK]", "[UM]", "[UH]"})
"""Segment labels that are not words: sentence marks, silence and noise fillers."""
_ALTERNATE = re.compile(r"\(\d+\)$")
"""Suffix marking an alternate pronunciation in the dictionary, e.g. ``capital(2)``."""


def clean_word(label: str) -> str | None:
    """A segment label as a word (``capital(2)`` -> ``capital``), or None for a filler."""
    if label in FILLERS or (label.startswith("[") and label.endswith("]")) or label.startswith("++"):
        return None
    return _ALTERNATE.sub("", label) or None


class SphinxTranscriber:
    """Open-vocabulary US English recognition that works with nothing but the pocketsphinx wheel.

    Less accurate than Vosk; used when no Vosk model is installed, and labelled as the fallback in
    every transcript it gives. One decoder: sessions run one after another, not at the same time.

    A live stream is normalised with pocketsphinx's running cepstral mean, which carries over from
    one utterance to the next and adapts to the microphone and room. It starts from the mean saved
    for the input device (``state_dir``/asr, see ``cmn_state``) or, with none, from ``CMN_PRIOR``;
    after every good utterance the mean is saved again. A recording (``session(whole=True)``) is
    normalised over the whole utterance instead, and leaves the live mean as it was.
    """

    engine: str
    """Always ``pocketsphinx (fallback)``."""
    rate: int
    """Sample rate the sessions expect (Hz)."""
    load_s: float
    """Time the model took to load (s)."""
    cmn_start: str
    """Where the live normalisation started: ``saved`` (this device's state) or ``prior``."""

    def __init__(self, *, rate: int = 16000, state_dir: Path | None = None, device: str = "default") -> None:
        """Load the bundled en-US acoustic model, language model and dictionary.

        ``state_dir``: keep the normalisation state of input ``device`` there (None: start from the
        prior every time and save nothing).
        """
        try:
            import pocketsphinx
        except ImportError as exc:
            raise ModelNotFound("the pocketsphinx package is not installed; run: pip install pocketsphinx") from exc
        lowest = min_rate()
        if rate < lowest:
            raise ConfigError(f"asr.rate {rate} Hz is too low for the pocketsphinx fallback: its en-US model hears up "
                              f"to {lowest // 2} Hz, so it needs at least {lowest} Hz (16000 is its own rate)")
        started = time.monotonic()
        self.store = None if state_dir is None else CmnStore(state_dir, device=device, rate=rate, model=model_id())
        saved = self.store.load() if self.store is not None else None
        self.cmn_start = "prior" if saved is None else "saved"
        try:
            self._decoder: Any = pocketsphinx.Decoder(samprate=rate, loglevel="ERROR",
                                                      cmninit=format_mean(saved or CMN_PRIOR))
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"pocketsphinx cannot load its bundled en-US model: {exc}; "
                             "reinstall it with: pip install --force-reinstall pocketsphinx") from exc
        self.engine = ENGINE
        self.rate = rate
        self._frate = int(self._decoder.config["frate"])
        self._active: SphinxSession | None = None
        self.load_s = time.monotonic() - started
        _LOG.info("pocketsphinx en-US model loaded in %.2f s (normalisation from the %s)", self.load_s,
                  "saved state" if saved else "prior")

    def session(self, *, whole: bool = False) -> SphinxSession:
        """Start recognising a new utterance (an unfinished earlier one is abandoned)."""
        if self._decoder is None:
            raise ModelError("the pocketsphinx decoder was closed")
        if self._active is not None and not self._active.finished:
            _LOG.debug("abandoning an unfinished pocketsphinx utterance")
            self._active.abandon()
        self._active = SphinxSession(self._decoder, self._frate, whole=whole, on_live_end=self._adapted)
        return self._active

    def live_mean(self) -> tuple[float, ...]:
        """The running cepstral mean the next streamed utterance starts from."""
        return parse_mean(self._decoder.get_cmn(False))

    def _adapted(self, frames: int, text: str) -> None:
        """After a streamed utterance: save the mean it left when the utterance was good speech."""
        if self.store is None or frames < MIN_FRAMES or not text:
            return
        mean = self.live_mean()
        why = implausible(mean)
        if why is not None:
            _LOG.info("the normalisation after this utterance is not saved: %s", why)
            return
        self.store.save(mean)

    def close(self) -> None:
        """Free the decoder."""
        self._decoder = None
        self._active = None


def min_rate() -> int:
    """The lowest sample rate the bundled en-US model can use: twice the top of its filter bank
    (``-upperf`` in its ``feat.params``, 6800 Hz), below which the decoder refuses to start."""
    import pocketsphinx

    upper = 6800
    params = Path(pocketsphinx.get_model_path()) / "en-us" / "en-us" / "feat.params"
    try:
        for line in params.read_text(encoding="utf-8").splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "-upperf":
                upper = int(float(value))
    except (OSError, ValueError) as exc:
        _LOG.debug("cannot read %s (%s); assuming -upperf %d", params, exc, upper)
    return 2 * upper


def model_id() -> str:
    """Names the acoustic model a saved normalisation belongs to: engine, version and model directory."""
    import importlib.metadata

    import pocketsphinx

    try:
        version = importlib.metadata.version("pocketsphinx")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"pocketsphinx {version} {Path(pocketsphinx.get_model_path()).name}/en-us"


class SphinxSession:
    """One utterance on the shared decoder: partial hypotheses while feeding, words with times at the end.

    ``whole``: the audio is a recording; it is collected and decoded at ``finish`` with the
    normalisation computed over the whole utterance (no partial results).
    """

    def __init__(self, decoder: Any, frate: int, *, whole: bool = False,
                 on_live_end: Any = None) -> None:
        """Start an utterance on ``decoder``, whose features run at ``frate`` frames per second."""
        self._decoder: Any = decoder
        self._frate = frate
        self._odd = b""
        self._last = ""
        self._whole = whole
        self._buffer: list[bytes] = []
        self._on_live_end = on_live_end
        self._silent = False
        self.finished = False
        if not whole:
            decoder.start_utt()

    def feed(self, pcm: bytes) -> Transcript | None:
        """Accept s16le mono PCM; return the partial transcript when it changed, else None."""
        if self.finished:
            raise RuntimeError("feed() after finish(): start a new session")
        data = self._odd + pcm
        self._odd = data[-1:] if len(data) % 2 else b""
        data = data[: len(data) - len(self._odd)]
        if not data:
            return None
        if self._whole:
            self._buffer.append(data)
            return None
        self._decoder.process_raw(data, False, False)
        hyp = self._decoder.hyp()
        text = _words_only(hyp.hypstr) if hyp is not None else ""
        if text == self._last:
            return None
        self._last = text
        return Transcript(text=text, is_final=False, engine=ENGINE)

    def finish(self) -> Transcript:
        """End of audio: the final transcript, with word times from the segmentation."""
        if self.finished:
            raise RuntimeError("finish() called twice: start a new session")
        self.finished = True
        if self._whole:
            self._decode_whole()
            if self._silent:
                return Transcript(text="", is_final=True, engine=ENGINE)
        else:
            self._decoder.end_utt()
        hyp = self._decoder.hyp()
        words: list[Word] = []
        for seg in self._decoder.seg() if hyp is not None else ():
            word = clean_word(seg.word)
            if word is not None:
                words.append(Word(word=word, start_s=seg.start_frame / self._frate,
                                  end_s=(seg.end_frame + 1) / self._frate, confidence=float(seg.prob)))
        text = " ".join(w.word for w in words) if words else (_words_only(hyp.hypstr) if hyp else "")
        if not self._whole and self._on_live_end is not None:
            self._on_live_end(int(self._decoder.n_frames()), text)
        return Transcript(text=text, is_final=True, engine=ENGINE, words=tuple(words))

    def _decode_whole(self) -> None:
        """Decode the collected recording with whole-utterance normalisation; keep the live mean as it was."""
        pcm = b"".join(self._buffer)
        if _peak(pcm) < SILENT_PEAK:
            # nothing but (near) digital silence: whole-utterance normalisation has no speech frames to
            # average and would make words out of nothing, so nothing is decoded
            self._buffer.clear()
            self._silent = True
            return
        live = self._decoder.get_cmn(False)
        # Once a decoder has streamed, its features stay in live normalisation mode; reinit_feat()
        # brings back the configured whole-utterance ("batch") mode for this one utterance.
        self._decoder.reinit_feat()
        try:
            self._decoder.start_utt()
            if pcm:
                self._decoder.process_raw(pcm, False, True)
            self._decoder.end_utt()
        finally:
            self._buffer.clear()
            self._decoder.set_cmn(live)

    def abandon(self) -> None:
        """Stop the utterance without a result."""
        if not self.finished:
            self.finished = True
            if self._whole:
                self._buffer.clear()
            else:
                self._decoder.end_utt()


SILENT_PEAK = 32
"""A recording whose loudest sample stays below this (of 32767, about -60 dBFS) holds no speech."""


def _peak(pcm: bytes) -> int:
    import numpy as np

    if len(pcm) < 2:
        return 0
    x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], "<i2").astype(np.int32)
    return int(np.max(np.abs(x)))


def _words_only(hypstr: str) -> str:
    return " ".join(w for w in (clean_word(t) for t in hypstr.split()) if w)
