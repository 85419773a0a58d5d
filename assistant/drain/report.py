"""`assistant report`: a run's report (Markdown or HTML, PNG plots, report.json), and several runs side by side."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from assistant.bench.published import LLMPI, LLMPI_METHOD, LLMPI_WHERE
from assistant.drain import plots
from assistant.drain.analysis import RunData, TierRow, load_run
from assistant.power.battery_config import REFERENCE_PACK_WH
from assistant.drain.doc import Bullets, Doc, Format, Heading, Image, Para, Table
from assistant.drain.facts import describe_machine
from assistant.atomic import write_json_atomic, write_text_atomic
from assistant.drain.runlog import DrainError
from assistant.power.governor import TARGET_WITHIN

_LOG = logging.getLogger(__name__)

TIER_HEADER = ["tier", "quant", "turns", "words", "tokens", "words/token", "TPS", "TPJ (tok/J)", "turn energy (J)",
               "W/BL this pack", "W/BL 2x18650", "W/BL basis"]
STUDY_HEADER = ["model", "quant", "TPS", "TPJ", "W/BL", "quality", "measured on", "energy"]


def f(value: float | None, spec: str = ".2f") -> str:
    """A number for a table cell; ``-`` for none."""
    return "-" if value is None else format(value, spec)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %" if x >= 0.01 else f"{100 * x:.1f} %"


def basis(row: TierRow) -> str:
    """How a tier's W/BL was obtained, in words."""
    span = "" if row.soc_from is None or row.soc_to is None else f", SoC {row.soc_from:.0f}->{row.soc_to:.0f} %"
    if row.full_drain:
        return f"measured over a full drain ({_pct(row.pack_share)} of the pack's energy{span})"
    return f"extrapolated: words/J x usable J, measured over {_pct(row.pack_share)} of the pack's energy{span}"


def where(run: RunData) -> str:
    """Where our figures were measured, for the study table."""
    m = run.meta.get("machine") or {}
    return f"this machine ({m.get('machine')}, {m.get('cores')} cores), {run.meta.get('mode')} run"


def energy_note(run: RunData) -> str:
    """The paragraph that says what the energy figures are."""
    pack = run.meta.get("pack") or {}
    if run.simulated:
        return (f"**Energy: SIMULATED.** The pack is the simulated one: every joule here comes from a power model "
                f"driven by this process's real CPU time ({pack.get('idle_w')} W idle + {pack.get('w_per_busy_core')} "
                f"W per busy core, through a {pack.get('boost_efficiency')} efficient boost converter), not from a "
                f"measurement. Time scale {run.time_scale:g}: the pack drained {run.time_scale:g}x faster than the "
                "appliance drew power; energy per turn (TPJ, W/BL) is at the real rate.")
    return (f"**Energy: {run.energy_kind.upper()}** by the gauge {pack.get('gauge')} "
            "(measured: V x I sampled at 10 Hz; estimated: from SoC steps or a power model).")


def twin_note(run: RunData) -> str | None:
    """The paragraph that says which tiers are speed twins and what that means for their figures, if any."""
    twins = [r for r in run.rows if r.twin]
    if not twins:
        return None
    basis = next((r.words_basis for r in run.records if r.words_basis), "")
    label = twins[0].twin or "speed twin"
    return (f"**{label[:1].upper()}{label[1:]}.** Tiers {', '.join(r.tier for r in twins)} ran on a model with a real "
            "model's shapes and random weights: their speed and energy are that model's, their words are "
            f"not. Each turn generated its tier's whole token budget; words are {basis}")


def tier_rows(run: RunData) -> list[list[str]]:
    """The per-tier table."""
    out = []
    for r in run.rows:
        s = r.stats
        tpj = s.tpj if r.kind == "llm" else None  # fixed phrases generate no tokens
        words = f"{s.words} (estimated)" if r.words_estimated else str(s.words)
        out.append([r.tier + (" (speed twin)" if r.twin else ""), r.quant, str(s.turns), words, str(s.tokens),
                    f(s.words_per_token),
                    f(s.tps_mean, ".1f"), f(tpj, ".3f"), f(s.energy_j, ".1f"), f(s.wbl, ",.1f"),
                    f(r.wbl_ref, ",.0f"), basis(r)])
    return out


def study_rows(runs: list[RunData]) -> list[list[str]]:
    """Our LLM tiers, then the study's Pi 5 rows, in the study's shape."""
    out = []
    for run in runs:
        for r in run.rows:
            if r.kind == "llm":
                out.append([r.model + (" (speed twin)" if r.twin else ""), r.quant, f(r.stats.tps_mean, ".1f"),
                            f(r.stats.tpj, ".2f"), f(r.wbl_ref, ",.0f"), "none: random weights" if r.twin else
                            "not measured", where(run), run.energy_kind])
    for s in LLMPI:
        out.append([s.model, s.quant, f(s.tps), f(s.tpj), f(s.wbl, ",.0f"), f"NUBIA {s.nubia:.2f}", LLMPI_WHERE,
                    "measured"])
    return out


def _load_mean(run: RunData) -> str:
    loads = [float(x["load_1m"]) for x in run.samples if isinstance(x.get("load_1m"), (int, float))]
    return f(sum(loads) / len(loads) if loads else None)


def _facts(run: RunData) -> list[list[str]]:
    m, pack, st = run.meta, run.meta.get("pack") or {}, run.state
    segs = len(run.segments)
    torn = sum(int(s.get("torn_lines") or 0) for s in run.segments)
    socs = [float(x["soc_pct"]) for x in run.samples if isinstance(x.get("soc_pct"), (int, float))]
    loads = [float(x["load_1m"]) for x in run.samples if isinstance(x.get("load_1m"), (int, float))]
    rows = [
        ["run", f"{run.run_id}, {m.get('mode')}, started {m.get('created')}"],
        ["status", f"{st.get('status')}: {st.get('reason')}"],
        ["running time", f"{float(st.get('t_s') or 0) / 60:.1f} min in {segs} segment(s)"
         + (f" (resumed {segs - 1}x; torn lines skipped at resume: {torn})" if segs > 1 else "")],
        ["machine", describe_machine(m.get("machine") or {}) + f"; 1-min load average during the run: mean "
         f"{f(sum(loads) / len(loads) if loads else None)}, max {f(max(loads) if loads else None)} (other work slows turns)"],
        ["pack", f"{pack.get('capacity_wh')} Wh nominal x {pack.get('usable_fraction')} usable = "
                 f"{run.usable_j:,.0f} J" + (f", simulated at time scale {run.time_scale:g}" if run.simulated else "")],
        ["gauge", f"{pack.get('gauge')}; energy {run.energy_kind}"],
        ["state of charge", f"{f(max(socs) if socs else None, '.1f')} -> {f(socs[-1] if socs else None, '.1f')} %, "
                            f"cut-off {m.get('until_pct')} %"],
        ["pack energy drawn", f"{run.pack_drawn_j:,.1f} J, {_pct(run.pack_share)} of its nominal energy"
         + (f" (= {run.real_rate_j:,.1f} J at the real rate x time scale {run.time_scale:g})" if run.time_scale != 1
            else "") + f"; of it {run.turn_energy_j:,.1f} J in turns at the real rate, the rest loading and pauses"],
        ["turns", f"{len(run.records)} ({sum(1 for r in run.records if r.error)} failed), "
                  f"{run.words} words, {sum(r.tokens for r in run.records)} tokens"],
        ["answers per charge, whole run", f(run.answers_per_charge_whole, ",.0f") + f" on this pack ({run.answers} LLM "
         "answers / pack energy at the real rate x usable J; loading and pauses included)"],
        ["words per charge, whole run", f(run.words_per_charge_whole, ",.0f") + " on this pack, "
         + f(run.words_per_charge_whole and run.words_per_charge_whole / run.usable_j * run.ref_usable_j, ",.0f")
         + " on the 2x18650 pack (words / pack energy at the real rate x usable J; loading and pauses included)"],
        ["speech", f"ASR {m.get('asr_engine')}, word error rate {f(run.asr_wer and 100 * run.asr_wer, '.1f')} % "
                   f"on the reference questions; corpus {(m.get('corpus') or {}).get('source')} "
                   f"({len((m.get('corpus') or {}).get('texts') or [])} questions)"],
    ]
    if st.get("status") == "finished":
        rows.append(["words to the cut-off", f"{run.words:,} spoken" + (
            f", x time scale {run.time_scale:g} = {run.words * run.time_scale:,.0f} at the real rate"
            if run.time_scale != 1 else "") + f", over {_pct(run.pack_share)} of the pack's nominal energy"])
    cfg = m.get("config") or {}
    threads = (cfg.get("llm") or {}).get("threads")
    caps = ", ".join(f"{t.get('name')} {t.get('max_tokens')} tokens/{t.get('reply_words')} words"
                     for t in (cfg.get("tiers") or {}).get("tiers") or [] if t.get("kind") == "llm")
    rows.append(["LLM", f"{threads or 'all'} thread(s) unless a tier sets its own; replies capped at {caps}"])
    if run.torn_lines or run.bad_lines or run.sample_torn:
        rows.append(["log repairs", f"turn log: {run.torn_lines} torn last line, bad lines {run.bad_lines}; "
                                    f"battery log: {run.sample_torn} torn last line (all skipped)"])
    return rows


PLAN_HEADER = ["turn", "pack time h", "SoC %", "target in h", "governor chose", "tier used", "projected h on it",
               "idle W", "why"]
PLAN_ROWS = 40
"""The plan table shows the turns where the plan changed; past this many rows, the first and last half of them."""


def by_tier(run: RunData) -> str:
    """``q8_0 12, q4_k_m 30`` : LLM answers per tier, richest first."""
    return ", ".join(f"{t} {n}" for t, n in run.answers_by_tier.items() if n) or "-"


def target_line(run: RunData) -> str:
    """How long the run lasted against its governor target, in words."""
    lasted = run.pack_hours
    if run.target_hours is None:
        return f"lasted {lasted:.2f} h of the pack's time; no target"
    if run.state.get("status") != "finished":
        return (f"target {run.target_hours:g} h of the pack's time; {lasted:.2f} h so far (the run is "
                f"{run.state.get('status')}, not at its cut-off)")
    off = (lasted - run.target_hours) / run.target_hours
    done = "met" if abs(off) <= TARGET_WITHIN else "missed" if off < 0 else "outlasted (richer tiers were affordable)"
    return (f"target {run.target_hours:g} h of the pack's time, lasted {lasted:.2f} h ({100 * off:+.1f} %): {done} "
            f"(within {100 * TARGET_WITHIN:.0f} % counts as met)")


def plan_rows(run: RunData) -> list[list[str]]:
    """The governor's plan over the run: the first turn, every turn where its choice or the tier changed, the last."""
    plan = run.plan()
    keep = [row for i, row in enumerate(plan) if i in (0, len(plan) - 1)
            or (row.chosen, row.tier) != (plan[i - 1].chosen, plan[i - 1].tier)]
    if len(keep) > PLAN_ROWS:
        keep = keep[: PLAN_ROWS // 2] + keep[-PLAN_ROWS // 2 :]
    return [[str(r.seq), f(r.pack_h), f(r.soc_pct, ".1f"), f(r.target_left_h), r.chosen or "(threshold ladder)",
             r.tier or "-", f(r.projected_h), f(r.idle_w), r.reason] for r in keep]


def add_governor(doc: Doc, run: RunData) -> None:
    """The governor's section: the target against what the run lasted, answers per tier, the plan over time."""
    plan = run.plan()
    if run.target_hours is None and not plan:
        return
    decided = sum(1 for r in plan if r.chosen is not None)
    rate = ("questions back to back" if run.every_s is None else
            f"a question every {run.every_s:g} s of the pack's time")
    doc.add(Heading("The governor's plan"), Para(
        f"{target_line(run)}; {rate}. LLM answers per tier: {by_tier(run)}. The governor chose the tier of "
        f"{decided} of {len(run.records)} turns; before that the threshold ladder did (too little measured). "
        "Before every turn it projects, from what each tier has cost per answer, the draw between answers (as "
        "measured over the gaps between turns) and the rate of questions, how long the pack lasts on each tier; "
        "it finds the richest tier that reaches the target with a margin, and answers on the tier just richer "
        "while what that one would leave over pays for it. Turns where the plan changed (of "
        f"{len(plan)} planned):"),
        Table(PLAN_HEADER, plan_rows(run), "rrrrllrrl"))


def build_doc(run: RunData, images: dict[str, str]) -> Doc:
    """The report of one run."""
    doc = Doc(f"Drain run {run.run_id}")
    doc.add(Para(energy_note(run)))
    note = twin_note(run)
    if note is not None:
        doc.add(Para(note))
    doc.add(Heading("Run facts"), Table(["fact", "value"], _facts(run), "ll"))
    doc.add(Heading("Per tier"), Table(TIER_HEADER, tier_rows(run), "llrrrrrrrrrl"))
    doc.add(Para(f"W/BL is words per battery life: words per joule of the turns x the usable energy of a pack "
                 f"(this run's pack: {run.usable_j:,.0f} J; the reference 2x18650 pack: {REFERENCE_PACK_WH} Wh x "
                 f"usable fraction = {run.ref_usable_j:,.0f} J). Where a tier ran over part of a charge only, its "
                 "W/BL is an extrapolation and the basis column says over how much of the pack it was measured. "
                 "TPJ counts the energy of the whole turn (ASR, LLM, TTS), not the LLM alone."))
    doc.add(Image(images["soc_voltage"], "SoC and voltage over time with tier bands"),
            Image(images["wbl"], "W/BL per tier"), Image(images["rates"], "TPS, TPJ and words per token per tier"))
    lat = [[r.tier] + [f"{f(r.latency[k][0])} / {f(r.latency[k][1])}" for k in
                       ("asr_final_s", "first_token_s", "first_audio_s", "total_s")] for r in run.rows]
    doc.add(Heading("Latency per tier (p50 / p95, s after the end of the question)"),
            Table(["tier", "ASR final", "first token", "first audio", "whole turn"], lat),
            Image(images["latency"], "latency per tier"))
    add_governor(doc, run)
    add_study(doc, [run])
    return doc


def add_study(doc: Doc, runs: list[RunData]) -> None:
    """The table in the study's shape, ours first, labelled by where each figure was measured."""
    doc.add(Heading("Beside the LLMPi study"), Table(STUDY_HEADER, study_rows(runs), "llrrrlll"))
    doc.add(Bullets([
        "Ours: whole-turn energy (ASR + LLM + TTS) per generated token; energy as labelled (a simulated pack is a "
        "model, not a measurement); W/BL on the reference 2x18650 pack "
        f"({REFERENCE_PACK_WH} Wh nominal) at the run's usable "
        "fraction; quality not measured.",
        f"The study: {LLMPI_METHOD} Its W/BL uses its own fixed battery.",
    ]))


def _images(run: RunData) -> dict[str, str]:
    out = {}
    for name, fn in (("soc_voltage", plots.soc_voltage), ("wbl", plots.wbl), ("rates", plots.rates),
                     ("latency", plots.latency)):
        out[name] = fn(run, run.root / f"{name}.png").name
    return out


def summary_json(run: RunData) -> dict[str, Any]:
    """The report's numbers, for programs."""
    return {"run_id": run.run_id, "mode": run.meta.get("mode"), "energy": run.energy_kind, "usable_j": run.usable_j,
            "ref_usable_j": run.ref_usable_j, "pack_drawn_j": run.pack_drawn_j, "meter_j": run.meter_j,
            "turn_energy_j": run.turn_energy_j, "words": run.words, "turns": len(run.records),
            "asr_wer": run.asr_wer, "words_per_charge_whole": run.words_per_charge_whole,
            "answers": run.answers, "answers_per_charge_whole": run.answers_per_charge_whole,
            "words_estimated": any(r.words_estimated for r in run.rows),
            "tiers": {r.tier: {"quant": r.quant, "model": r.model, "twin": r.twin,
                               "words_estimated": r.words_estimated, **asdict(r.stats), "wbl_ref": r.wbl_ref,
                               "pack_j": r.pack_j, "pack_share": r.pack_share, "full_drain": r.full_drain,
                               "latency": r.latency} for r in run.rows}}


def write_report(run_dir: Path, *, fmt: Format = "md") -> list[Path]:
    """Write report.<fmt>, report.json and the PNGs into the run directory; returns the files written."""
    run = load_run(run_dir)
    if not run.records:
        raise DrainError(f"run {run_dir} has no turns yet: nothing to report")
    images = _images(run)
    out = run_dir / f"report.{fmt}"
    _write(out, build_doc(run, images).render(fmt))
    write_json_atomic(run_dir / "report.json", summary_json(run))
    return [out, run_dir / "report.json"] + [run_dir / p for p in images.values()]


def write_compare(run_dirs: list[Path], out_dir: Path, *, fmt: Format = "md") -> list[Path]:
    """Several runs side by side: compare.<fmt> and compare.png in ``out_dir``."""
    runs = [load_run(d) for d in run_dirs]
    runs = [r for r in runs if r.records] or runs
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DrainError(f"cannot create {out_dir}: {exc}") from exc
    doc = Doc(f"Drain runs side by side ({len(runs)})")
    kinds = sorted({r.energy_kind for r in runs})
    doc.add(Para(f"Energy in these runs: **{', '.join(k.upper() for k in kinds)}**." + (
        " Simulated energy comes from a power model driven by real CPU time, not from a measurement."
        if "simulated" in kinds else "")))
    facts = [[r.run_id, str(r.meta.get("mode")), str(r.state.get("status")), str(len(r.records)), str(r.answers),
              by_tier(r), str(r.words), f(r.answers_per_charge_whole, ",.0f"), f(r.words_per_charge_whole, ",.0f"),
              f"{float(r.state.get('t_s') or 0) / 60:.1f}", f"{r.pack_hours:.2f}",
              "-" if r.target_hours is None else f"{r.target_hours:g}", f"{r.pack_drawn_j:,.0f}", _pct(r.pack_share),
              _load_mean(r), r.energy_kind, str(r.root)] for r in runs]
    doc.add(Heading("Runs"), Table(["run", "mode", "status", "turns", "LLM answers", "answers by tier", "words",
                                    "answers/charge", "words/charge", "min", "pack h", "target h", "pack J",
                                    "of pack", "load", "energy", "directory"], facts, "llllrlrrrrrrrrrll"))
    doc.add(Para("pack h: how long the run lasted in the pack's time (simulated hours on the simulated pack); "
                 "load: mean 1-minute load average of the machine during the run (other work slows turns and, "
                 "through the idle draw over a longer turn, costs energy)."))
    for r in runs:
        note = twin_note(r)
        if note is not None:
            doc.add(Para(f"{r.run_id}: {note}"))
    rows = [[r.run_id, str(r.meta.get("mode"))] + row for r in runs for row in tier_rows(r)]
    doc.add(Heading("Per tier"), Table(["run", "mode"] + TIER_HEADER, rows, "ll" + "llrrrrrrrrrl"))
    for r in runs:
        if r.target_hours is not None or r.plan():
            doc.add(Para(f"{r.run_id} ({r.meta.get('mode')}): {target_line(r)}; LLM answers per tier: {by_tier(r)}."))
    doc.add(Image(plots.compare(runs, out_dir / "compare.png").name, "TPJ and W/BL of every run"))
    add_study(doc, runs)
    out = out_dir / f"compare.{fmt}"
    _write(out, doc.render(fmt))
    return [out, out_dir / "compare.png"]


def _write(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise DrainError(f"cannot write {path}: {exc}") from exc
