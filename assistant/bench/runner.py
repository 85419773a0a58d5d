"""The whole benchmark in one call: tiers (a fresh process each), engine overhead, speech, end to end, idle."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.bench.answer_share import measure_answers
from assistant.bench.asr_accuracy import measure_accuracy, people_recordings, piper_formats
from assistant.bench.e2e_bench import measure_e2e
from assistant.bench.idle_bench import measure_idle
from assistant.bench.llm_bench import TierJob, resolve_threads
from assistant.bench.quality import factual_questions
from assistant.bench.machine import CpuWatch, load_average, machine_facts
from assistant.bench.published import COMPARE_MODEL, published_json, study_row
from assistant.bench.settings import E2E_QUESTIONS, E2E_SYSTEM_PROMPT, QA_MAX_TOKENS, BenchSettings
from assistant.bench.speech_bench import AsrEngine, TTS_TEXTS, installed_engines, measure_asr, measure_tts, speak_questions
from assistant.bench.targets import check_all, ladder_target, tier_findings, verdicts_json
from assistant.bench.worker import config_to_mapping, spawn, tier_to_mapping
from assistant.config import AssistantConfig
from assistant.errors import AssistantError
from assistant.models.gguf_info import read_gguf_info
from assistant.stats import ratio
from assistant.models.ladder import expected_tensor_type
from assistant.models.tier_ladder import unavailable_tiers
from assistant.models.twin import LABEL as TWIN_LABEL
from assistant.models.twin import twin_ladder
from assistant.power.tiers import Tier, TierConfig
from assistant.session import ladder_for
from assistant.speech.engines import open_asr, open_synthesizer
from assistant.speech.asr import Transcriber
from assistant.speech.llm import LlamaResponder

_LOG = logging.getLogger(__name__)

SCHEMA = 1
"""Version of the JSON layout."""

Progress = Callable[[str], None]


def _job(kind: str, tier: Tier, cfg: AssistantConfig, settings: BenchSettings) -> dict[str, Any]:
    assert tier.model is not None
    tj = TierJob(tier.name, tier.model, tier.quant, tier.n_ctx, resolve_threads(tier.threads, cfg))
    return {"kind": kind, "config": config_to_mapping(cfg), "settings": dataclasses.asdict(settings),
            "tier": tier_to_mapping(tj)}


def _file_facts(tier: Tier) -> dict[str, Any]:
    assert tier.model is not None
    info = read_gguf_info(tier.model)
    return {"file_mb": info.size_mb, "bits_per_weight": info.bits_per_weight, "dominant_type": info.dominant_type,
            "tensor_types": info.type_summary(), "parameters": info.parameters,
            "type_mismatch": info.dominant_type.upper() != expected_tensor_type(tier.quant)}


def bench_tiers(cfg: AssistantConfig, tiers: TierConfig, settings: BenchSettings,
                progress: Progress) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every available LLM tier, richest first; returns (measured, missing)."""
    missing_names = unavailable_tiers(tiers)
    measured: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for tier in (t for t in tiers.tiers if t.kind == "llm"):
        if tier.name in missing_names:
            missing.append({"name": tier.name, "quant": tier.quant, "model": str(tier.model),
                            "hint": "build it with `assistant models build-ladder`"})
            continue
        progress(f"tier {tier.name}: {tier.model.name if tier.model else '-'}")
        try:
            row = {**_file_facts(tier), **spawn(_job("tier", tier, cfg, settings), timeout_s=1800)}
        except AssistantError as exc:
            _LOG.error("tier %s could not be measured: %s", tier.name, exc)
            row = {"name": tier.name, "quant": tier.quant, "model": str(tier.model), "error": str(exc)}
        measured.append(row)
    _relative_quality(measured)
    for row in measured:
        pub = study_row(row["quant"])
        row["published"] = None if pub is None else {**dataclasses.asdict(pub), "label": f"LLMPi {COMPARE_MODEL}, Pi 5"}
    return measured, missing


def _relative_quality(rows: list[dict[str, Any]]) -> None:
    """Perplexity and factual share of each tier relative to the first (top) tier measured."""
    ok = [r for r in rows if "error" not in r and "perplexity" in r["quality"]]  # a speed twin has no quality
    if not ok:
        return
    top = ok[0]["quality"]
    for r in ok:
        q = r["quality"]
        q["reference_tier"] = ok[0]["name"]
        q["perplexity_rel"] = ratio(q["perplexity"], top["perplexity"])
        q["qa_share_rel"] = ratio(q["qa_share"], top["qa_share"])


def _guard(name: str, progress: Progress, fn: Callable[[], Any]) -> Any:
    progress(name)
    try:
        return fn()
    except AssistantError as exc:
        _LOG.error("%s failed: %s", name, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def bench_speech_and_e2e(cfg: AssistantConfig, top: Tier | None, settings: BenchSettings,
                         progress: Progress) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """ASR engines, TTS, then streaming against blocking on the top tier; the voice is loaded once."""
    synth = open_synthesizer(cfg)
    try:
        block_s = cfg.mic.block_ms / 1000.0
        n_q = max(settings.asr_questions, settings.e2e_questions)
        spoken = speak_questions(synth, E2E_QUESTIONS[:n_q], cfg.asr.rate)
        asr = [_guard(f"ASR {e.label}", progress, functools.partial(
                   measure_asr, e, spoken[: settings.asr_questions], block_s=block_s, pace=settings.pace_audio))
               for e in installed_engines(cfg, include_vosk=settings.include_vosk)]
        tts = _guard("TTS", progress, lambda: measure_tts(synth, TTS_TEXTS[: settings.tts_texts]))
        facts = factual_questions()
        n_facts = max(settings.accuracy_questions, settings.answer_questions or len(facts))
        facts_spoken = speak_questions(synth, [f.question for f in facts[:n_facts]], cfg.asr.rate)
        people = people_recordings()
        if settings.people_recordings:
            people = people[: settings.people_recordings]
        sets = {"piper": piper_formats(facts_spoken[: settings.accuracy_questions]), "people": people}
        accuracy = [_guard(f"ASR accuracy, cold and warm: {e.label}", progress, functools.partial(
                        measure_accuracy, e, _state_opener(e), sets,
                        rate=cfg.asr.rate, block_s=block_s))
                    for e in installed_engines(cfg, include_vosk=settings.include_vosk)]
        speech = {"asr": asr, "tts": tts, "questions_spoken_by": synth.voice_name, "accuracy": accuracy}
        if top is not None and top.model is not None:
            speech["answers"] = _guard(f"spoken against typed questions on tier {top.name}", progress,
                                       lambda: _answers(cfg, top, facts, facts_spoken, settings, block_s))
        if top is None or top.model is None or not settings.e2e_questions:
            return speech, None

        def e2e() -> dict[str, Any]:
            assert top is not None and top.model is not None
            watch = CpuWatch()
            watch.start()
            transcriber = open_asr(cfg)
            responder = LlamaResponder(top.model, n_ctx=top.n_ctx, threads=resolve_threads(top.threads, cfg),
                                       max_tokens=settings.e2e_max_tokens, temperature=cfg.llm.temperature,
                                       seed=cfg.llm.seed, system_prompt=E2E_SYSTEM_PROMPT, history_turns=0)
            try:
                "".join(responder.respond("Hello."))  # warm-up, caches the system prompt as the appliance does
                found = measure_e2e(transcriber, responder, synth, spoken[: settings.e2e_questions],
                                    reps=settings.e2e_reps, block_s=block_s, pace=settings.pace_audio,
                                    first_clause_words=cfg.tts.first_clause_words)
                return {"tier": top.name, "others_cores": watch.others_cores(), **found}
            finally:
                responder.close()
                transcriber.close()

        return speech, _guard(f"end to end on tier {top.name}", progress, e2e)
    finally:
        synth.close()


def _answers(cfg: AssistantConfig, top: Tier, facts: list[Any], spoken: list[Any], settings: BenchSettings,
             block_s: float) -> dict[str, Any]:
    """The answer share of spoken and typed factual questions on the top tier (pocketsphinx hears them)."""
    from assistant.speech.sphinx_asr import SphinxTranscriber

    assert top.model is not None
    n = settings.answer_questions or len(facts)
    transcriber = SphinxTranscriber(rate=cfg.asr.rate)
    responder = LlamaResponder(top.model, n_ctx=top.n_ctx, threads=resolve_threads(top.threads, cfg),
                               max_tokens=QA_MAX_TOKENS, temperature=cfg.llm.temperature, seed=cfg.llm.seed,
                               system_prompt=cfg.llm.system_prompt, history_turns=0)
    try:
        return {"tier": top.name, **measure_answers(responder, transcriber, facts[:n], spoken[:n], block_s=block_s)}
    finally:
        responder.close()
        transcriber.close()


def bench_twin(cfg: AssistantConfig, ladder: TierConfig, settings: BenchSettings, progress: Progress) -> dict[str, Any]:
    """The speed twin's ladder, tier by tier as the real one (speed, CPU per token, TPJ, RSS; no quality)."""
    measured, missing = bench_tiers(cfg, ladder, settings, progress)
    shapes = next((r.get("shapes_of") for r in measured if r.get("shapes_of")), None)
    return {"label": TWIN_LABEL, "shapes_of": shapes, "tiers": measured, "missing_tiers": missing,
            "findings": tier_findings(measured), "ladder": ladder_target(measured).detail,
            "words": next((r["energy"]["words_estimated"] for r in measured if "error" not in r), None)}


def run_bench(cfg: AssistantConfig, settings: BenchSettings, *, tiers: TierConfig | None = None,
              twin: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Run every part of the benchmark and return the result (see ``SCHEMA``); parts that fail say so in place.

    ``tiers`` replaces the configured ladder (default: ``tiers`` of the config, else the built-in
    ladder over the embedded model and the files ``models build-ladder`` wrote). With ``twin`` the
    speed twin's ladder (``models make-twin``) is measured too, beside the real one, under ``twin``.
    """
    say = progress or (lambda msg: _LOG.info("bench: %s", msg))
    t0 = time.monotonic()
    twin_tiers = twin_ladder(cfg.paths.models_dir) if twin else None  # no twin: fail before the long part
    if tiers is not None:
        cfg = dataclasses.replace(cfg, tiers=tiers)  # the idle appliance then runs this ladder too
    ladder = ladder_for(cfg)
    facts = machine_facts()
    measured, missing = bench_tiers(cfg, ladder, settings, say)
    twin_result = bench_twin(cfg, twin_tiers, settings, say) if twin_tiers is not None else None
    ok = [r for r in measured if "error" not in r]
    top = next((t for t in ladder.tiers if ok and t.name == ok[0]["name"]), None)
    overhead = None
    if top is not None:
        overhead = _guard(f"engine overhead on tier {top.name}", say,
                          lambda: spawn(_job("overhead", top, cfg, settings), timeout_s=900))
    speech, e2e = bench_speech_and_e2e(cfg, top, settings, say)
    idle = None
    if settings.idle_s > 0:
        idle = _guard(f"idle appliance for {settings.idle_s:g} s", say,
                      lambda: measure_idle(cfg, seconds=settings.idle_s))
    facts["load_average_end"] = load_average()
    energy_source = next((r["energy"]["source"] for r in ok), None)
    result: dict[str, Any] = {
        "schema": SCHEMA, "settings": dataclasses.asdict(settings), "machine": facts,
        "labels": {
            "measured_here": "every figure outside 'published' was measured on the machine in 'machine'",
            "energy": energy_source,
            "published": "figures under 'published' (and 'published' inside each tier) are others' Pi measurements",
        },
        "tiers": measured, "missing_tiers": missing, "twin": twin_result,
        "engine_overhead": overhead, "speech": speech, "e2e": e2e,
        "idle": idle, "published": published_json(),
    }
    verdicts = check_all(result)
    result["targets"] = verdicts_json(verdicts)
    result["tier_findings"] = tier_findings(measured)
    result["elapsed_s"] = time.monotonic() - t0
    return result


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None and tuples as lists, so strict JSON can hold it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def _state_opener(engine: AsrEngine) -> Callable[[Path | None], Transcriber]:
    """How the accuracy bench starts ``engine`` with a state directory (engines without one ignore it)."""
    if engine.open_state is not None:
        return engine.open_state

    def fresh(state_dir: Path | None) -> Transcriber:
        return engine.open()

    return fresh
