"""The LLM measurements that run inside a fresh worker process: one tier's speed, energy, memory and quality; engine overhead."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.bench.energy_probe import EnergyProbe
from assistant.bench.machine import median, peak_rss_mb, ratio
from assistant.bench.quality import PERPLEXITY_METHOD, factual_questions, heldout_text, perplexity
from assistant.bench.raw_llama import RawLlama
from assistant.bench.settings import QA_MAX_TOKENS, SPEED_QUESTIONS, SPEED_SYSTEM_PROMPT, BenchSettings
from assistant.config import AssistantConfig
from assistant.speech.llm import LlamaResponder
from assistant.speech.sentences import word_count

_LOG = logging.getLogger(__name__)

WARMUP_QUESTION = "Hello."


@dataclass(frozen=True)
class TierJob:
    """What a worker needs to know about the tier it measures."""

    name: str
    model: Path
    quant: str
    n_ctx: int
    threads: int
    """Generation threads (already resolved: never 0)."""


def resolve_threads(tier_threads: int, cfg: AssistantConfig) -> int:
    """Threads the appliance would give this tier: the tier's, else ``llm.threads``, else every core."""
    return tier_threads or cfg.llm.threads or (os.cpu_count() or 1)


def _responder(job: TierJob, cfg: AssistantConfig, max_tokens: int) -> LlamaResponder:
    return LlamaResponder(job.model, n_ctx=job.n_ctx, threads=job.threads, max_tokens=max_tokens,
                          temperature=cfg.llm.temperature, seed=cfg.llm.seed, system_prompt=SPEED_SYSTEM_PROMPT,
                          history_turns=0)


def _ask(responder: LlamaResponder, question: str) -> str:
    return "".join(responder.respond(question))


def measure_tier(job: TierJob, cfg: AssistantConfig, settings: BenchSettings) -> dict[str, Any]:
    """Load one tier in this (fresh) process and measure it; returns a JSON-ready dict.

    Order: load; warm-up (caches the system prompt, as in the appliance); speed and energy runs, one
    question each; factual questions (greedy, the appliance's system prompt); peak RSS (VmHWM) at
    that point, i.e. of a process that has loaded and used this model and nothing else; then the
    raw C-API model for the prompt speed and the perplexity (loaded after the RSS was read).
    """
    responder = _responder(job, cfg, settings.speed_tokens)
    probe = EnergyProbe(cfg.battery)
    try:
        load_s = responder.load_s
        _ask(responder, WARMUP_QUESTION)
        runs: list[dict[str, Any]] = []
        for question in SPEED_QUESTIONS[: settings.speed_reps]:
            probe.start()
            text = _ask(responder, question)
            span = probe.stop()
            g = responder.last
            runs.append({"question": question, "tokens": g.tokens, "prompt_tokens": g.prompt_tokens,
                         "first_token_s": g.first_token_s, "decode_s": g.decode_s, "tps": g.tps,
                         "words": word_count(text), "joules": span.joules, "seconds": span.seconds,
                         "busy_cores": span.busy_cores, "measured": span.measured, "stop": g.stop})
        tokens = sum(r["tokens"] for r in runs)
        joules = sum(r["joules"] for r in runs)
        words = sum(r["words"] for r in runs)
        usable_j = cfg.battery.usable_wh * 3600.0
        energy = {
            "source": probe.source, "measured": all(r["measured"] for r in runs),
            "tokens": tokens, "joules": joules, "words": words, "seconds": sum(r["seconds"] for r in runs),
            "tpj": ratio(tokens, joules), "words_per_token": ratio(words, tokens),
            "usable_pack_j": usable_j, "wbl": ratio(words * usable_j, joules),
            "mean_w": ratio(joules, sum(r["seconds"] for r in runs)),
            "definition": "tokens generated / pack energy of the whole reply (uncached prompt + generation); "
                          "W/BL = words x usable pack energy / that energy",
        }
        qa = _factual(responder, cfg, settings)
        rss = peak_rss_mb()
    finally:
        responder.close()
        probe.close()
    prompt, ppl = _raw_measures(job, settings)
    return {
        "name": job.name, "quant": job.quant, "model": str(job.model), "threads": job.threads, "n_ctx": job.n_ctx,
        "load_s": load_s,
        "gen_tps": median([r["tps"] for r in runs if r["tps"] is not None]),
        "first_token_s": median([r["first_token_s"] for r in runs if r["first_token_s"] is not None]),
        "speed_runs": runs, "energy": energy, "peak_rss_mb": rss,
        "rss_note": "VmHWM of a fresh process that loaded and used only this model (llama-cpp-python + numpy)",
        **prompt, "quality": {**qa, **ppl},
    }


def _factual(responder: LlamaResponder, cfg: AssistantConfig, settings: BenchSettings) -> dict[str, Any]:
    questions = factual_questions()
    if settings.qa_questions:
        questions = questions[: settings.qa_questions]
    responder.system_prompt = cfg.llm.system_prompt
    responder.temperature = 0.0
    responder.max_tokens = QA_MAX_TOKENS
    answers: list[dict[str, Any]] = []
    for fq in questions:
        reply = _ask(responder, fq.question)
        answers.append({"question": fq.question, "reply": reply, "correct": fq.is_answered_by(reply),
                        "tokens": responder.last.tokens})
    right = sum(a["correct"] for a in answers)
    return {"qa_asked": len(answers), "qa_correct": right, "qa_share": ratio(right, len(answers)),
            "qa_method": "greedy reply to each question with the appliance's system prompt; right when an "
                         "accepted answer appears in it as a whole word, any case", "qa_answers": answers}


def _raw_measures(job: TierJob, settings: BenchSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    window = settings.ppl_window
    n_ctx = max(window, settings.prompt_tokens)
    with RawLlama(job.model, n_ctx=n_ctx, threads=job.threads, n_batch=n_ctx) as raw:
        tokens = raw.tokenize(heldout_text(), add_bos=False)
        head = tokens[: settings.prompt_tokens]
        times = [raw.eval_prompt(head) for _ in range(2)]
        scored = tokens[: settings.ppl_tokens] if settings.ppl_tokens else tokens
        ppl = perplexity(raw, scored, window=window, stride=settings.ppl_stride)
    prompt = {"prompt_tps": len(head) / min(times), "prompt_tps_tokens": len(head),
              "prompt_note": "held-out tokens evaluated in one batch from an empty cache (llama.cpp C API), best of 2"}
    return prompt, {"perplexity": ppl.value, "ppl_tokens": ppl.tokens, "ppl_windows": ppl.windows,
                    "ppl_window": window, "ppl_stride": settings.ppl_stride, "ppl_text_tokens": len(tokens),
                    "ppl_method": PERPLEXITY_METHOD}


def measure_overhead(job: TierJob, cfg: AssistantConfig, settings: BenchSettings) -> dict[str, Any]:
    """Our responder's generation speed against a raw llama.cpp greedy loop: same model, threads and prompt tokens.

    Runs alternate (ours, raw, ours greedy; then the next round) so that drift in the machine's
    load falls on both alike; each raw run samples as many tokens as the configured run before it
    generated, and speeds are measured the same way (first to last token).
    """
    question = SPEED_QUESTIONS[0]
    responder = _responder(job, cfg, settings.speed_tokens)
    try:
        with RawLlama(job.model, n_ctx=job.n_ctx, threads=job.threads) as raw:
            prompt = responder.prompt_tokens(question)
            _ask(responder, WARMUP_QUESTION)
            raw.greedy(prompt, 8)
            ours: list[float] = []
            greedy: list[float] = []
            raws: list[float] = []
            counts: list[int] = []
            for _ in range(settings.overhead_reps):
                responder.temperature = cfg.llm.temperature
                _ask(responder, question)
                g = responder.last
                counts.append(g.tokens)
                if g.tps is not None:
                    ours.append(g.tps)
                run = raw.greedy(prompt, max(2, g.tokens))
                if run.tps is not None:
                    raws.append(run.tps)
                responder.temperature = 0.0
                _ask(responder, question)
                if responder.last.tps is not None:
                    greedy.append(responder.last.tps)
    finally:
        responder.close()
    ours_m, raw_m, greedy_m = median(ours), median(raws), median(greedy)
    return {
        "tier": job.name, "model": str(job.model), "threads": job.threads, "prompt_tokens": len(prompt),
        "tokens": counts, "ours_tps": ours, "ours_greedy_tps": greedy, "raw_tps": raws,
        "ours_tps_median": ours_m, "ours_greedy_tps_median": greedy_m, "raw_tps_median": raw_m,
        "ratio": ratio(ours_m, raw_m), "greedy_ratio": ratio(greedy_m, raw_m),
        "ours_sampler": f"llama-cpp-python generate(): temperature {cfg.llm.temperature:g}, top-k 40, top-p 0.95, "
                        "min-p 0.05, repeat penalty 1.1 (the appliance's settings), with detokenizing per token",
        "raw_loop": "llama_batch + llama_decode one token at a time, llama_sampler_chain with the greedy sampler",
    }
