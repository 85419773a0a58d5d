"""The llama.cpp responder on the real embedded SmolLM2 model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from assistant.errors import ModelError, ModelNotFound
from assistant.speech.llm import LlamaResponder, Memory


def test_answers_a_factual_question(responder: LlamaResponder) -> None:
    responder.reset()
    pieces = list(responder.respond("What is the capital of France?"))
    gen = responder.last
    assert "Paris" in "".join(pieces)
    assert gen.text == "".join(pieces).strip()
    assert gen.stop == "eos"
    assert gen.tokens >= len(pieces) > 1
    assert gen.prompt_total > 20
    assert gen.first_token_s is not None and 0 < gen.first_token_s <= gen.gen_s
    assert gen.tps is not None and gen.tps > 0


def test_same_question_same_answer(responder: LlamaResponder) -> None:
    responder.reset()
    a = "".join(responder.respond("Name a primary colour."))
    responder.reset()
    b = "".join(responder.respond("Name a primary colour."))
    assert a == b


def test_max_tokens_ends_the_reply(responder: LlamaResponder) -> None:
    responder.reset()
    saved = responder.max_tokens
    responder.max_tokens = 5
    try:
        list(responder.respond("Tell me a long story about a dragon."))
    finally:
        responder.max_tokens = saved
    assert responder.last.tokens == 5
    assert responder.last.stop == "length"


def test_cancel_stops_generation_within_a_token(responder: LlamaResponder) -> None:
    responder.reset()
    cancel = threading.Event()
    got = []
    for piece in responder.respond("Tell me a long story about a dragon.", cancel):
        got.append(piece)
        cancel.set()
    assert responder.last.stop == "cancelled"
    assert len(got) == 1
    assert responder.last.tokens == 1
    assert responder.memory.turns == []  # a cancelled reply is not remembered


def test_memory_is_used_bounded_and_reset(responder: LlamaResponder) -> None:
    responder.reset()
    list(responder.respond("My name is Alice."))
    first_answer = responder.last.text
    prompt = responder._llm.detokenize(responder.prompt_tokens("What is my name?")).decode()
    assert "My name is Alice." in prompt and first_answer in prompt
    list(responder.respond("What is my name?"))
    # the second prompt reused the cached prefix of the first turn
    assert responder.last.prompt_tokens < responder.last.prompt_total
    list(responder.respond("What is two plus two?"))
    assert len(responder.memory.turns) == 1  # history_turns=2 in the fixture: full, so the older half went
    assert responder.memory.turns[0][0] == "What is two plus two?"
    responder.reset()
    assert responder.memory.turns == []


def test_memory_is_dropped_oldest_first_to_fit_the_context(responder: LlamaResponder) -> None:
    responder.reset()
    responder.memory.add("blah " * 1500, "ok")
    responder.memory.add("What colour is the sky?", "Blue.")
    tokens = responder.prompt_tokens("Thanks!")
    assert len(tokens) <= responder.n_ctx - responder.max_tokens
    text = responder._llm.detokenize(tokens).decode()
    assert "blah blah" not in text and "colour is the sky" in text
    responder.reset()


def test_memory_class_bound() -> None:
    m = Memory(max_turns=0)
    m.add("a", "b")
    assert m.turns == []


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist"):
        LlamaResponder(tmp_path / "none.gguf")


def test_not_a_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ModelError, match="not a GGUF file"):
        LlamaResponder(bad)


def test_truncated_gguf(tmp_path: Path, smollm2: Path) -> None:
    bad = tmp_path / "cut.gguf"
    with smollm2.open("rb") as src:
        bad.write_bytes(src.read(2_000_000))
    with pytest.raises(ModelError, match="could not load"):
        LlamaResponder(bad)


def test_a_full_memory_forgets_its_older_half_at_once() -> None:
    """Between two drops the remembered turns stay the same, so each prompt begins as the last one did and
    llama.cpp evaluates only what is new (dropping one turn per question would change the prompt right after
    the system prompt, and the whole memory would be evaluated again before every reply)."""
    from assistant.speech.llm import Memory

    m = Memory(4)
    sizes, firsts = [], []
    for i in range(10):
        m.add(f"q{i}", f"a{i}")
        sizes.append(len(m.turns))
        firsts.append(m.turns[0][0])
    assert sizes == [1, 2, 3, 4, 2, 3, 4, 2, 3, 4]
    assert firsts == ["q0", "q0", "q0", "q0", "q3", "q3", "q3", "q6", "q6", "q6"]
    assert m.turns[-1] == ("q9", "a9")
    none = Memory(0)
    none.add("q", "a")
    assert none.turns == []
