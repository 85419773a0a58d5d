"""Conversation memory must not make a reply repeat an earlier one: real SmolLM2, one session."""

from __future__ import annotations

from collections.abc import Iterator
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from assistant.config import LlmConfig
from assistant.speech.llm import LlamaResponder, _copies, _same_start
from assistant.speech.words import words as _words

PROMPT = LlmConfig().system_prompt + " Answer in at most 40 words."
"""The system prompt of the top tier of the embedded ladder, as the appliance sends it."""


@pytest.fixture
def appliance_llm(smollm2: Path) -> Iterator[LlamaResponder]:
    r = LlamaResponder(smollm2, n_ctx=2048, max_tokens=96, system_prompt=PROMPT, history_turns=4)
    yield r
    r.close()


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, _words(a), _words(b)).ratio()


def test_different_questions_in_one_session_get_different_replies(appliance_llm: LlamaResponder) -> None:
    """The questions the appliance heard on two presses, then everyday ones: no reply may be a near
    copy of an earlier one (on main the second reply repeated the first almost word for word)."""
    questions = ["go forward ten years", "go forward ten meters", "What is the capital of France?",
                 "What is the capital of Italy?", "How many legs does a spider have?", "Tell me about the moon."]
    replies = ["".join(appliance_llm.respond(q)) for q in questions]
    for i, reply in enumerate(replies):
        assert reply.strip(), questions[i]
        for j in range(i):
            assert similarity(reply, replies[j]) < 0.6, (questions[j], replies[j], questions[i], reply)
    assert "Paris" in replies[2] and "Rome" in replies[3] and "eight" in replies[4].lower()
    assert "Napoleon" not in replies[3] or "Napoleon" not in replies[2]


def test_memory_still_answers_a_follow_up(appliance_llm: LlamaResponder) -> None:
    first = "".join(appliance_llm.respond("What is the capital of France?"))
    assert "Paris" in first
    follow = "".join(appliance_llm.respond("What is the capital of Italy?"))
    assert "Rome" in follow and not appliance_llm.last.copy_restarted, "parallel answers may start alike"


def test_same_start_ignores_the_words_of_the_question() -> None:
    earlier = [_words("The capital of France is Paris.")[:5]]
    asked = set(_words("What is the capital of Italy?"))
    assert not _same_start(_words("The capital of Italy is Rome."), earlier, asked)
    glad = [_words("I'm glad to hear that you're enjoying your trip.")[:5]]
    assert _same_start(_words("I'm glad to hear that you're"), glad, set(_words("go forward ten meters")))
    assert _same_start(_words("Ten meters ago, a spider was born."), [_words("Ten years ago, a spider was")[:5]],
                       set(_words("go forward")))
    assert not _same_start(_words("Four"), glad, set())


def test_copies_finds_a_run_of_an_earlier_reply() -> None:
    earlier = _words("It's a city that has been shaped by the likes of Napoleon.")
    runs = {tuple(earlier[i : i + 6]) for i in range(len(earlier) - 5)}
    assert _copies("The capital of Italy is Rome. It's a city that has been shaped by history.", runs)
    assert not _copies("Rome is a city of fountains and churches.", runs)


def test_the_same_question_again_may_get_the_same_answer(appliance_llm: LlamaResponder) -> None:
    first = "".join(appliance_llm.respond("What is the capital of France?"))
    again = "".join(appliance_llm.respond("what is the capital of france"))
    assert not appliance_llm.last.copy_restarted and "Paris" in first and "Paris" in again
