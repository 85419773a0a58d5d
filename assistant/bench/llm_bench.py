"""LLM measurements run in a fresh worker process: one tier's speed, energy, memory and quality; engine overhead."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.bench.energy_probe import EnergyProbe
from assistant.bench.machine import CONTENDED_CORES, CpuWatch, peak_rss_mb
from assistant.stats import median, ratio
from assistant.bench.quality import PERPLEXITY_METHOD, factual_questions, heldout_text, perplexity
from assistant.bench.raw_llama import RawLlama
from assistant.bench.settings import QA_MAX_TOKENS, SPEED_QUESTIONS, SPEED_SYSTEM_PROMPT, BenchSettings
from assistant.config import AssistantConfig
from assistant.models.twin import twin_info
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
    A speed twin (random weights) gets no quality measures, and its words are its tokens x the
    words per token its metadata gives, labelled estimated.
    """
    twin = twin_info(job.model)
    responder = _responder(job, cfg, settings.speed_tokens)
    probe = EnergyProbe(cfg.battery)
    try:
        load_s = responder.load_s
        _ask(responder, WARMUP_QUESTION)
        budget = [settings.retries]
        runs = [_speed_run(responder, probe, q, budget) for q in SPEED_QUESTIONS[: settings.speed_reps]]
        if twin is not None:
            for r in runs:
                r["words"] = round(r["tokens"] * twin.words_per_token)
        tokens = sum(r["tokens"] for r in runs)
        joules = sum(r["joules"] for r in runs)
        words = sum(r["words"] for r in runs)
        usable_j = cfg.battery.usable_wh * 3600.0
        gen_tokens = sum(max(0, r["tokens"] - 1) for r in runs)
        gen_joules = sum(r["joules"] * r["decode_s"] / r["seconds"] for r in runs if r["seconds"] > 0)
        gen_cpu_s = sum(r["cpu_s"] * r["decode_s"] / r["seconds"] for r in runs if r["seconds"] > 0)
        energy = {
            "source": probe.source, "measured": all(r["measured"] for r in runs),
            "tokens": tokens, "joules": joules, "words": words, "seconds": sum(r["seconds"] for r in runs),
            "tpj": ratio(tokens, joules), "gen_tokens": gen_tokens, "gen_joules": gen_joules,
            "gen_tpj": ratio(gen_tokens, gen_joules), "words_per_token": ratio(words, tokens),
            "usable_pack_j": usable_j, "wbl": ratio(words * usable_j, joules),
            "mean_w": ratio(joules, sum(r["seconds"] for r in runs)),
            "words_estimated": twin.words_estimate() if twin is not None else None,
            "definition": "gen_tpj (the ladder's figure, as the study's): tokens after the first / energy from the "
                          "first to the last token (each run's mean power x its decode time); tpj: tokens / energy "
                          "of the whole reply (uncached prompt too); W/BL = words x usable pack energy / energy of "
                          "the whole reply",
        }
        qa = _factual(responder, cfg, settings) if twin is None else None
        rss = peak_rss_mb()
    finally:
        responder.close()
        probe.close()
    prompt, ppl = _raw_measures(job, settings, perplexity_too=twin is None)
    if twin is not None:
        quality = {"none": twin.label}
    else:
        quality = {**(qa or {}), **ppl}
    return {
        "name": job.name, "quant": job.quant, "model": str(job.model), "threads": job.threads, "n_ctx": job.n_ctx,
        "load_s": load_s,
        "gen_tps": median([r["tps"] for r in runs if r["tps"] is not None]),
        "first_token_s": median([r["first_token_s"] for r in runs if r["first_token_s"] is not None]),
        "contended_runs": sum(r["contended"] for r in runs), "retried_runs": sum(r["attempts"] > 1 for r in runs),
        "gen_cpu_ms_per_token": ratio(1000 * gen_cpu_s, gen_tokens),
        "cpu_note": "process CPU time (all threads) from the first to the last token, per token after the first: "
                    "what the simulated pack's power model is driven by, steadier than tok/s on a shared machine",
        "speed_runs": runs, "energy": energy, "peak_rss_mb": rss,
        "rss_note": "VmHWM of a fresh process that loaded and used only this model (llama-cpp-python + numpy)",
        **prompt, "quality": quality, "twin": twin.label if twin is not None else None,
        "shapes_of": twin.shapes_of if twin is not None else None,
    }


def _speed_run(responder: LlamaResponder, probe: EnergyProbe, question: str, budget: list[int]) -> dict[str, Any]:
    """One reply timed and metered; tried again while other processes disturb it and ``budget[0]`` retries are left."""
    attempt = 0
    while True:
        attempt += 1
        if attempt > 1:  # push the question out of the KV cache, so the retry evaluates it again like the first try
            _ask(responder, WARMUP_QUESTION)
        watch = CpuWatch()
        watch.start()
        probe.start()
        cpu0 = time.process_time()
        text = _ask(responder, question)
        cpu_s = time.process_time() - cpu0
        span = probe.stop()
        others = watch.others_cores()
        g = responder.last
        run = {"question": question, "tokens": g.tokens, "prompt_tokens": g.prompt_tokens,
               "first_token_s": g.first_token_s, "decode_s": g.decode_s, "tps": g.tps, "words": word_count(text),
               "joules": span.joules, "seconds": span.seconds, "busy_cores": span.busy_cores, "cpu_s": cpu_s,
               "measured": span.measured, "stop": g.stop, "others_cores": others,
               "contended": others > CONTENDED_CORES, "attempts": attempt}
        if not run["contended"] or budget[0] <= 0:
            return run
        budget[0] -= 1
        _LOG.warning("speed run disturbed by other processes (%.2f cores busy elsewhere); trying again", others)


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


def _raw_measures(job: TierJob, settings: BenchSettings, *,
                  perplexity_too: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    window = settings.ppl_window
    n_ctx = max(window, settings.prompt_tokens)
    with RawLlama(job.model, n_ctx=n_ctx, threads=job.threads, n_batch=n_ctx) as raw:
        tokens = raw.tokenize(heldout_text(), add_bos=False)
        head = tokens[: settings.prompt_tokens]
        times = [raw.eval_prompt(head) for _ in range(3)]
        scored = tokens[: settings.ppl_tokens] if settings.ppl_tokens else tokens
        ppl = perplexity(raw, scored, window=window, stride=settings.ppl_stride) if perplexity_too else None
    prompt = {"prompt_tps": len(head) / min(times), "prompt_tps_tokens": len(head),
              "prompt_note": "held-out tokens evaluated in one batch from an empty cache (llama.cpp C API), best of 3"}
    if ppl is None:
        return prompt, {}
    return prompt, {"perplexity": ppl.value, "ppl_tokens": ppl.tokens, "ppl_windows": ppl.windows,
                    "ppl_window": window, "ppl_stride": settings.ppl_stride, "ppl_text_tokens": len(tokens),
                    "ppl_method": PERPLEXITY_METHOD}


def measure_overhead(job: TierJob, cfg: AssistantConfig, settings: BenchSettings) -> dict[str, Any]:
    """Our responder's generation speed against raw llama.cpp loops: same model, threads and prompt tokens.

    Each round runs, back to back: our responder as configured; the raw loop with the greedy
    sampler; the raw loop with the same sampler chain as ours; our responder greedy. Each raw run
    samples as many tokens as the configured run of its round generated, and every speed is
    measured the same way (first to last token). A run that other processes disturbed is run again
    (at most ``settings.retries`` times per variant). Each ratio is the median over the rounds of
    the ratio within a round, so that slow drift in the machine's speed falls on both sides alike.
    """
    question = SPEED_QUESTIONS[0]
    responder = _responder(job, cfg, settings.speed_tokens)
    series: dict[str, list[float | None]] = {"ours": [], "raw": [], "raw_same_sampler": [], "ours_greedy": []}
    budget = {key: settings.retries for key in series}
    counts: list[int] = []
    disturbed = 0
    try:
        with RawLlama(job.model, n_ctx=job.n_ctx, threads=job.threads) as raw:
            prompt = responder.prompt_tokens(question)
            _ask(responder, WARMUP_QUESTION)
            raw.greedy(prompt, 8)
            variants: dict[str, Callable[[int], tuple[int, float | None]]] = {
                "ours": lambda n: _ours(responder, question, cfg.llm.temperature),
                "raw": lambda n: (n, raw.greedy(prompt, n).tps),
                "raw_same_sampler": lambda n: (n, raw.sampled(prompt, n, temperature=cfg.llm.temperature,
                                                              seed=cfg.llm.seed).tps),
                "ours_greedy": lambda n: _ours(responder, question, 0.0),
            }
            for _ in range(settings.overhead_reps):
                n = settings.speed_tokens
                for key, run in variants.items():
                    while True:
                        watch = CpuWatch()
                        watch.start()
                        made, tps = run(n)
                        busy = watch.others_cores() > CONTENDED_CORES
                        if not busy or budget[key] <= 0:
                            break
                        budget[key] -= 1
                    disturbed += busy
                    if key == "ours":
                        n = max(2, made)
                        counts.append(made)
                    series[key].append(tps)
    finally:
        responder.close()

    def paired(a: str, b: str) -> float | None:
        return median([x / y for x, y in zip(series[a], series[b]) if x is not None and y])

    return {
        "tier": job.name, "model": str(job.model), "threads": job.threads, "prompt_tokens": len(prompt),
        "tokens": counts, "disturbed_runs": disturbed, **{f"{k}_tps": v for k, v in series.items()},
        **{f"{k}_tps_median": median([x for x in v if x is not None]) for k, v in series.items()},
        "ratio": paired("ours", "raw"), "greedy_ratio": paired("ours_greedy", "raw"),
        "same_sampler_ratio": paired("ours", "raw_same_sampler"),
        "sampler_cost_ratio": paired("raw_same_sampler", "raw"),
        "ratio_method": "median over the rounds of the ratio within each round",
        "ours_sampler": f"temperature {cfg.llm.temperature:g}, top-k 40, top-p 0.95, min-p 0.05, repeat penalty 1.1 "
                        "(the appliance's settings) through llama-cpp-python generate(), detokenized per token",
        "raw_loop": "llama_batch + llama_decode one token at a time, sampled by a llama_sampler_chain (greedy, or the "
                    "same chain as ours)",
    }


def _ours(responder: LlamaResponder, question: str, temperature: float) -> tuple[int, float | None]:
    responder.temperature = temperature
    _ask(responder, question)
    return responder.last.tokens, responder.last.tps
