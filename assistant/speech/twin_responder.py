"""A turn on a speed twin: the tier's whole token budget is generated for real, and a stand-in text is spoken.

The twin's tokens are noise, so the reply is not them: it is the bundled held-out prose, cut to
the number of words a real reply of that many tokens would have (tokens x the words per token
measured on a real model, from the twin's metadata). So the speech synthesizer and the speaker
do the work of a real reply of that length while the LLM does the work of the twin. The words
are labelled estimated in the turn itself (``Generation.words_estimate``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.errors import ModelError
from assistant.models.twin import TwinInfo
from assistant.speech.llm import LlamaResponder
from assistant.speech.sentences import word_count

_LOG = logging.getLogger(__name__)


def stand_in_words() -> list[str]:
    """The held-out prose as spoken words with their punctuation (each item counts as exactly one word)."""
    from assistant.bench.quality import heldout_text

    words = [w for w in heldout_text().split() if word_count(w) == 1]
    if not words:
        raise ModelError("the bundled held-out text has no words to stand in for a twin's reply")
    return words


class TwinResponder(LlamaResponder):
    """LlamaResponder over a speed twin: generates exactly ``max_tokens`` tokens (end-of-text ignored) and yields
    stand-in words as the token count grows, ``round(tokens x words_per_token)`` of them in all."""

    def __init__(self, model_path: Path, *, twin: TwinInfo, **kwargs: Any) -> None:
        super().__init__(model_path, **kwargs)
        self.twin = twin
        self._words = stand_in_words()

    def respond(self, question: str, cancel: threading.Event | None = None) -> Iterator[str]:
        t0 = time.perf_counter()
        stream, gen = self.start(question)
        gen.words_estimate = self.twin.words_estimate()
        pieces: list[str] = []
        generated: list[int] = []
        try:
            # every token of the budget: the twin's end-of-text means nothing
            for token in self._counted(gen, stream, cancel, t0, until_eog=False):
                generated.append(token)
                due = round(gen.tokens * self.twin.words_per_token)
                while len(pieces) < due:
                    word = self._words[len(pieces) % len(self._words)]
                    pieces.append(word)
                    yield ("" if len(pieces) == 1 else " ") + word
        finally:
            gen.gen_s = time.perf_counter() - t0
            gen.text = " ".join(pieces)
            if gen.text and gen.text[-1] not in ".!?":
                gen.text += "."
            if gen.stop != "cancelled" and generated:
                # memory keeps what the twin generated, not the stand-in: its next prompt then starts with the
                # tokens llama.cpp has just evaluated, and reuses them as a real model's next prompt does
                self.memory.add(question, self._llm.detokenize(generated).decode("utf-8", "replace"))
        if pieces and pieces[-1][-1] not in ".!?":
            yield "."
        _LOG.debug("twin generated %d tokens (%s) in %.2f s, %d stand-in words", gen.tokens, gen.stop, gen.gen_s,
                   len(pieces))
