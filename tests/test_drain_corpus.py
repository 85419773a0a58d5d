"""The prompt corpus: the bundled questions, spoken once by Piper into a cache; the user's text file or WAVs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.commands.turn import demo_question
from assistant.drain.corpus import AudioFeed, bundled_prompts, cache_path, load_corpus, read_questions
from assistant.errors import AudioFormatError, ConfigError
from assistant.messages import AudioClip
from assistant.speech.asr import transcribe
from assistant.speech.sphinx_asr import SphinxTranscriber
from assistant.speech.tts import PiperSynthesizer
from assistant.speech.wav import convert, read_wav, write_wav


class CountingVoice:
    """The shared real Piper voice, counting what it is asked to say (closing it is left to the fixture)."""

    def __init__(self, voice: PiperSynthesizer) -> None:
        self.voice = voice
        self.voice_name = voice.voice_name
        self.rate = voice.rate
        self.said: list[str] = []
        self.opened = 0

    def open(self) -> CountingVoice:
        self.opened += 1
        return self

    def synthesize(self, text: str) -> Iterator[AudioClip]:
        self.said.append(text)
        return self.voice.synthesize(text)

    def close(self) -> None:
        pass


def test_bundled_corpus_has_fifty_varied_questions() -> None:
    questions = read_questions(bundled_prompts())
    assert len(questions) >= 50 and len(set(questions)) == len(questions)
    assert all(q.endswith(("?", ".")) and 3 <= len(q.split()) <= 14 for q in questions)
    openings = {q.split()[0] for q in questions}
    assert len(openings) >= 6  # what, how, why, who, can, give...


def test_text_questions_are_spoken_once_into_the_cache_and_heard_by_the_asr(
        tmp_path: Path, synthesizer: PiperSynthesizer) -> None:
    prompts = tmp_path / "q.txt"
    prompts.write_text("# two questions\nWhat is the capital of France?\n\nWhy is the sky blue?\n")
    voice = CountingVoice(synthesizer)
    cache = tmp_path / "cache"
    corpus = load_corpus(prompts, cache_dir=cache, voice_key="joe|1.0", open_synthesizer=voice.open)
    assert voice.said == ["What is the capital of France?", "Why is the sky blue?"] and voice.opened == 1
    assert corpus.texts() == voice.said and corpus.source == str(prompts)
    assert corpus.prompts[0].wav == cache_path(cache, voice.said[0], "joe|1.0")
    again = load_corpus(prompts, cache_dir=cache, voice_key="joe|1.0", open_synthesizer=voice.open)
    assert voice.opened == 1 and again.fingerprint == corpus.fingerprint  # cached: the voice is not even loaded
    other = load_corpus(prompts, cache_dir=cache, voice_key="amy|1.0", open_synthesizer=voice.open)
    assert voice.opened == 2 and other.fingerprint != corpus.fingerprint  # another voice is another corpus
    assert corpus.prompt_for(0) == corpus.prompt_for(2) != corpus.prompt_for(1)

    feed = AudioFeed(corpus, rate=16000, chunk_s=0.05)
    chunks = feed.chunks(0)
    assert all(len(c) == 1600 for c in chunks[:-1]) and feed.chunks(2) is chunks
    asr = SphinxTranscriber(rate=16000)
    try:
        heard = transcribe(asr, AudioClip(b"".join(chunks), 16000))
    finally:
        asr.close()
    assert heard.text == "what is the capital of france"


def test_a_directory_of_wavs_with_transcripts(tmp_path: Path) -> None:
    shutil.copy(demo_question(), tmp_path / "a.wav")
    clip = read_wav(demo_question())
    write_wav(tmp_path / "b.WAV", convert(clip, 8000, 2))  # any common format
    (tmp_path / "a.txt").write_text("What is the capital of France?\n")
    (tmp_path / "notes.md").write_text("not a question")
    corpus = load_corpus(tmp_path, cache_dir=tmp_path / "c", voice_key="-", open_synthesizer=_no_voice)
    assert [p.wav.name for p in corpus.prompts] == ["a.wav", "b.WAV"]
    assert corpus.texts() == ["What is the capital of France?", None]
    assert AudioFeed(corpus, rate=16000, chunk_s=0.1).chunks(1)  # converted to mono 16 kHz
    (tmp_path / "a.txt").write_text("Something else?")
    changed = load_corpus(tmp_path, cache_dir=tmp_path / "c", voice_key="-", open_synthesizer=_no_voice)
    assert changed.fingerprint != corpus.fingerprint


def _no_voice() -> PiperSynthesizer:
    raise AssertionError("WAV prompts need no voice")


def test_bad_corpora_are_our_errors(tmp_path: Path) -> None:
    def load(spec: Path) -> object:
        return load_corpus(spec, cache_dir=tmp_path / "c", voice_key="-", open_synthesizer=_no_voice)

    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(ConfigError, match="empty.txt holds no questions"):
        load(empty)
    with pytest.raises(ConfigError, match="missing.txt does not exist"):
        load(tmp_path / "missing.txt")
    no_wavs = tmp_path / "nowavs"
    no_wavs.mkdir()
    with pytest.raises(ConfigError, match="holds no .wav files"):
        load(no_wavs)
    (no_wavs / "bad.wav").write_bytes(b"ID3\x03 not audio")
    with pytest.raises(AudioFormatError, match="bad.wav: is an MP3 file"):
        load(no_wavs)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="cannot read prompts file"):
        load(binary)
