"""Scripted engines for tests of the wiring (pipeline, session, appliance) without the wall clock:
a responder that streams queued replies and a synthesizer that makes a clip per sentence, each able
to fail or to wait on an event at a chosen point. The real engines keep their own tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from assistant.messages import AudioClip
from assistant.speech.llm import Generation


class ScriptedResponder:
    """Streams each queued reply word by word (one token a word); ``gate`` holds it before a token."""

    model_name = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.last = Generation()
        self.questions: list[str] = []
        self.gate_at: int | None = None
        """Before this token (0-based) wait for ``gate``: lets a test act while the reply is under way."""
        self.gate = threading.Event()
        self.reached_gate = threading.Event()

    def respond(self, question: str, cancel: threading.Event | None = None) -> Iterator[str]:
        self.questions.append(question)
        text = self.replies.pop(0) if self.replies else "Nothing more to say."
        self.last = Generation(prompt_tokens=len(question.split()), prompt_total=len(question.split()))
        said: list[str] = []
        for i, word in enumerate(text.split(" ")):
            if i == self.gate_at:
                self.reached_gate.set()
                self.gate.wait(10.0)
            if cancel is not None and cancel.is_set():
                self.last.stop = "cancelled"
                break
            piece = word if i == 0 else " " + word
            said.append(piece)
            self.last.tokens += 1
            if self.last.first_token_s is None:
                self.last.first_token_s = 0.0
            yield piece
        else:
            self.last.stop = "eos"
        self.last.text = "".join(said)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class ScriptedSynthesizer:
    """A 0.2 s tone per sentence; raises ``fail_with`` on the ``fail_at``-th sentence (0-based)."""

    voice_name = "scripted"
    rate = 16000

    def __init__(self, *, fail_at: int | None = None, fail_with: BaseException | None = None) -> None:
        self.sentences: list[str] = []
        self.fail_at = fail_at
        self.fail_with = fail_with or RuntimeError("the voice crashed")

    def synthesize(self, text: str) -> Iterator[AudioClip]:
        if self.fail_at is not None and len(self.sentences) == self.fail_at:
            raise self.fail_with
        self.sentences.append(text)
        t = np.arange(int(0.2 * self.rate)) / self.rate
        yield AudioClip((3000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes(), self.rate)

    def close(self) -> None:
        pass
