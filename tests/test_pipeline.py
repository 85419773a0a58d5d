"""One turn through the real engines: Piper-spoken question -> ASR -> SmolLM2 -> Piper -> speaker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from assistant.config import AssistantConfig
from assistant.errors import ModelError, NoSpeech
from assistant.messages import AudioClip
from assistant.speech.asr import Transcriber
from assistant.speech.engines import open_asr
from assistant.speech.llm import LlamaResponder
from assistant.speech.pipeline import Pipeline, chunk_pcm
from assistant.speech.speaker import WavSpeaker
from assistant.speech.tts import PiperSynthesizer
from assistant.speech.wav import convert, read_wav


@pytest.fixture(scope="module")
def asr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Transcriber]:
    """The ASR a fresh machine gets: no Vosk model installed, so the labelled English fallback."""
    from assistant.config import PathsConfig

    models = tmp_path_factory.mktemp("models")
    cfg = replace(AssistantConfig(), paths=PathsConfig(models_dir=models))
    t = open_asr(cfg)
    yield t
    t.close()


def speak(synthesizer: PiperSynthesizer, text: str, rate: int) -> list[bytes]:
    """A question spoken by Piper, with silence around it, as mic-sized chunks at ``rate``."""
    from piper import SynthesisConfig

    saved = synthesizer._syn_config
    synthesizer._syn_config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # the same audio every run
    try:
        pcm = b"".join(c.pcm for c in synthesizer.synthesize(text))
    finally:
        synthesizer._syn_config = saved
    silence = b"\0\0" * int(0.3 * synthesizer.rate)
    clip = convert(AudioClip(silence + pcm + silence, synthesizer.rate), rate)
    return chunk_pcm(clip, 0.05)


def tts_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tts-")]


def test_spoken_question_gets_spoken_answer(
    asr: Transcriber, responder: LlamaResponder, synthesizer: PiperSynthesizer, tmp_path: Path
) -> None:
    responder.reset()
    out = tmp_path / "answer.wav"
    with WavSpeaker(out) as speaker:
        pipeline = Pipeline(asr, responder, synthesizer, speaker)
        record = pipeline.run_turn(audio=speak(synthesizer, "What is the capital of France?", asr.rate))
    assert "fallback" in record.asr_engine
    assert record.transcript == "what is the capital of france"
    assert "Paris" in record.reply
    assert record.tokens > 3 and record.words >= 4
    assert record.asr_final_s is not None and record.first_token_s is not None and record.first_audio_s is not None
    assert 0 <= record.asr_final_s < record.first_token_s < record.first_audio_s <= record.total_s
    answer = read_wav(out)
    assert answer.rate == synthesizer.rate
    assert abs(answer.seconds - record.audio_out_s) < 0.05
    assert np.abs(np.frombuffer(answer.pcm, "<i2")).max() > 3000
    assert not tts_threads()


def test_bundled_demo_question_is_understood(asr: Transcriber, responder: LlamaResponder, synthesizer: PiperSynthesizer) -> None:
    from assistant.commands.turn import demo_question

    clip = convert(read_wav(demo_question()), asr.rate)
    with WavSpeaker(None) as speaker:
        record = Pipeline(asr, responder, synthesizer, speaker).run_turn(audio=chunk_pcm(clip))
    assert record.transcript == "what is the capital of france"


def test_first_audio_comes_long_before_the_reply_ends(smollm2: Path, synthesizer: PiperSynthesizer) -> None:
    llm = LlamaResponder(
        smollm2, n_ctx=1024, max_tokens=160, history_turns=0,
        system_prompt="You are a friendly teacher. Answer in four or five full sentences.",
    )
    try:
        with WavSpeaker(None) as speaker:
            record = Pipeline(None, llm, synthesizer, speaker).run_turn(text="Why is the sky blue?")
    finally:
        llm.close()
    assert record.sentences >= 3
    assert record.first_audio_s is not None
    assert record.first_audio_s < record.llm_s, record  # the first sentence plays while the model still writes


class _CancelOnFirstClip(WavSpeaker):
    def __init__(self, cancel: threading.Event) -> None:
        super().__init__(None)
        self.cancel = cancel
        self.plays = 0

    def play(self, clip: AudioClip) -> None:
        super().play(clip)
        self.plays += 1
        self.cancel.set()


def test_cancel_mid_reply_stops_everything(smollm2: Path, synthesizer: PiperSynthesizer) -> None:
    llm = LlamaResponder(smollm2, n_ctx=1024, max_tokens=160, history_turns=0,
                         system_prompt="Answer in five long sentences.")
    cancel = threading.Event()
    try:
        speaker = _CancelOnFirstClip(cancel)
        record = Pipeline(None, llm, synthesizer, speaker, first_clause_words=3).run_turn(
            text="Tell me about the history of Rome.", cancel=cancel
        )
    finally:
        llm.close()
    assert record.cancelled
    assert llm.last.stop == "cancelled"
    assert record.tokens < 160
    assert speaker.plays == 1  # nothing more reached the speaker once the cancel was set
    assert not tts_threads()


class _BrokenSynth:
    voice_name = "broken"
    rate = 22050

    def __init__(self, inner: PiperSynthesizer) -> None:
        self.inner = inner
        self.calls = 0

    def synthesize(self, text: str) -> Iterator[AudioClip]:
        self.calls += 1
        if self.calls == 2:
            raise ModelError("voice failed")
        yield from self.inner.synthesize(text)

    def close(self) -> None:
        pass


def test_tts_failure_mid_turn_is_raised_and_leaves_nothing_running(
    responder: LlamaResponder, synthesizer: PiperSynthesizer
) -> None:
    responder.reset()
    with WavSpeaker(None) as speaker, pytest.raises(ModelError, match="voice failed"):
        Pipeline(None, responder, _BrokenSynth(synthesizer), speaker, first_clause_words=2).run_turn(
            text="Tell me three facts about cats, in three sentences."
        )
    assert not tts_threads()


def test_silence_is_no_speech(asr: Transcriber, responder: LlamaResponder, synthesizer: PiperSynthesizer) -> None:
    silence = AudioClip(b"\0\0" * asr.rate * 2, asr.rate)
    with WavSpeaker(None) as speaker, pytest.raises(NoSpeech):
        Pipeline(asr, responder, synthesizer, speaker).run_turn(audio=chunk_pcm(silence))


def test_empty_text_is_no_speech(responder: LlamaResponder, synthesizer: PiperSynthesizer) -> None:
    with WavSpeaker(None) as speaker, pytest.raises(NoSpeech):
        Pipeline(None, responder, synthesizer, speaker).run_turn(text="   ")
