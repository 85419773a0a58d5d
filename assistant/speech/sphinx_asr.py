"""The English fallback recogniser: pocketsphinx 5 with the US English model its wheel ships."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from assistant.errors import ConfigError, ModelError, ModelNotFound
from assistant.messages import Transcript, Word

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
    """

    engine: str
    """Always ``pocketsphinx (fallback)``."""
    rate: int
    """Sample rate the sessions expect (Hz)."""
    load_s: float
    """Time the model took to load (s)."""

    def __init__(self, *, rate: int = 16000) -> None:
        """Load the bundled en-US acoustic model, language model and dictionary."""
        if rate < 8000:
            raise ConfigError(f"asr.rate must be at least 8000 Hz for pocketsphinx, got {rate}")
        try:
            import pocketsphinx
        except ImportError as exc:
            raise ModelNotFound("the pocketsphinx package is not installed; run: pip install pocketsphinx") from exc
        started = time.monotonic()
        try:
            self._decoder: Any = pocketsphinx.Decoder(samprate=rate, loglevel="ERROR")
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"pocketsphinx cannot load its bundled en-US model: {exc}; "
                             "reinstall it with: pip install --force-reinstall pocketsphinx") from exc
        self.engine = ENGINE
        self.rate = rate
        self._frate = int(self._decoder.config["frate"])
        self._active: SphinxSession | None = None
        self.load_s = time.monotonic() - started
        _LOG.info("pocketsphinx en-US model loaded in %.2f s", self.load_s)

    def session(self) -> SphinxSession:
        """Start recognising a new utterance (an unfinished earlier one is abandoned)."""
        if self._decoder is None:
            raise ModelError("the pocketsphinx decoder was closed")
        if self._active is not None and not self._active.finished:
            _LOG.debug("abandoning an unfinished pocketsphinx utterance")
            self._active.abandon()
        # Live cepstral mean normalisation carries over from one utterance to the next, so the
        # recogniser adapts to the device's microphone and room (measured on recordings of people:
        # 10 word errors in 61 words with carry-over, 23 when each utterance starts afresh).
        self._active = SphinxSession(self._decoder, self._frate)
        return self._active

    def close(self) -> None:
        """Free the decoder."""
        self._decoder = None
        self._active = None


class SphinxSession:
    """One utterance on the shared decoder: partial hypotheses while feeding, words with times at the end."""

    def __init__(self, decoder: Any, frate: int) -> None:
        """Start an utterance on ``decoder``, whose features run at ``frate`` frames per second."""
        self._decoder: Any = decoder
        self._frate = frate
        self._odd = b""
        self._last = ""
        self.finished = False
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
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        words: list[Word] = []
        for seg in self._decoder.seg() if hyp is not None else ():
            word = clean_word(seg.word)
            if word is not None:
                words.append(Word(word=word, start_s=seg.start_frame / self._frate,
                                  end_s=(seg.end_frame + 1) / self._frate, confidence=float(seg.prob)))
        text = " ".join(w.word for w in words) if words else (_words_only(hyp.hypstr) if hyp else "")
        return Transcript(text=text, is_final=True, engine=ENGINE, words=tuple(words))

    def abandon(self) -> None:
        """Stop the utterance without a result."""
        if not self.finished:
            self.finished = True
            self._decoder.end_utt()


def _words_only(hypstr: str) -> str:
    return " ".join(w for w in (clean_word(t) for t in hypstr.split()) if w)
