"""The benchmark result as the plain-text report printed to stdout."""

from __future__ import annotations

import logging
from typing import Any

from assistant.bench.published import COMPARE_MODEL, LLMPI, LLMPI_SOURCE

_LOG = logging.getLogger(__name__)


def _f(x: Any, spec: str = ".2f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


def _k(x: float | None) -> str:
    return "-" if x is None else f"{x / 1000:.0f}k"


def _machine(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    la0, la1 = m.get("load_average_start"), m.get("load_average_end")
    board = f", board {m['board']}" if m.get("board") else ""
    return [
        f"assistant bench ({result['settings']['name']}): measured on THIS machine: {m['machine']}, {m['cores']} "
        f"cores, {m['cpu']}{board}, {_f(m.get('memory_mb'), '.0f')} MB RAM, Python {m['python']}, "
        f"llama-cpp-python {m['packages'].get('llama-cpp-python')}",
        f"load average at start {_f(la0[0] if la0 else None)}, at end {_f(la1[0] if la1 else None)} "
        f"(other work on the machine slows every figure); {result['elapsed_s']:.0f} s in all",
    ]


def _tiers(result: dict[str, Any]) -> list[str]:
    lines = ["", "LLM tiers, richest first (one fresh process each)"] + _tier_table(result["tiers"], quality=True)
    for m in result.get("missing_tiers", []):
        lines.append(f"{m['name']:<8}MISSING: {m['model']} ({m['hint']})")
    ok = [t for t in result["tiers"] if "error" not in t]
    if ok:
        e = ok[0]["energy"]
        lines += [
            "TPJ = generated tokens per joule of pack energy from first to last token, as the study's; W/BL = words "
            f"per usable pack ({e['usable_pack_j'] / 1000:.1f} kJ) at the energy of whole replies (prompt included); "
            "CPU ms/tok = process CPU time (all threads) per generated token, first to last token: steadier than "
            "tok/s on a shared machine, and what the power model turns into energy.",
            f"ENERGY: {e['source']}.",
            f"ppl = perplexity on {ok[0]['quality']['ppl_tokens']} held-out tokens (window "
            f"{ok[0]['quality']['ppl_window']}, stride {ok[0]['quality']['ppl_stride']}); 'ppl x top' relative to "
            f"{ok[0]['name']}; QA = factual questions answered with an accepted keyword (greedy).",
            "The study's W/BL uses its own battery energy (about 7-8 kJ), ours the configured pack: compare TPJ, "
            "not W/BL, across the two; its NUBIA is a different quality score from our perplexity.",
        ]
    for t in ok:
        if t.get("contended_runs"):
            lines.append(f"  ! {t['name']}: {t['contended_runs']} of {len(t['speed_runs'])} speed runs ran while other "
                         "processes kept more than 0.3 cores busy: its speed and TPJ are understated")
    for finding in result.get("tier_findings", []):
        lines.append(f"  * {finding}")
    return lines


def _tier_table(tiers: list[dict[str, Any]], *, quality: bool) -> list[str]:
    """Header and one row per tier: file, speed, CPU per token, memory, energy, quality (when measured), study row."""
    qh = f"{'w/tok':>6}{'ppl':>7}{'ppl x':>6}{'QA':>7}" if quality else f"{'w/tok':>6}"
    qs = f"{'':>6}{'':>7}{'top':>6}{'right':>7}" if quality else f"{'est.':>6}"
    head = (f"{'tier':<8}{'real':<6}{'MB':>6}{'bpw':>6}{'load s':>7}{'prompt':>8}{'gen':>7}{'CPU ms':>7}{'RSS MB':>8}"
            f"{'TPJ':>7}{'W/BL':>7}{qh}  | {'LLMPi ' + COMPARE_MODEL + ' on Pi 5':<27}")
    sub = (f"{'':<8}{'type':<6}{'':>6}{'':>6}{'':>7}{'tok/s':>8}{'tok/s':>7}{'/tok':>7}{'peak':>8}{'':>7}{'':>7}"
           f"{qs}  | {'quant':<6}{'TPS':>6}{'TPJ':>6}{'W/BL':>6}{'NUBIA':>6}")
    lines = [head, sub, "-" * len(head)]
    for t in tiers:
        if "error" in t:
            lines.append(f"{t['name']:<8}ERROR: {t['error']}")
            continue
        e, q, p = t["energy"], t["quality"], t.get("published")
        pub = "" if p is None else (f"{p['quant']:<6}{p['tps']:>6.2f}{p['tpj']:>6.2f}{p['wbl_k']:>5.0f}k"
                                    f"{p['nubia']:>6.2f}")
        cells = f"{_f(e['words_per_token'], '.2f'):>6}"
        if quality:
            cells += (f"{_f(q.get('perplexity'), '.1f'):>7}{_f(q.get('perplexity_rel'), '.2f'):>6}"
                      f"{str(q.get('qa_correct')) + '/' + str(q.get('qa_asked')):>7}")
        lines.append(
            f"{t['name']:<8}{t['dominant_type']:<6}{t['file_mb']:>6.0f}{t['bits_per_weight']:>6.2f}"
            f"{t['load_s']:>7.2f}{_f(t['prompt_tps'], '.0f'):>8}{_f(t['gen_tps'], '.0f'):>7}"
            f"{_f(t.get('gen_cpu_ms_per_token'), '.0f'):>7}{_f(t['peak_rss_mb'], '.0f'):>8}"
            f"{_f(e['gen_tpj'], '.1f'):>7}{_k(e['wbl']):>7}{cells}  | {pub}")
    return lines


def _twin(result: dict[str, Any]) -> list[str]:
    tw = result.get("twin")
    if not tw:
        return []
    lines = ["", f"SPEED TWIN of {tw.get('shapes_of') or '?'} ({tw['label']}), richest first; beside it the study's "
                 "figures for the real model on a Pi 5"] + _tier_table(tw["tiers"], quality=False)
    for m in tw.get("missing_tiers", []):
        lines.append(f"{m['name']:<8}MISSING: {m['model']} ({m['hint']})")
    lines.append(f"Words of the twin are {tw.get('words') or 'estimated'}")
    lines.append(f"Ladder: {tw['ladder']}")
    for t in tw["tiers"]:
        if t.get("contended_runs"):
            lines.append(f"  ! {t['name']}: {t['contended_runs']} of {len(t['speed_runs'])} speed runs ran while other "
                         "processes kept more than 0.3 cores busy: its speed and TPJ are understated")
    lines += [f"  * {finding}" for finding in tw["findings"]]
    return lines


def _published() -> list[str]:
    lines = ["", f"Published: {LLMPI_SOURCE}", f"{'model':<20}{'quant':<8}{'TPS':>7}{'TPJ':>6}{'W/BL':>8}{'NUBIA':>7}"]
    for r in LLMPI:
        lines.append(f"{r.model:<20}{r.quant:<8}{r.tps:>7.2f}{r.tpj:>6.2f}{r.wbl_k:>7g}k{r.nubia:>7.2f}")
    return lines


def _overhead(o: dict[str, Any] | None) -> list[str]:
    if not o:
        return []
    if "error" in o:
        return ["", f"Engine overhead: ERROR {o['error']}"]
    return ["", f"Engine overhead ({o['tier']}, {o['threads']} threads, {o['prompt_tokens']}-token prompt, "
                f"{len(o['raw_tps'])} rounds, {o['disturbed_runs']} runs disturbed by other processes; median tok/s)",
            f"  ours               {_f(o['ours_tps_median'], '.1f'):>6}  ({o['ours_sampler']})",
            f"  ours, greedy       {_f(o['ours_greedy_tps_median'], '.1f'):>6}",
            f"  raw, greedy        {_f(o['raw_tps_median'], '.1f'):>6}  ({o['raw_loop']})",
            f"  raw, our samplers  {_f(o['raw_same_sampler_tps_median'], '.1f'):>6}",
            f"  ratios ({o['ratio_method']}): ours / raw greedy = {_f(o['ratio'], '.3f')}; ours greedy / raw greedy = "
            f"{_f(o['greedy_ratio'], '.3f')}; ours / raw with our samplers = {_f(o['same_sampler_ratio'], '.3f')} "
            f"(the Python layers alone); raw with our samplers / raw greedy = {_f(o['sampler_cost_ratio'], '.3f')} "
            "(the samplers' cost)"]


def _speech(s: dict[str, Any] | None) -> list[str]:
    if not s:
        return []
    lines = ["", "Speech stages", f"{'ASR engine':<52}{'load s':>7}{'RTF':>7}{'final p50':>10}{'p95 s':>7}{'WER':>6}"]
    for a in s["asr"]:
        if "error" in a:
            lines.append(f"  ERROR: {a['error']}")
            continue
        lines.append(f"{a['engine']:<52}{a['load_s']:>7.2f}{_f(a['rtf'], '.3f'):>7}"
                     f"{_f(a['final_latency_median_s'], '.3f'):>10}{_f(a['final_latency_p95_s'], '.3f'):>7}"
                     f"{_f(a['wer'], '.2f'):>6}")
    if s["asr"] and "error" not in s["asr"][0]:
        lines.append(f"  final = {s['asr'][0]['latency_method']}")
    t = s.get("tts") or {}
    if "error" in t:
        lines.append(f"TTS: ERROR {t['error']}")
    elif t:
        lines.append(f"TTS {t['voice']}: load {t['load_s']:.2f} s, RTF {_f(t['rtf'], '.3f')}, first audio "
                     f"{_f(t['first_audio_median_s'], '.3f')} s (median of {len(t['runs'])} three-sentence replies)")
    return lines


def _accuracy(s: dict[str, Any] | None) -> list[str]:
    """Word error rates cold and warm, file and stream, per engine and set; then the answer share."""
    acc = (s or {}).get("accuracy") or []
    if not acc:
        return []
    head = (f"{'engine / set':<44}{'n':>4}{'file':>7}{'file':>7}{'strm':>7}{'strm':>7}{'strm':>7}"
            f"{'file ms':>9}{'strm ms':>9}")
    sub = (f"{'':<44}{'':>4}{'cold':>7}{'warm':>7}{'prior':>7}{'saved':>7}{'warm':>7}"
           f"{'/s audio':>9}{'/s audio':>9}")
    lines = ["", "Speech recognition, word error rate of the first utterance after a start (cold) and later (warm)",
             head, sub, "-" * len(head)]
    for a in acc:
        if "error" in a:
            lines.append(f"  ERROR: {a['error']}")
            continue
        for name, row in a["sets"].items():
            w, fw = row["wer"], row["final_wait_s"]
            label = f"{a['engine'][:30]} / {name}"
            if a["english"]:
                cells = "".join(f"{_f(w[m], '.3f'):>7}" for m in ("cold_file", "warm_file", "cold_stream_prior",
                                                                   "cold_stream_saved", "warm_stream"))
            else:
                cells = f"{'speed only; cold = warm in ' + format(100 * row['cold_warm_same'], '.0f') + ' %':>35}"
            lines.append(f"{label:<44}{row['utterances']:>4}{cells}{fw['cold_file']['ms_per_audio_s']:>9.0f}"
                         f"{fw['warm_stream']['ms_per_audio_s']:>9.0f}")
            for kind, kw in (row.get("wer_by_kind") or {}).items():
                cells = "".join(f"{kw[m]:>7.3f}" for m in ("cold_file", "warm_file", "cold_stream_prior",
                                                           "cold_stream_saved", "warm_stream"))
                lines.append(f"{'    ' + kind:<44}{'':>4}{cells}")
    lines.append("  file = decoded as a recording (ask --wav, drain prompts); strm = streamed as from a microphone; "
                 "prior = no saved state; saved = from the state earlier starts saved; ms/s audio = time from the "
                 "last chunk to the final transcript per second of audio")
    ans = (s or {}).get("answers")
    if ans and "error" not in ans and ans.get("questions"):
        sh = ans["share"]
        lines.append(f"Factual questions answered right ({ans['questions']}, tier {ans['tier']}): typed "
                     f"{100 * sh['text']:.0f} %, spoken {100 * sh['spoken']:.0f} % (transcript as heard "
                     f"{100 * sh['spoken_raw']:.0f} %); typed in lower case {100 * sh['text_lower']:.0f} %, "
                     f"written as a question {100 * sh['text_normalised']:.0f} %")
    elif ans:
        lines.append(f"Answer share: ERROR {ans.get('error')}")
    return lines


def _e2e(e: dict[str, Any] | None) -> list[str]:
    if not e:
        return []
    if "error" in e:
        return ["", f"End to end: ERROR {e['error']}"]
    s, b, lg = e["streaming"], e["blocking"], e["long_replies"]
    return ["", f"End of speech -> first audio (tier {e['tier']}, {e['asr']}, {e['voice']}; "
                f"{s['turns']} turns each; audio {'paced as a microphone' if e['paced_audio'] else 'fed fast'}; "
                f"other processes used {_f(e.get('others_cores'))} cores meanwhile)",
            f"  streaming  median {_f(s['first_audio_median_s'])} s  p95 {_f(s['first_audio_p95_s'])} s  "
            f"(last audio median {_f(s['total_median_s'])} s)",
            f"  blocking   median {_f(b['first_audio_median_s'])} s  p95 {_f(b['first_audio_p95_s'])} s",
            f"  ratio streaming / blocking: median {_f(e['ratio_median'])}  p95 {_f(e['ratio_p95'])};  replies of "
            f"{lg['min_sentences']}+ sentences ({lg['pairs']} pairs): median {_f(lg['ratio_median'])}  "
            f"p95 {_f(lg['ratio_p95'])}"]


def _idle(i: dict[str, Any] | None) -> list[str]:
    if not i:
        return []
    if "error" in i:
        return ["", f"Idle: ERROR {i['error']}"]
    return ["", f"Idle: {i['command']}, tier {i['tier']}: {i['cpu_pct_of_one_core']:.2f} % of one core over "
                f"{i['window_s']:.0f} s; peak RSS {_f(i['peak_rss_mb'], '.0f')} MB, now {_f(i['rss_mb'], '.0f')} MB; "
                f"ready {i['startup_s']:.1f} s after start"]


def render(result: dict[str, Any]) -> str:
    """The printed report: machine, tiers beside the study, published figures, engine, speech, idle, targets."""
    lines = _machine(result) + _tiers(result) + _twin(result) + _published() + _overhead(result.get("engine_overhead"))
    lines += (_speech(result.get("speech")) + _accuracy(result.get("speech")) + _e2e(result.get("e2e"))
              + _idle(result.get("idle")))
    lines += ["", "Targets"] + [f"  {v['status']:<11} {v['target']}: {v['detail']}" for v in result["targets"]]
    return "\n".join(lines)
