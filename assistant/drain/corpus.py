"""The drain-test prompt corpus: bundled questions or the user's text file or WAVs, spoken once into a cache."""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ConfigError
from assistant.messages import AudioClip
from assistant.speech.asr import Recording
from assistant.speech.pipeline import chunk_pcm
from assistant.speech.tts import Synthesizer
from assistant.speech.wav import convert, read_wav, write_wav

_LOG = logging.getLogger(__name__)

BUNDLED = "prompts.txt"
"""The bundled corpus in ``assistant/data``."""
CACHE_DIR = "prompt-cache"
"""Directory under the state directory holding the spoken prompts."""


@dataclass(frozen=True)
class Prompt:
    """One question of the corpus, as audio, with what it says when known."""

    wav: Path
    """The spoken question (any common WAV format)."""
    text: str | None
    """What the audio says (the reference transcript); None when the user gave no transcript."""


@dataclass(frozen=True)
class Corpus:
    """The questions of a run, asked in order and then again from the start."""

    prompts: tuple[Prompt, ...]
    source: str
    """Where the questions came from: ``bundled``, a text file or a directory of WAVs."""
    fingerprint: str
    """SHA-256 over the questions (texts, voice, WAV contents): a resumed run must see the same corpus."""

    def __len__(self) -> int:
        return len(self.prompts)

    def prompt_for(self, seq: int) -> Prompt:
        """The question asked at turn ``seq`` (0-based): the corpus in order, looping."""
        return self.prompts[seq % len(self.prompts)]

    def texts(self) -> list[str | None]:
        """The reference transcripts in order (None where unknown)."""
        return [p.text for p in self.prompts]


def bundled_prompts() -> Path:
    """Path of the bundled question list."""
    return Path(str(importlib.resources.files("assistant") / "data" / BUNDLED))


def read_questions(path: Path) -> list[str]:
    """Questions of a text file: one a line; blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"prompts file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read prompts file {path}: {exc}") from exc
    questions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not questions:
        raise ConfigError(f"prompts file {path} holds no questions (one a line; # starts a comment)")
    return questions


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8") if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


def cache_path(cache_dir: Path, text: str, voice_key: str) -> Path:
    """Where the spoken form of ``text`` in voice ``voice_key`` is cached."""
    return cache_dir / f"{_digest(voice_key, text)[:24]}.wav"


def speak_into_cache(
    questions: list[str],
    cache_dir: Path,
    voice_key: str,
    open_synthesizer: Callable[[], Synthesizer],
) -> list[Path]:
    """The cached WAV of every question, synthesizing only the missing ones (the voice is loaded only then)."""
    paths = [cache_path(cache_dir, q, voice_key) for q in questions]
    missing = [(q, p) for q, p in zip(questions, paths) if not p.is_file()]
    if not missing:
        return paths
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the prompt cache {cache_dir}: {exc}") from exc
    synth = open_synthesizer()
    try:
        for question, path in missing:
            clips = list(synth.synthesize(question))
            if not clips:
                raise ConfigError(f"the voice produced no audio for the question {question!r}")
            first = clips[0]
            pcm = b"".join(convert(c, first.rate, first.channels).pcm for c in clips)
            write_wav(path, AudioClip(pcm=pcm, rate=first.rate, channels=first.channels))
    finally:
        synth.close()
    _LOG.info("spoke %d question(s) into %s", len(missing), cache_dir)
    return paths


def _wav_dir(directory: Path) -> Corpus:
    wavs = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not wavs:
        raise ConfigError(f"prompts directory {directory} holds no .wav files")
    prompts: list[Prompt] = []
    parts: list[str | bytes] = []
    for wav in wavs:
        read_wav(wav)  # a bad file fails now, naming itself, not in the middle of the run
        side = wav.with_suffix(".txt")
        text = None
        if side.is_file():
            try:
                text = side.read_text(encoding="utf-8").strip() or None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read transcript {side}: {exc}") from exc
        prompts.append(Prompt(wav=wav, text=text))
        parts += [wav.name, hashlib.sha256(wav.read_bytes()).hexdigest(), text or ""]
    return Corpus(tuple(prompts), str(directory), _digest(*parts))


def load_corpus(
    spec: Path | None,
    *,
    cache_dir: Path,
    voice_key: str,
    open_synthesizer: Callable[[], Synthesizer],
) -> Corpus:
    """The corpus ``spec`` names: None for the bundled questions, a text file, a WAV file or a directory of WAVs.

    Text questions are spoken by the voice once and cached by text and ``voice_key`` (a hash of the
    voice file and its settings). In a directory, ``question.wav`` may have its transcript beside it
    in ``question.txt``.
    """
    if spec is not None and spec.is_dir():
        return _wav_dir(spec)
    if spec is not None and spec.suffix.lower() == ".wav":
        if not spec.is_file():
            raise ConfigError(f"prompts file {spec} does not exist")
        read_wav(spec)
        return Corpus((Prompt(wav=spec, text=None),), str(spec), _digest(spec.name, spec.read_bytes()))
    path = spec if spec is not None else bundled_prompts()
    questions = read_questions(path)
    wavs = speak_into_cache(questions, cache_dir, voice_key, open_synthesizer)
    source = "bundled" if spec is None else str(spec)
    return Corpus(tuple(Prompt(w, q) for w, q in zip(wavs, questions)), source, _digest(voice_key, *questions))


class AudioFeed:
    """The audio chunks of each prompt at the recogniser's rate, converted once and kept in memory."""

    def __init__(self, corpus: Corpus, *, rate: int, chunk_s: float) -> None:
        self.corpus = corpus
        self.rate = rate
        self.chunk_s = chunk_s
        self._chunks: dict[int, Recording] = {}

    def chunks(self, seq: int) -> Recording:
        """Mono s16le chunks of the question asked at turn ``seq`` (a recording: recognised whole)."""
        index = seq % len(self.corpus)
        if index not in self._chunks:
            clip = convert(read_wav(self.corpus.prompts[index].wav), self.rate, 1)
            self._chunks[index] = Recording(chunk_pcm(clip, self.chunk_s))
        return self._chunks[index]
