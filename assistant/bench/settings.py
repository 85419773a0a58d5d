"""How much the benchmark measures: the full run, the quick run, and the tiny run the tests use."""

from __future__ import annotations

import logging
from dataclasses import dataclass

_LOG = logging.getLogger(__name__)

SPEED_QUESTIONS: tuple[str, ...] = (
    "Tell me about bread: where it comes from, how it is baked and how people eat it today.",
    "Tell me about bicycles: how they were invented, how they work and why people ride them.",
    "Tell me about rain: where it comes from, why it falls and what it does for plants.",
    "Tell me about libraries: what they hold, who uses them and why towns keep them.",
    "Tell me about tea: where it grows, how it is made and how people drink it.",
)
"""Questions of the generation-speed runs (one per run, so only the system prompt is cached): each draws
a long reply from every tier."""
SPEED_SYSTEM_PROMPT = "You are a helpful voice assistant. Answer in five or six complete, plain sentences."
"""System prompt of the speed, energy and engine-overhead runs (a long reply gives a steady speed)."""
E2E_SYSTEM_PROMPT = ("You are a helpful voice assistant. Give a friendly answer of four or five short sentences, "
                     "in plain spoken English. No lists.")
"""System prompt of the end-to-end runs: replies of three sentences or more, as the latency target needs."""
E2E_QUESTIONS: tuple[str, ...] = (
    "How do I bake bread at home?",
    "Tell me about the history of bicycles.",
    "How can I sleep better at night?",
    "What can I cook for dinner tonight?",
    "Tell me about the moon.",
)
"""Questions spoken by Piper, recognised, answered and spoken again in the end-to-end runs (and the ASR
figures). Chosen so that the pocketsphinx fallback hears them right and the replies run to 3+ sentences."""
QA_MAX_TOKENS = 40
"""Longest answer to a factual question (tokens): enough for one sentence holding the answer."""


@dataclass(frozen=True)
class BenchSettings:
    """Sizes of every part of the benchmark."""

    name: str
    """``full``, ``quick`` or ``tiny``: written into the JSON."""
    speed_reps: int
    """Generation-speed runs per tier (the median is reported)."""
    speed_tokens: int
    """Longest reply of a speed run (tokens)."""
    qa_questions: int
    """Factual questions asked per tier (0: all in the bundled set)."""
    ppl_tokens: int
    """Held-out tokens scored for perplexity (0: the whole text)."""
    prompt_tokens: int
    """Held-out tokens evaluated in one batch for the prompt speed."""
    ppl_window: int
    """Perplexity window (tokens, BOS included)."""
    ppl_stride: int
    """Tokens a window moves on from the previous one; each scored token sees at least window - stride tokens."""
    overhead_reps: int
    """Alternating runs of our responder and the raw llama.cpp loop (the median of each is reported)."""
    asr_questions: int
    """Spoken questions per ASR engine."""
    include_vosk: bool
    """Also measure Vosk when a model (or the Korean test model) is installed."""
    tts_texts: int
    """Replies synthesised for the TTS figures."""
    e2e_questions: int
    """Different questions in the end-to-end comparison."""
    e2e_reps: int
    """Repetitions of each question, for each of streaming and blocking."""
    e2e_max_tokens: int
    """Longest reply in the end-to-end runs (tokens)."""
    idle_s: float
    """How long the idle appliance is watched (s); 0 skips the idle measurement."""
    pace_audio: bool = True
    """Deliver the spoken questions at the speed a microphone would (else as fast as the ASR takes them)."""
    retries: int = 2
    """Extra attempts, per tier and for the engine comparison, at timed LLM runs that other processes disturbed
    (more than 0.3 cores busy elsewhere)."""
    accuracy_questions: int = 10
    """Factual questions spoken by Piper (each in three WAV formats) for the cold/warm word error rates."""
    people_recordings: int = 0
    """Recordings of people (tests/data/people) in the cold/warm word error rates (0: all)."""
    answer_questions: int = 20
    """Factual questions asked spoken and typed for the answer share (0: all in the bundled set)."""

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must not be negative")
        if self.speed_reps < 1 or self.overhead_reps < 1 or self.e2e_reps < 1:
            raise ValueError("speed_reps, overhead_reps and e2e_reps must be at least 1")
        if self.speed_reps > len(SPEED_QUESTIONS):
            raise ValueError(f"speed_reps is at most {len(SPEED_QUESTIONS)} (one question per run)")
        if self.prompt_tokens < 2:
            raise ValueError("prompt_tokens must be at least 2")
        if self.speed_tokens < 8 or self.e2e_max_tokens < 8:
            raise ValueError("speed_tokens and e2e_max_tokens must be at least 8")
        if not 0 < self.ppl_stride < self.ppl_window:
            raise ValueError(f"ppl_stride {self.ppl_stride} must be within 1..ppl_window-1 ({self.ppl_window - 1})")
        if self.ppl_tokens and self.ppl_tokens < 2:
            raise ValueError("ppl_tokens must be 0 (all) or at least 2")
        if min(self.qa_questions, self.asr_questions, self.tts_texts, self.e2e_questions, self.accuracy_questions,
               self.people_recordings, self.answer_questions) < 0 or self.idle_s < 0:
            raise ValueError("question counts and idle_s must not be negative")
        if self.e2e_questions > len(E2E_QUESTIONS):
            raise ValueError(f"e2e_questions is at most {len(E2E_QUESTIONS)}")


FULL = BenchSettings(name="full", speed_reps=5, speed_tokens=128, qa_questions=0, ppl_tokens=0, prompt_tokens=256,
                     ppl_window=512, ppl_stride=384, overhead_reps=7, asr_questions=5, include_vosk=True,
                     tts_texts=5, e2e_questions=5, e2e_reps=3, e2e_max_tokens=96, idle_s=30.0,
                     accuracy_questions=20, people_recordings=0, answer_questions=0)
"""Every question, the whole held-out text, five repetitions: about five minutes on two x86 cores."""

QUICK = BenchSettings(name="quick", speed_reps=3, speed_tokens=96, qa_questions=20, ppl_tokens=1024,
                      prompt_tokens=256, ppl_window=512, ppl_stride=384, overhead_reps=5, asr_questions=3,
                      include_vosk=True, tts_texts=3, e2e_questions=3, e2e_reps=2, e2e_max_tokens=96, idle_s=10.0,
                      accuracy_questions=10, people_recordings=0, answer_questions=20)
"""Fewer questions and repetitions, the first 1,024 held-out tokens: under five minutes on two x86 cores."""

TINY = BenchSettings(name="tiny", speed_reps=1, speed_tokens=24, qa_questions=2, ppl_tokens=96, prompt_tokens=32,
                     ppl_window=64, ppl_stride=48, overhead_reps=1, asr_questions=1, include_vosk=False, tts_texts=1,
                     e2e_questions=1, e2e_reps=1, e2e_max_tokens=48, idle_s=2.0, pace_audio=False,
                     retries=0, accuracy_questions=1, people_recordings=2, answer_questions=2)
"""The smallest run that exercises every part (for tests); its numbers mean little."""
