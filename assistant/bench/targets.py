"""The performance targets, checked against one benchmark result: a PASS or MISS line each, with the numbers and why."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

_LOG = logging.getLogger(__name__)

Status = Literal["PASS", "MISS", "NOT CHECKED"]

STREAMING_RATIO = 0.5
"""Streaming end of speech -> first audio must be at most this share of the blocking baseline's."""
ENGINE_RATIO = 0.95
"""Our generation tok/s must be at least this share of a raw llama.cpp loop's."""
ASR_FINAL_S = 0.25
"""Final ASR result at most this long after end of speech (s)."""
IDLE_CPU_PCT = 1.0
"""Idle appliance loop below this share of one core (%)."""
PEAK_RSS_MB = 1000.0
"""Peak resident memory with the largest default tier loaded (MB, 10^6 bytes)."""
TPJ_STEP = 1.03
"""A lower tier counts as cheaper when its TPJ is at least this factor above the tier above (3 %: beyond noise)."""
COLD_WARM_WER = 0.03
"""The first utterance after a start may have a word error rate at most this much above a warm recogniser's."""
PIPER_COLD_WER = 0.22
"""Piper-spoken questions in three WAV formats, each file after a fresh start: highest word error rate."""
PEOPLE_READ_COLD_WER = 0.25
"""People's read speech, each file after a fresh start: highest word error rate."""
ANSWER_SHARE_POINTS = 10.0
"""Spoken factual questions answered right: at most this many points below the same questions typed."""


@dataclass(frozen=True)
class Verdict:
    """One target, checked."""

    target: str
    status: Status
    detail: str
    """Our figure against the limit, or why it could not be checked."""


def _f(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def streaming_target(e2e: dict[str, Any] | None) -> Verdict:
    name = f"streaming first audio <= {STREAMING_RATIO:g} x blocking (replies of 3+ sentences)"
    if not e2e or "error" in e2e:
        return Verdict(name, "NOT CHECKED", (e2e or {}).get("error", "the end-to-end run was skipped"))
    long = e2e["long_replies"]
    if not long["pairs"] or long["ratio_median"] is None:
        return Verdict(name, "NOT CHECKED", f"no reply had {long['min_sentences']} sentences or more")
    r = long["ratio_median"]
    s, b = long["streaming"], long["blocking"]
    detail = (f"median {_f(s['first_audio_median_s'])} s vs {_f(b['first_audio_median_s'])} s = {r:.2f} x "
              f"(p95 {_f(s['first_audio_p95_s'])} vs {_f(b['first_audio_p95_s'])} s = {_f(long['ratio_p95'])} x), "
              f"{long['pairs']} pairs")
    return Verdict(name, "PASS" if r <= STREAMING_RATIO else "MISS", detail)


def engine_target(overhead: dict[str, Any] | None) -> Verdict:
    name = f"our generation tok/s >= {ENGINE_RATIO:g} x raw llama.cpp"
    if not overhead or "error" in overhead or overhead.get("ratio") is None:
        return Verdict(name, "NOT CHECKED", (overhead or {}).get("error", "the engine comparison was skipped"))
    r = overhead["ratio"]
    detail = (f"median {overhead['ours_tps_median']:.1f} vs {overhead['raw_tps_median']:.1f} tok/s, paired ratio "
              f"{r:.3f} x "
              f"({overhead['tier']}, {overhead['threads']} threads); "
              f"ours greedy {_f(overhead['greedy_ratio'], '.3f')} x; "
              f"against raw with our sampler chain {_f(overhead['same_sampler_ratio'], '.3f')} x")
    return Verdict(name, "PASS" if r >= ENGINE_RATIO else "MISS", detail)


def asr_target(speech: dict[str, Any] | None) -> Verdict:
    name = f"ASR final result <= {ASR_FINAL_S:g} s after end of speech (streaming)"
    engines = [e for e in (speech or {}).get("asr", []) if "error" not in e and e.get("english")]
    if not engines:
        return Verdict(name, "NOT CHECKED", "no English recogniser was measured")
    parts = [f"{e['engine']}: median {_f(e['final_latency_median_s'], '.3f')} s, p95 "
             f"{_f(e['final_latency_p95_s'], '.3f')} s" for e in engines]
    ok = all(e["final_latency_median_s"] is not None and e["final_latency_median_s"] <= ASR_FINAL_S for e in engines)
    paced = all("microphone pace" in e["latency_method"] for e in engines)
    return Verdict(name, "PASS" if ok else "MISS",
                   "; ".join(parts) + ("" if paced else " (audio fed fast, not paced)"))


def idle_targets(idle: dict[str, Any] | None) -> list[Verdict]:
    cpu_name = f"idle appliance loop < {IDLE_CPU_PCT:g} % of one core"
    rss_name = f"peak RSS with the largest default tier <= {PEAK_RSS_MB / 1000:g} GB"
    if not idle or "error" in idle:
        why = (idle or {}).get("error", "the idle measurement was skipped")
        return [Verdict(cpu_name, "NOT CHECKED", why), Verdict(rss_name, "NOT CHECKED", why)]
    cpu = idle["cpu_pct_of_one_core"]
    rss = idle["peak_rss_mb"]
    return [
        Verdict(cpu_name, "PASS" if cpu < IDLE_CPU_PCT else "MISS",
                f"{cpu:.2f} % over {idle['window_s']:.0f} s ({idle['command']}, tier {idle['tier']})"),
        Verdict(rss_name, "NOT CHECKED" if rss is None else "PASS" if rss <= PEAK_RSS_MB else "MISS",
                f"{_f(rss, '.0f')} MB (VmHWM of the appliance with tier {idle['tier']}, ASR and voice loaded)"),
    ]


def tier_findings(tiers: list[dict[str, Any]]) -> list[str]:
    """One plain sentence per lower tier: whether it is cheaper than the tier above, and if not, why."""
    ok = [t for t in tiers if "error" not in t and t["energy"].get("gen_tpj")]
    out: list[str] = []
    for above, t in zip(ok, ok[1:]):
        gain = t["energy"]["gen_tpj"] / above["energy"]["gen_tpj"]
        if gain >= TPJ_STEP:
            rel = t["quality"].get("perplexity_rel")
            cost = "" if rel is None else f", at perplexity {rel:.2f} x the top tier's"
            out.append(f"{t['name']} earns its place: TPJ {t['energy']['gen_tpj']:.2f} is {100 * (gain - 1):.0f} % "
                       f"above {above['name']}'s {above['energy']['gen_tpj']:.2f}{cost}.")
            continue
        why: list[str] = []
        bpw, bpw_above = t["bits_per_weight"], above["bits_per_weight"]
        if t["type_mismatch"]:
            why.append(f"most of its weights are {t['dominant_type']}, not {t['quant']}: the model's widths do not fit "
                       f"{t['quant']}'s blocks, so llama.cpp fell back ({bpw:.2f} vs {bpw_above:.2f} real bits per "
                       "weight)")
        elif bpw >= 0.9 * bpw_above:
            why.append(f"its weights are barely smaller ({bpw:.2f} vs {bpw_above:.2f} real bits per weight)")
        tps, tps_above = t.get("gen_tps") or 0.0, above.get("gen_tps") or 0.0
        if tps <= tps_above:
            why.append(f"its {t['dominant_type']} weights decode no faster here than {above['dominant_type']}: "
                       f"{tps:.0f} vs {tps_above:.0f} tok/s")
        elif tps < TPJ_STEP * tps_above:
            why.append(f"it decodes hardly faster ({tps:.0f} vs {tps_above:.0f} tok/s): fewer bytes per weight buy "
                       "little speed for a model this small on this CPU")
        elif not why:
            why.append("the difference is within the run-to-run noise of this machine")
        rel = t["quality"].get("perplexity_rel")
        if rel is not None:
            why.append(f"perplexity {rel:.2f} x the top tier's")
        fix = (" Fix: build the ladder from an F16/BF16 source of a model whose widths are multiples of 256, "
               "or drop this tier." if t["type_mismatch"] else " Fix: drop this tier or choose a lower type.")
        tpj, tpj_above = t["energy"]["gen_tpj"], above["energy"]["gen_tpj"]
        out.append(f"{t['name']} does NOT earn its place: TPJ {tpj:.2f} vs {above['name']}'s {tpj_above:.2f} "
                   f"({100 * (gain - 1):+.0f} %); " + "; ".join(why) + "." + fix)
    return out


def ladder_target(tiers: list[dict[str, Any]]) -> Verdict:
    name = f"generation TPJ rises down the ladder (each tier >= {100 * (TPJ_STEP - 1):.0f} % above the tier above)"
    ok = [t for t in tiers if "error" not in t and t["energy"].get("gen_tpj")]
    if len(ok) < 2:
        return Verdict(name, "NOT CHECKED", "fewer than two tiers were measured")
    findings = tier_findings(tiers)
    bad = [f for f in findings if "does NOT" in f]
    chain = " -> ".join(f"{t['name']} {t['energy']['gen_tpj']:.2f}" for t in ok)
    return Verdict(name, "MISS" if bad else "PASS", f"TPJ {chain}" + ("" if not bad else f"; {len(bad)} tier(s) "
                                                                        "do not earn their place (see below)"))


def _english_accuracy(speech: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [a for a in (speech or {}).get("accuracy", []) if "error" not in a and a.get("english")]


def cold_warm_target(speech: dict[str, Any] | None) -> Verdict:
    name = (f"cold WER (first utterance after a start: a file, or the microphone from the saved state) within "
            f"{COLD_WARM_WER:g} of warm, every set")
    engines = _english_accuracy(speech)
    if not engines:
        return Verdict(name, "NOT CHECKED", "no English recogniser's accuracy was measured")
    parts, ok = [], True
    for e in engines:
        for set_name, row in e["sets"].items():
            w = row["wer"]
            gap = max(w["cold_file"] - w["warm_stream"], w["cold_stream_saved"] - w["warm_stream"])
            ok = ok and gap <= COLD_WARM_WER
            parts.append(f"{e['engine']} {set_name}: file {w['cold_file']:.2f}, stream from saved "
                         f"{w['cold_stream_saved']:.2f}, warm {w['warm_stream']:.2f} (prior only "
                         f"{w['cold_stream_prior']:.2f})")
    return Verdict(name, "PASS" if ok else "MISS", "; ".join(parts))


def _cold_file(speech: dict[str, Any] | None, set_name: str, kind: str | None) -> list[tuple[str, float]]:
    out = []
    for e in _english_accuracy(speech):
        row = e["sets"].get(set_name)
        if row is None:
            continue
        wer = row["wer"]["cold_file"] if kind is None else row.get("wer_by_kind", {}).get(kind, {}).get("cold_file")
        if wer is not None:
            out.append((e["engine"], wer))
    return out


def _cold_target(name: str, speech: dict[str, Any] | None, which: str, kind: str | None, limit: float,
                 unmeasured: str) -> Verdict:
    found = _cold_file(speech, which, kind)
    if not found:
        return Verdict(name, "NOT CHECKED", unmeasured)
    return Verdict(name, "PASS" if all(w <= limit for _, w in found) else "MISS",
                   "; ".join(f"{e}: {w:.3f}" for e, w in found))


def piper_cold_target(speech: dict[str, Any] | None) -> Verdict:
    return _cold_target(f"Piper-spoken questions in three WAV formats, cold (a file after a fresh start): WER <= "
                        f"{PIPER_COLD_WER:g}", speech, "piper", None, PIPER_COLD_WER, "the Piper set was not measured")


def people_cold_target(speech: dict[str, Any] | None) -> Verdict:
    return _cold_target(f"people's read speech, cold (a file after a fresh start): WER <= {PEOPLE_READ_COLD_WER:g}",
                        speech, "people", "read speech", PEOPLE_READ_COLD_WER,
                        "no recordings of people's read speech were measured")


def answer_share_target(speech: dict[str, Any] | None) -> Verdict:
    name = f"spoken factual questions answered right within {ANSWER_SHARE_POINTS:g} points of the same typed"
    a = (speech or {}).get("answers")
    if not a or "error" in a or not a.get("questions"):
        return Verdict(name, "NOT CHECKED", (a or {}).get("error", "the answer share was not measured"))
    sh = a["share"]
    gap = 100.0 * (sh["text"] - sh["spoken"])
    detail = (f"spoken {100 * sh['spoken']:.0f} % vs typed {100 * sh['text']:.0f} % of {a['questions']} "
              f"({a['asr']}, tier {a['tier']}); the transcript as heard {100 * sh['spoken_raw']:.0f} %, typed in "
              f"lower case {100 * sh['text_lower']:.0f} %, that written as a question {100 * sh['text_normalised']:.0f} %")
    return Verdict(name, "PASS" if gap <= ANSWER_SHARE_POINTS else "MISS", detail)


def check_all(result: dict[str, Any]) -> list[Verdict]:
    """Every target against one benchmark result."""
    return [
        cold_warm_target(result.get("speech")),
        piper_cold_target(result.get("speech")),
        people_cold_target(result.get("speech")),
        answer_share_target(result.get("speech")),
        streaming_target(result.get("e2e")),
        engine_target(result.get("engine_overhead")),
        asr_target(result.get("speech")),
        *idle_targets(result.get("idle")),
        ladder_target(result.get("tiers", [])),
    ]


def verdicts_json(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    """JSON form."""
    return [asdict(v) for v in verdicts]
