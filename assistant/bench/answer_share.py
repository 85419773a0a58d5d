"""Spoken factual questions answered right against the same questions typed: what hearing costs, and what
writing the transcript as a question wins back.

Each question of the factual set is asked five ways, with no conversation memory:
- ``text``: as written, straight to the LLM;
- ``text_lower``: lower case without punctuation, as a recogniser writes it;
- ``text_normalised``: that line through ``as_question`` (what the appliance now sends);
- ``spoken_raw``: spoken by Piper, recognised as a file, the transcript sent as heard;
- ``spoken``: the same transcript through ``as_question`` (the appliance's path).

A reply is right when it holds an accepted answer (the tiers' keyword check).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from assistant.bench.quality import FactualQuestion
from assistant.bench.speech_bench import SpokenQuestion, mic_chunks
from assistant.speech.words import words
from assistant.speech.asr import Transcriber
from assistant.speech.llm import LlamaResponder
from assistant.speech.question_text import as_question

_LOG = logging.getLogger(__name__)

WAYS = ("text", "text_lower", "text_normalised", "spoken_raw", "spoken")


def measure_answers(responder: LlamaResponder, transcriber: Transcriber, questions: Sequence[FactualQuestion],
                    spoken: Sequence[SpokenQuestion], *, block_s: float) -> dict[str, Any]:
    """Right answers per way of asking (see the module); ``spoken[i]`` says ``questions[i]``."""
    rows: list[dict[str, Any]] = []
    for q, s in zip(questions, spoken):
        chunks, _ = mic_chunks(s.clip, block_s)
        session = transcriber.session(whole=True)
        for chunk in chunks:
            session.feed(chunk)
        heard = session.finish().text
        lower = " ".join(words(q.question))
        asked = {"text": q.question, "text_lower": lower, "text_normalised": as_question(lower),
                 "spoken_raw": heard, "spoken": as_question(heard)}
        row: dict[str, Any] = {"question": q.question, "heard": heard, "asked": asked, "right": {}, "replies": {}}
        for way in WAYS:
            responder.reset()
            reply = "".join(responder.respond(asked[way])) if asked[way].strip() else ""
            row["replies"][way] = reply
            row["right"][way] = q.is_answered_by(reply)
        rows.append(row)
    n = len(rows)
    share = {way: (sum(r["right"][way] for r in rows) / n if n else None) for way in WAYS}
    return {"questions": n, "share": share, "responder": responder.model_name, "asr": transcriber.engine,
            "spoken_minus_text_points": None if not n else 100.0 * ((share["spoken"] or 0.0) - (share["text"] or 0.0)),
            "normalisation_gain_points": None if not n else
            100.0 * ((share["spoken"] or 0.0) - (share["spoken_raw"] or 0.0)),
            "method": "keyword check of each reply (the tiers' factual check); spoken = Piper speech recognised "
                      "as a file; no conversation memory", "runs": rows}
