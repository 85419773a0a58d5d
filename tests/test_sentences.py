"""Cutting generated text into speakable pieces."""

from __future__ import annotations

from assistant.speech.sentences import SentenceSplitter, clean, split_stream, word_count


def stream(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_sentences_come_out_as_soon_as_they_end() -> None:
    splitter = SentenceSplitter(first_clause_words=0)
    assert splitter.feed("Paris is the capital") == []
    assert splitter.feed(" of France. It is") == ["Paris is the capital of France."]
    assert splitter.feed(" big! Is it?") == ["It is big!"]
    assert splitter.flush() == ["Is it?"]


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    text = "Dr. Smith measured 3.14 metres, e.g. a lot. Then he left."
    out = list(split_stream(stream(text), first_clause_words=0))
    assert out == ["Dr. Smith measured 3.14 metres, e.g. a lot.", "Then he left."]


def test_first_clause_goes_early_only_once() -> None:
    text = "Well, the moon is far away from us, about 384,000 kilometres, on average. It orbits, slowly."
    out = list(split_stream(stream(text), first_clause_words=4))
    assert out[0] == "Well, the moon is far away from us,"
    assert out[1] == "about 384,000 kilometres, on average."
    assert out[2] == "It orbits, slowly."


def test_markup_and_emoji_are_not_spoken() -> None:
    assert clean("**Paris** is `great` \U0001F600 #1") == "Paris is great 1"
    assert list(split_stream(["*** ", "\U0001F600"])) == []


def test_word_count() -> None:
    assert word_count("It's 3.5 km, isn't it?") == 5
    assert word_count("") == 0
    assert word_count("...") == 0
