"""Quality of a tier without a reference model: perplexity on held-out text, factual questions scored by keyword."""

from __future__ import annotations

import importlib.resources
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.bench.raw_llama import RawLlama
from assistant.errors import ConfigError

_LOG = logging.getLogger(__name__)

HELDOUT = "heldout.txt"
"""Everyday English prose written for this benchmark (so no model was trained on it), in assistant/data."""
FACTUAL_QA = "factual_qa.tsv"
"""Short factual questions with their accepted answers, in assistant/data."""

PERPLEXITY_METHOD = (
    "llama.cpp C API: the held-out text is tokenized once (no BOS); windows of W tokens (BOS + W-1 text "
    "tokens) start every S tokens; each window is decoded in one batch with logits for every position, and "
    "scores only the tokens no earlier window scored (so every scored token after the first window has at "
    "least W-1-S tokens of context); perplexity = exp(-mean log p(token | context)), log-softmax over the "
    "full vocabulary in float64."
)


def data_file(name: str) -> Path:
    """Path of a file bundled in assistant/data."""
    return Path(str(importlib.resources.files("assistant") / "data" / name))


def heldout_text(path: Path | None = None) -> str:
    """The held-out text (the bundled one by default)."""
    path = path or data_file(HELDOUT)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the held-out text {path}: {exc}") from exc


@dataclass(frozen=True)
class FactualQuestion:
    """One question and the answers that count as right."""

    question: str
    answers: tuple[str, ...]
    """Accepted answers; any of them appearing as a whole word (any case) makes the reply right."""

    def is_answered_by(self, reply: str) -> bool:
        """True when ``reply`` contains one of the accepted answers as a whole word or phrase."""
        return any(re.search(rf"(?<!\w){re.escape(a)}(?!\w)", reply, re.IGNORECASE) for a in self.answers)


def factual_questions(path: Path | None = None) -> list[FactualQuestion]:
    """The factual question set: tab-separated question and ``|``-separated answers; ``#`` starts a comment."""
    path = path or data_file(FACTUAL_QA)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the factual questions {path}: {exc}") from exc
    out: list[FactualQuestion] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        answers = tuple(a.strip() for a in parts[1].split("|") if a.strip()) if len(parts) == 2 else ()
        if len(parts) != 2 or not parts[0].strip() or not answers:
            raise ConfigError(f"{path}:{number}: expected 'question<TAB>answer|answer...', got {line!r}")
        out.append(FactualQuestion(parts[0].strip(), answers))
    if not out:
        raise ConfigError(f"{path} holds no questions")
    return out


@dataclass(frozen=True)
class Perplexity:
    """Perplexity of a model on a token sequence."""

    value: float
    """exp(mean negative log-likelihood per scored token)."""
    tokens: int
    """Tokens scored."""
    windows: int
    """Windows decoded."""
    seconds: float
    """Time spent decoding and scoring (s)."""


def window_plan(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, score_from) per window over ``n`` text tokens; [score_from, end) are scored, each token once.

    A window holds BOS plus text tokens [start, end), at most ``window - 1`` of them.
    """
    if not 0 < stride < window:
        raise ValueError(f"stride {stride} must be within 1..{window - 1}")
    plan: list[tuple[int, int, int]] = []
    scored = 0
    start = 0
    while scored < n:
        end = min(n, start + window - 1)
        plan.append((start, end, scored))
        scored = end
        start += stride
    return plan


def perplexity(model: RawLlama, tokens: Sequence[int], *, window: int, stride: int) -> Perplexity:
    """Perplexity of ``model`` on ``tokens`` (see ``PERPLEXITY_METHOD``)."""
    if len(tokens) < 2:
        raise ValueError("perplexity needs at least two tokens")
    t0 = time.perf_counter()
    total = 0.0
    count = 0
    plan = window_plan(len(tokens), window, stride)
    for start, end, score_from in plan:
        lp = model.logprobs([model.bos, *tokens[start:end]])
        # lp[j] is log p(window[j + 1]); window[j + 1] is text token start + j
        part = lp[score_from - start : end - start]
        total += float(part.sum())
        count += len(part)
    value = math.exp(-total / count)
    return Perplexity(value=value, tokens=count, windows=len(plan), seconds=time.perf_counter() - t0)
