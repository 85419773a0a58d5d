"""End of speech to first audio: the streaming pipeline against a blocking baseline, same engines, questions and run."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from assistant.stats import median, p95, ratio
from assistant.bench.speech_bench import SpokenQuestion, mic_chunks, paced
from assistant.errors import AssistantError
from assistant.speech.asr import Transcriber
from assistant.speech.llm import LlamaResponder
from assistant.speech.pipeline import Pipeline
from assistant.speech.speaker import NullSpeaker
from assistant.speech.tts import PiperSynthesizer

_LOG = logging.getLogger(__name__)

MIN_SENTENCES = 3
"""The latency target is for replies of at least this many sentences."""

METHOD = (
    "Each question is Piper speech delivered in microphone blocks; 'end of speech' is the arrival of the last "
    "block. Streaming: Pipeline.run_turn (ASR fed while audio arrives; LLM tokens cut into sentences, the first "
    "clause early; each sentence synthesised while the LLM goes on); first audio = first synthesised chunk ready. "
    "Blocking: the same ASR session fed the same way, then the full reply (\"\".join(respond(q))), then the "
    "whole reply synthesised in one call; first audio = synthesis finished (a blocking system plays nothing "
    "before). Same engines, models and questions; the two modes alternate, starting with a different one on "
    "each repetition. The speaker discards the audio (no sound card), so playback time is not included."
)


def sentence_count(text: str) -> int:
    """Sentences in a reply: runs of text ending in . ! or ? (a trailing fragment counts as one)."""
    return len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if re.search(r"\w", s)])


def _streaming(pipeline: Pipeline, q: SpokenQuestion, block_s: float, pace: bool) -> dict[str, Any]:
    chunks, secs = mic_chunks(q.clip, block_s)
    record = pipeline.run_turn(audio=paced(chunks, secs, pace=pace))
    return {"mode": "streaming", "question": q.text, "transcript": record.transcript, "reply": record.reply,
            "sentences": sentence_count(record.reply), "tokens": record.tokens, "asr_final_s": record.asr_final_s,
            "first_token_s": record.first_token_s, "first_audio_s": record.first_audio_s,
            "total_s": record.total_s, "audio_out_s": record.audio_out_s}


def _blocking(transcriber: Transcriber, responder: LlamaResponder, synth: PiperSynthesizer, q: SpokenQuestion,
              block_s: float, pace: bool) -> dict[str, Any]:
    chunks, secs = mic_chunks(q.clip, block_s)
    session = transcriber.session()
    end = time.perf_counter()
    for chunk in paced(chunks, secs, pace=pace):
        end = time.perf_counter()
        session.feed(chunk)
    transcript = session.finish().text.strip()
    asr_done = time.perf_counter()
    reply = "".join(responder.respond(transcript)).strip() if transcript else ""
    llm_done = time.perf_counter()
    clips = list(synth.synthesize(reply)) if reply else []
    synth_done = time.perf_counter()
    return {"mode": "blocking", "question": q.text, "transcript": transcript, "reply": reply,
            "sentences": sentence_count(reply), "tokens": responder.last.tokens, "asr_final_s": asr_done - end,
            "llm_s": llm_done - asr_done, "tts_s": synth_done - llm_done,
            "first_audio_s": synth_done - end if clips else None, "total_s": synth_done - end,
            "audio_out_s": sum(c.seconds for c in clips)}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    first = [r["first_audio_s"] for r in rows if r["first_audio_s"] is not None]
    return {"turns": len(rows), "first_audio_median_s": median(first), "first_audio_p95_s": p95(first),
            "total_median_s": median([r["total_s"] for r in rows if r["total_s"] is not None]),
            "failed": sum("error" in r for r in rows)}


def measure_e2e(transcriber: Transcriber, responder: LlamaResponder, synth: PiperSynthesizer,
                questions: Sequence[SpokenQuestion], *, reps: int, block_s: float, pace: bool,
                first_clause_words: int) -> dict[str, Any]:
    """Streaming and blocking turns for every question ``reps`` times; medians, p95 and their ratios."""
    pipeline = Pipeline(transcriber, responder, synth, NullSpeaker(), first_clause_words=first_clause_words)
    rows: list[dict[str, Any]] = []
    for rep in range(reps):
        for i, q in enumerate(questions):
            order = ("streaming", "blocking") if (rep + i) % 2 == 0 else ("blocking", "streaming")
            for mode in order:
                try:
                    if mode == "streaming":
                        row = _streaming(pipeline, q, block_s, pace)
                    else:
                        row = _blocking(transcriber, responder, synth, q, block_s, pace)
                except AssistantError as exc:  # e.g. nothing recognised: the turn is recorded as failed
                    _LOG.warning("e2e %s turn failed: %s", mode, exc)
                    row = {"mode": mode, "question": q.text, "error": f"{type(exc).__name__}: {exc}",
                           "reply": "", "sentences": 0, "first_audio_s": None, "total_s": None}
                row["rep"] = rep
                rows.append(row)
                _LOG.info("e2e %s rep %d: first audio %.2f s, %d sentences: %r", mode, rep,
                          row["first_audio_s"] or -1.0, row["sentences"], row["reply"][:60])
    streaming = [r for r in rows if r["mode"] == "streaming"]
    blocking = [r for r in rows if r["mode"] == "blocking"]
    s_all, b_all = _summary(streaming), _summary(blocking)
    long_pairs = [(s, b) for s, b in _pairs(streaming, blocking)
                  if s["sentences"] >= MIN_SENTENCES and b["sentences"] >= MIN_SENTENCES]
    s_long = _summary([s for s, _ in long_pairs])
    b_long = _summary([b for _, b in long_pairs])
    return {
        "method": METHOD, "responder": responder.model_name, "asr": transcriber.engine, "voice": synth.voice_name,
        "system_prompt": responder.system_prompt, "max_tokens": responder.max_tokens, "paced_audio": pace,
        "streaming": s_all, "blocking": b_all,
        "ratio_median": ratio(s_all["first_audio_median_s"], b_all["first_audio_median_s"]),
        "ratio_p95": ratio(s_all["first_audio_p95_s"], b_all["first_audio_p95_s"]),
        "long_replies": {"min_sentences": MIN_SENTENCES, "pairs": len(long_pairs), "streaming": s_long,
                         "blocking": b_long,
                         "ratio_median": ratio(s_long["first_audio_median_s"], b_long["first_audio_median_s"]),
                         "ratio_p95": ratio(s_long["first_audio_p95_s"], b_long["first_audio_p95_s"])},
        "turns": rows,
    }


Turn = dict[str, Any]


def _pairs(streaming: list[Turn], blocking: list[Turn]) -> list[tuple[Turn, Turn]]:
    """Streaming and blocking turns of the same question and repetition."""
    index = {(b["question"], b["rep"]): b for b in blocking}
    return [(s, index[(s["question"], s["rep"])]) for s in streaming if (s["question"], s["rep"]) in index]
