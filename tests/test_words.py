"""One tokeniser: the bench, the drain report and the fixed phrases count "what's" the same way."""

from __future__ import annotations

from assistant.speech.words import word_errors, words


def test_words_as_recognisers_write_them() -> None:
    assert words("What's the time, o'clock?") == ["whats", "the", "time", "oclock"]
    assert words("It\u2019s 3 PM.") == ["its", "3", "pm"]
    assert words("") == []


def test_word_errors() -> None:
    assert word_errors("What's the capital of France?", "whats the capital of france") == (0, 5)
    assert word_errors("what is the time", "what the time is") == (2, 4)  # a deletion and an insertion
    assert word_errors("one two three", "") == (3, 3)
    assert word_errors("", "noise") == (1, 0)
