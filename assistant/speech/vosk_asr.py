"""Vosk (Kaldi) speech recognition: a model loaded from a directory, streaming sessions."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError, ModelError, ModelNotFound
from assistant.messages import Transcript, Word

_LOG = logging.getLogger(__name__)

ENGINE = "vosk"
INSTALL_HINT = "install one with `assistant models install vosk-en`"
UNKNOWN = "[unk]"
"""Vosk's out-of-grammar word: added to a grammar when the model knows it, never shown in text."""

_FST_MAGIC = (2125659606).to_bytes(4, "little")
"""First four bytes of every OpenFst binary file."""
_MDL_HEADS = (b"\0B<TransitionModel>", b"<TransitionModel>")
"""How a Kaldi nnet3 ``final.mdl`` starts (binary, text)."""
_IVECTOR_FILES = ("final.dubm", "final.mat", "global_cmvn.stats", "online_cmvn.conf", "splice.conf")
_KALDI_PREFIX = re.compile(r"^(ERROR|WARNING|LOG|VLOG\[\d+\]) \([^)]*\) ?")


def model_problems(model_dir: Path) -> list[str]:
    """What a Vosk model directory lacks or has broken, as short phrases; empty when it looks whole.

    Checks the layout Vosk reads (``am/``, ``conf/``, ``graph/``, optional ``ivector/``), that no
    file it needs is empty, and the headers of the acoustic model and the graphs, so that a
    truncated or wrong download is reported by name before Vosk is handed the directory.
    """
    if (model_dir / "final.mdl").is_file() and not (model_dir / "am").is_dir():
        return ["the old Vosk layout (final.mdl at the top) is not supported; use a model with am/, conf/, graph/"]
    need: list[str] = ["am/final.mdl", "conf/model.conf"]
    if not (model_dir / "conf" / "fbank.conf").is_file():
        need.append("conf/mfcc.conf")
    if (model_dir / "graph" / "HCLG.fst").is_file():
        need.append("graph/HCLG.fst")
    else:
        need += ["graph/HCLr.fst", "graph/Gr.fst", "graph/disambig_tid.int"]
    if (model_dir / "ivector").is_dir():
        need += [f"ivector/{name}" for name in ("final.ie", *_IVECTOR_FILES)]
    problems: list[str] = []
    for rel in need:
        path = model_dir / rel
        if not path.is_file():
            problems.append(f"missing {rel}")
        elif path.stat().st_size == 0:
            problems.append(f"{rel} is empty")
        elif rel.endswith(".fst") and _head(path, 4) != _FST_MAGIC:
            problems.append(f"{rel} is not an OpenFst graph")
        elif rel == "am/final.mdl" and not _head(path, 20).startswith(_MDL_HEADS):
            problems.append(f"{rel} is not a Kaldi acoustic model")
    return problems


def _head(path: Path, n: int) -> bytes:
    with path.open("rb") as f:
        return f.read(n)


def check_model_dir(model_dir: Path) -> None:
    """Raise ModelNotFound if ``model_dir`` is missing, ModelError if it is not a whole Vosk model."""
    if not model_dir.exists():
        raise ModelNotFound(f"Vosk model directory {model_dir} does not exist; {INSTALL_HINT}")
    if not model_dir.is_dir():
        raise ModelError(f"Vosk model path {model_dir} is a file, not a model directory; {INSTALL_HINT}")
    problems = model_problems(model_dir)
    if problems:
        raise ModelError(f"{model_dir} is not a usable Vosk model ({'; '.join(problems)}); {INSTALL_HINT}")


@contextlib.contextmanager
def _native_stderr(captured: list[str]) -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 meanwhile; other text is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            _sort_lines(tmp.read().decode("utf-8", "replace"), captured)


def _sort_lines(text: str, captured: list[str]) -> None:
    """Keep Kaldi's lines in ``captured`` (and the debug log); write anything else back to stderr."""
    for line in text.splitlines():
        if _KALDI_PREFIX.match(line) or "VoskAPI" in line or "::" in line:
            captured.append(line)
            _LOG.debug("vosk: %s", line)
        elif line.strip():
            sys.stderr.write(line + "\n")


def _kaldi_error(captured: list[str]) -> str:
    """The first error line Kaldi printed, made short and printable."""
    lines = [ln for ln in captured if ln.startswith("ERROR")] or captured
    if not lines:
        return "no reason given"
    msg = _KALDI_PREFIX.sub("", lines[0]).strip()
    msg = "".join(ch if ch.isprintable() else "?" for ch in msg)
    return msg[:200]


class VoskTranscriber:
    """Speech recognition with a Vosk model directory (never downloaded: the path is required).

    ``grammar`` restricts recognition to a list of phrases (short commands); every word in it must
    be in the model's vocabulary, and the model needs a dynamic graph (``graph/HCLr.fst`` and
    ``graph/Gr.fst``, as the small models have). Example::

        asr = VoskTranscriber(Path("~/.local/share/assistant/models/vosk-model-small-en-us-0.15").expanduser())
        text = transcribe(asr, clip).text
    """

    engine: str
    """Always ``vosk``."""
    rate: int
    """Sample rate the sessions expect (Hz); Vosk converts it to the model's own."""
    model_dir: Path
    """The model directory."""
    load_s: float
    """Time the model took to load and start its first recogniser (s)."""

    def __init__(self, model_dir: Path, *, rate: int = 16000, grammar: list[str] | None = None) -> None:
        """Check and load the model, and start one recogniser so that a broken graph shows up now."""
        if rate <= 0:
            raise ConfigError(f"asr.rate must be a positive sample rate in Hz, got {rate}")
        model_dir = Path(model_dir).expanduser()
        check_model_dir(model_dir)
        import vosk

        vosk.SetLogLevel(-1)
        self._vosk: Any = vosk
        self.engine = ENGINE
        self.rate = rate
        self.model_dir = model_dir
        started = time.monotonic()
        captured: list[str] = []
        try:
            with _native_stderr(captured):
                self._model: Any = vosk.Model(str(model_dir))
        except Exception as exc:  # vosk raises a bare Exception when the model cannot be built
            raise ModelError(f"Vosk cannot load the model in {model_dir}: {_kaldi_error(captured)}; "
                             f"it may be corrupt: {INSTALL_HINT}") from exc
        self._grammar = self._check_grammar(grammar) if grammar else None
        self.session()  # builds a recogniser: a corrupt HCLr.fst only fails here
        self.load_s = time.monotonic() - started
        _LOG.info("Vosk model %s loaded in %.2f s%s", model_dir, self.load_s,
                  f" (grammar of {len(grammar or [])} phrases)" if self._grammar else "")

    def _check_grammar(self, grammar: list[str]) -> str:
        """The grammar as the JSON Vosk wants, after checking every word is in the vocabulary."""
        if (self.model_dir / "graph" / "HCLG.fst").is_file():
            raise ConfigError(f"asr.grammar needs a Vosk model with a dynamic graph (graph/HCLr.fst + Gr.fst); "
                              f"{self.model_dir} has a static graph/HCLG.fst")
        phrases = [" ".join(p.split()) for p in grammar if p.strip() and p.strip() != UNKNOWN]
        unknown = sorted({w for p in phrases for w in p.split() if self._model.vosk_model_find_word(w) < 0})
        if unknown:
            raise ConfigError(f"asr.grammar: {', '.join(repr(w) for w in unknown)} not in the vocabulary of "
                              f"the Vosk model in {self.model_dir}")
        if self._model.vosk_model_find_word(UNKNOWN) >= 0:
            phrases.append(UNKNOWN)
        else:
            _LOG.info("the Vosk model in %s has no %s word: speech outside the grammar is matched "
                      "to the nearest phrase", self.model_dir, UNKNOWN)
        return json.dumps(phrases, ensure_ascii=False)

    def session(self, *, whole: bool = False) -> VoskSession:
        """Start recognising a new utterance (word times count from its start).

        ``whole`` (a recording) changes nothing: every Vosk recogniser starts from the model's own
        feature statistics (``ivector/global_cmvn.stats``) and adapts within the utterance, the same
        for a file and a microphone, and Vosk's API neither exposes nor restores that state.
        """
        if self._model is None:
            raise ModelError(f"the Vosk model in {self.model_dir} was closed")
        captured: list[str] = []
        try:
            with _native_stderr(captured):
                if self._grammar is None:
                    rec = self._vosk.KaldiRecognizer(self._model, self.rate)
                else:
                    rec = self._vosk.KaldiRecognizer(self._model, self.rate, self._grammar)
        except Exception as exc:  # bare Exception from vosk when the graph cannot be read
            raise ModelError(f"Vosk cannot start recognising with the model in {self.model_dir}: "
                             f"{_kaldi_error(captured)}; it may be corrupt: {INSTALL_HINT}") from exc
        rec.SetWords(True)
        return VoskSession(rec, self.rate)

    def close(self) -> None:
        """Free the model (sessions still running keep their own reference)."""
        self._model = None


class VoskSession:
    """One utterance: Vosk may cut it into segments at pauses; the transcript joins them."""

    def __init__(self, recognizer: Any, rate: int) -> None:
        """Wrap a ``KaldiRecognizer`` that has word timings switched on."""
        self._rec: Any = recognizer
        self.rate = rate
        self._texts: list[str] = []
        self._words: list[Word] = []
        self._odd = b""
        self._last = ""

    def feed(self, pcm: bytes) -> Transcript | None:
        """Accept s16le mono PCM; return the partial transcript when it changed, else None."""
        if self._rec is None:
            raise RuntimeError("feed() after finish(): start a new session")
        data = self._odd + pcm
        self._odd = data[-1:] if len(data) % 2 else b""
        data = data[: len(data) - len(self._odd)]
        if not data:
            return None
        if self._rec.AcceptWaveform(data):
            self._take(json.loads(self._rec.Result()))
            partial = ""
        else:
            partial = json.loads(self._rec.PartialResult()).get("partial", "")
        text = " ".join([*self._texts, *_clean(partial.split())])
        if text == self._last:
            return None
        self._last = text
        return Transcript(text=text, is_final=False, engine=ENGINE, words=tuple(self._words))

    def finish(self) -> Transcript:
        """End of audio: the final transcript with every word and its timing."""
        if self._rec is None:
            raise RuntimeError("finish() called twice: start a new session")
        self._take(json.loads(self._rec.FinalResult()))
        self._rec = None
        return Transcript(text=" ".join(self._texts), is_final=True, engine=ENGINE, words=tuple(self._words))

    def _take(self, result: dict[str, Any]) -> None:
        """Keep one segment's result (``text`` and ``result`` word list), without ``[unk]``."""
        words = [
            Word(word=str(w["word"]), start_s=float(w["start"]), end_s=float(w["end"]),
                 confidence=float(w["conf"]) if "conf" in w else None)
            for w in result.get("result", [])
            if w.get("word") != UNKNOWN
        ]
        text = " ".join(_clean(str(result.get("text", "")).split()))
        if text:
            self._texts.append(text)
        self._words.extend(words)


def _clean(tokens: list[str]) -> list[str]:
    return [t for t in tokens if t != UNKNOWN]
