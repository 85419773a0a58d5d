"""What the recogniser heard, written as the question the LLM is asked."""

from __future__ import annotations

import pytest

from assistant.speech.question_text import as_question, is_question


@pytest.mark.parametrize("heard, asked", [
    ("what is the capital of japan", "What is the capital of Japan?"),
    ("how far away is the moon", "How far away is the moon?"),
    ("is it going to rain on monday", "Is it going to rain on Monday?"),
    ("can i have a cup of tea", "Can I have a cup of tea?"),
    ("set a timer for ten minutes", "Set a timer for ten minutes."),
    ("tell me a joke about computers", "Tell me a joke about computers."),
    ("i'm cold", "I'm cold."),
    ("  who   wrote romeo and juliet ", "Who wrote romeo and juliet?"),
    ("what's the weather like in london", "What's the weather like in London?"),
])
def test_a_transcript_becomes_a_written_question(heard: str, asked: str) -> None:
    assert as_question(heard) == asked


def test_typed_text_keeps_its_own_case_and_mark() -> None:
    assert as_question("What is the capital of the USA?") == "What is the capital of the USA?"
    assert as_question("Turn on the light!") == "Turn on the light!"
    assert as_question("iPhone or android") == "IPhone or android."  # only the first letter is raised
    assert as_question("") == "" and as_question("   ") == ""


def test_may_the_verb_is_not_a_month() -> None:
    assert as_question("may i ask you something") == "May I ask you something?"


def test_is_question() -> None:
    assert is_question("Does it rain?") and is_question("HOW far")
    assert not is_question("Play some music") and not is_question("") and not is_question("123")
