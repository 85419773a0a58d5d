"""Quality measures on the real model: the bundled texts, keyword scoring, perplexity windows, the raw C-API loop."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.bench.quality import (
    FactualQuestion,
    factual_questions,
    heldout_text,
    perplexity,
    window_plan,
)
from assistant.bench.raw_llama import RawLlama
from assistant.errors import ConfigError, ModelError


@pytest.fixture(scope="module")
def raw(smollm2: Path) -> Iterator[RawLlama]:
    with RawLlama(smollm2, n_ctx=512, threads=1, n_batch=512) as model:
        yield model


def test_heldout_text_is_long_enough(raw: RawLlama) -> None:
    text = heldout_text()
    assert len(raw.tokenize(text, add_bos=False)) >= 2000
    assert len(text.split()) > 1500


def test_factual_questions_are_bundled_and_well_formed() -> None:
    questions = factual_questions()
    assert len(questions) >= 40
    assert len({q.question for q in questions}) == len(questions)
    assert all(q.question.endswith("?") and q.answers for q in questions)


def test_keyword_scoring_is_whole_word_and_case_blind() -> None:
    paris = FactualQuestion("What is the capital of France?", ("Paris",))
    assert paris.is_answered_by("The capital of France is paris.")
    assert not paris.is_answered_by("That is a Parisian question.")
    boil = FactualQuestion("At what temperature in Celsius does water boil?", ("hundred", "100"))
    assert boil.is_answered_by("Water boils at 100 degrees.")
    assert not boil.is_answered_by("Water boils at 1000 degrees.")
    whale = FactualQuestion("What is the largest animal on Earth?", ("blue whale",))
    assert whale.is_answered_by("The Blue Whale is.") and not whale.is_answered_by("The blue sky.")


def test_a_malformed_question_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "qa.tsv"
    bad.write_text("# comment\nWhat is two plus two?\tfour\nno answer column here\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"qa\.tsv:3"):
        factual_questions(bad)
    with pytest.raises(ConfigError, match="missing.tsv"):
        factual_questions(tmp_path / "missing.tsv")


@pytest.mark.parametrize("n,window,stride", [(96, 64, 48), (2724, 512, 384), (10, 64, 48), (200, 33, 32)])
def test_window_plan_scores_every_token_once_with_context(n: int, window: int, stride: int) -> None:
    plan = window_plan(n, window, stride)
    scored: list[int] = []
    for i, (start, end, score_from) in enumerate(plan):
        assert end - start <= window - 1 and start <= score_from < end
        if i:
            assert score_from - start >= window - 1 - stride  # context before the first scored token
        scored += range(score_from, end)
    assert scored == list(range(n))


def test_perplexity_matches_a_direct_computation(raw: RawLlama) -> None:
    tokens = raw.tokenize(heldout_text(), add_bos=False)[:60]
    one = perplexity(raw, tokens, window=64, stride=48)  # one window holds it all
    lp = raw.logprobs([raw.bos, *tokens])
    assert one.windows == 1 and one.tokens == 60
    assert math.isclose(one.value, math.exp(-float(np.mean(lp))), rel_tol=1e-9)
    assert math.isclose(perplexity(raw, tokens, window=64, stride=48).value, one.value, rel_tol=1e-6)


def test_perplexity_tells_text_from_scrambled_text(raw: RawLlama) -> None:
    tokens = raw.tokenize(heldout_text(), add_bos=False)[:256]
    real = perplexity(raw, tokens, window=128, stride=96)
    scrambled = perplexity(raw, list(np.random.default_rng(1).permutation(tokens)), window=128, stride=96)
    assert 2 < real.value < 100
    assert scrambled.value > 5 * real.value


def test_raw_loop_generates_the_count_asked(raw: RawLlama) -> None:
    prompt = raw.tokenize("<|im_start|>user\nTell me about tea.<|im_end|>\n<|im_start|>assistant\n", add_bos=False)
    run = raw.greedy(prompt, 12)
    assert run.tokens == 12 and run.prompt_tokens == len(prompt)
    assert run.tps is not None and run.tps > 1 and run.decode_s > 0
    sampled = raw.sampled(prompt, 12, temperature=0.2, seed=42)
    assert sampled.tokens == 12 and sampled.tps is not None
    with pytest.raises(ValueError, match="do not fit"):
        raw.greedy(prompt, 600)


def test_raw_loop_rejects_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"NOPE" + bytes(100))
    with pytest.raises(ModelError, match="fake.gguf"):
        RawLlama(fake, n_ctx=64, threads=1)
