"""Words as recognisers write them, and the word error rate: one tokeniser for the bench, the drain report,
the fixed phrases and the LLM's copy check."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; an apostrophe joins its word (``what's`` -> ``whats``,
    ``o'clock`` -> ``oclock``), so a transcript and a written reference agree however each spells it."""
    return _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words) between a reference and a transcript (Levenshtein on ``words``)."""
    r, h = words(ref), words(hyp)
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        diag, row[0] = row[0], i
        for j, hw in enumerate(h, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (rw != hw))
    return row[len(h)], len(r)
