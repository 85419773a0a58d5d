"""The numbers of a drain run: per-tier rates and words per charge, how much of the pack they rest on, run facts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.power.battery_config import REFERENCE_PACK_WH
from assistant.drain.runlog import RunFiles, read_json, read_samples, scan_turns
from assistant.jsonl import read_jsonl
from assistant.messages import TurnLogEntry
from assistant.models.quant_types import model_name
from assistant.speech.words import word_errors
from assistant.stats import percentile
from assistant.turnlog import TierStats, summarize

_LOG = logging.getLogger(__name__)

"""The reference pack: 2x 18650, 3.7 V x 2.6 Ah in series (hardware.md section 1.9)."""
FULL_FROM_SOC = 95.0
"""A run that began at this state of charge or above and reached its cut-off on one tier drained a full pack (%)."""
LATENCIES = ("asr_final_s", "first_token_s", "first_audio_s", "total_s")


@dataclass(frozen=True)
class TierRow:
    """One tier of a run, as the report shows it."""

    tier: str
    kind: str
    quant: str
    model: str
    stats: TierStats
    """``summarize`` of the tier's turns (the same figures ``assistant stats`` prints)."""
    wbl_ref: float | None
    """Words per charge of the reference 2x18650 pack at this tier's words per joule."""
    pack_j: float
    """Pack energy drawn while this tier was the current one (J), loading and pauses included."""
    pack_share: float
    """``pack_j`` over the pack's nominal energy: how much of a charge the tier's figures rest on."""
    soc_from: float | None
    """Highest state of charge at the start of one of the tier's turns (%)."""
    soc_to: float | None
    """Lowest state of charge at the end of one of the tier's turns (%)."""
    full_drain: bool
    """The tier was the only one of a run that began on a full pack (>= ``FULL_FROM_SOC``) and reached its cut-off."""
    latency: dict[str, tuple[float | None, float | None]]
    """p50 and p95 (s) of each of ``LATENCIES``."""
    twin: str | None = None
    """The speed-twin label when the tier's model is a twin (random weights), else None."""
    words_estimated: bool = False
    """The tier's word counts are estimates (turns logged with ``words_estimated``), not counted replies."""


@dataclass(frozen=True)
class PlanRow:
    """The governor's plan before one turn, as the report shows it over the run."""

    seq: int
    """The turn's place in the run (0 = first)."""
    pack_h: float | None
    """Hours of the pack's time since the run began, when the turn ended."""
    soc_pct: float | None
    """State of charge before the turn (%)."""
    target_left_h: float | None
    """Hours to the target from the turn (None without one)."""
    chosen: str | None
    """The tier the governor chose; None: the threshold ladder decided."""
    tier: str | None
    """The tier the turn ran on."""
    projected_h: float | None
    """Hours the pack would last on the turn's tier, as projected before the turn (None: not known yet)."""
    reason: str
    idle_w: float | None = None
    """The draw between answers the projection counted on (W)."""


@dataclass
class RunData:
    """Everything the report needs from one run directory."""

    root: Path
    meta: dict[str, Any]
    state: dict[str, Any]
    records: list[TurnLogEntry]
    samples: list[dict[str, Any]]
    rows: list[TierRow]
    usable_j: float
    """Usable energy of the run's pack (J)."""
    nominal_j: float
    """Nominal energy of the run's pack (J)."""
    ref_usable_j: float
    """Usable energy of the reference pack at the run's usable fraction (J)."""
    simulated: bool
    time_scale: float
    pack_drawn_j: float
    """Energy the pack gave up over the whole run (J)."""
    meter_j: float
    """Energy integrated from the gauge over the run at the real rate (J)."""
    torn_lines: int
    bad_lines: list[int]
    sample_torn: int
    segments: list[dict[str, Any]] = field(default_factory=list)
    asr_wer: float | None = None
    """Word error rate of the recogniser over the turns whose question has a reference transcript."""

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id"))

    @property
    def words(self) -> int:
        return sum(r.words for r in self.records)

    @property
    def answers(self) -> int:
        """Questions answered by a language model (LLM turns that neither failed nor were cancelled)."""
        return sum(1 for r in self.records if r.kind == "llm" and not r.error and not r.cancelled)

    @property
    def answers_per_charge_whole(self) -> float | None:
        """LLM answers per usable charge at the whole run's rate (model loads and pauses included)."""
        return self.answers / self.real_rate_j * self.usable_j if self.pack_drawn_j else None

    @property
    def turn_energy_j(self) -> float:
        return sum(r.energy_j or 0.0 for r in self.records)

    @property
    def energy_kind(self) -> str:
        """``simulated``, ``measured`` or ``estimated``: what the energy figures are."""
        if self.simulated:
            return "simulated"
        with_e = [r for r in self.records if r.energy_j]
        return "measured" if with_e and all(r.energy_measured for r in with_e) else "estimated"

    @property
    def pack_share(self) -> float:
        """Energy drawn over the pack's nominal energy."""
        return self.pack_drawn_j / self.nominal_j if self.nominal_j else 0.0

    @property
    def real_rate_j(self) -> float:
        """The pack energy of the run at the real rate: drawn energy over the simulation's time scale (J)."""
        return self.pack_drawn_j / self.time_scale

    @property
    def target_hours(self) -> float | None:
        """The governor's target of the run (hours of the pack's time), None without one."""
        value = (self.meta.get("options") or {}).get("target_hours")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def every_s(self) -> float | None:
        """Seconds of the pack's time between questions (``--every``), None for back to back."""
        value = (self.meta.get("options") or {}).get("every_s")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def pack_hours(self) -> float:
        """How long the run lasted in the pack's time (h): simulated hours on the simulated pack."""
        if self.samples and self.samples[-1].get("pack_sim_s") is not None:
            return float(self.samples[-1]["pack_sim_s"]) / 3600.0
        return float(self.state.get("t_s") or 0.0) * self.time_scale / 3600.0

    @property
    def answers_by_tier(self) -> dict[str, int]:
        """LLM answers per tier, richest first (the order the per-tier table has)."""
        out = {r.tier: 0 for r in self.rows if r.kind == "llm"}
        for r in self.records:
            if r.kind == "llm" and not r.error and not r.cancelled and r.tier is not None:
                out[r.tier] = out.get(r.tier, 0) + 1
        return out

    def plan(self) -> list[PlanRow]:
        """The governor's plan before every turn that has one (``TurnLogEntry.governor``), in order."""
        first = self.samples[0] if self.samples else {}
        start = float(first.get("unix") or 0.0) - float(first.get("t_s") or 0.0)  # the run's start, wall clock
        out: list[PlanRow] = []
        for seq, r in enumerate(self.records):
            note = r.governor
            if note is None:
                continue
            hours = note.hours.get(r.tier or "") if r.tier else None
            out.append(PlanRow(seq=seq, pack_h=(r.unix - start) * self.time_scale / 3600.0 if start and r.unix else None,
                               soc_pct=r.battery_before.soc_pct if r.battery_before is not None else None,
                               target_left_h=note.target_hours_left, chosen=note.tier, tier=r.tier,
                               projected_h=hours, reason=note.reason, idle_w=note.idle_w))
        return out

    @property
    def words_per_charge_whole(self) -> float | None:
        """Words per usable charge at the whole run's rate (model loads and pauses between turns included)."""
        return self.words / self.real_rate_j * self.usable_j if self.pack_drawn_j else None


def model_label(path_or_name: str | None) -> str:
    """``SmolLM2-135M-Instruct`` from ``.../SmolLM2-135M-Instruct.Q8_0.gguf``."""
    if not path_or_name:
        return "-"
    return model_name(path_or_name)


def _pack_energy_by_tier(samples: list[dict[str, Any]], simulated: bool, scale: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for a, b in zip(samples, samples[1:]):
        if simulated and a.get("pack_drawn_j") is not None and b.get("pack_drawn_j") is not None:
            de = float(b["pack_drawn_j"]) - float(a["pack_drawn_j"])
        else:
            de = (float(b.get("e_j") or 0.0) - float(a.get("e_j") or 0.0)) * scale
        key = str(b.get("tier") or "(loading)")
        out[key] = out.get(key, 0.0) + max(0.0, de)
    return out


def load_run(root: Path) -> RunData:
    """Read and digest a run directory (DrainError when it is not one)."""
    files = RunFiles(root)
    meta = files.load_meta()
    state = read_json(files.state) or {}
    scan = scan_turns(files.turns, str(meta["run_id"]))
    samples, sample_torn, _ = read_samples(files.battery)
    pack = meta.get("pack") or {}
    simulated = bool(pack.get("simulated"))
    scale = float(pack.get("time_scale") or 1.0) if simulated else 1.0
    usable_j = float(pack.get("usable_j") or 0.0)
    nominal_j = float(pack.get("capacity_wh") or 0.0) * 3600.0
    first_soc = samples[0].get("soc_pct") if samples else None
    start_soc = pack.get("start_soc_pct") if simulated else first_soc  # the simulated pack's SoC before loading
    ref_usable_j = REFERENCE_PACK_WH * 3600.0 * float(pack.get("usable_fraction") or 0.85)
    stats = summarize(scan.entries, usable_energy_j=usable_j or None)
    whole = bool(isinstance(start_soc, (int, float)) and start_soc >= FULL_FROM_SOC
                 and state.get("status") == "finished" and len(stats) == 1)
    by_tier = _pack_energy_by_tier(samples, simulated, scale)
    models = meta.get("models") or {}
    rows: list[TierRow] = []
    for name, st in stats.items():
        recs = [r for r in scan.entries if (r.tier or "(none)") == name]
        first = recs[0]
        socs = [r.battery_before.soc_pct for r in recs if r.battery_before is not None and r.battery_before.soc_pct is not None]
        ends = [r.battery_after.soc_pct for r in recs if r.battery_after is not None and r.battery_after.soc_pct is not None]
        lat = {k: (percentile(_vals(recs, k), 50), percentile(_vals(recs, k), 95)) for k in LATENCIES}
        wbl_ref = st.wbl / usable_j * ref_usable_j if st.wbl is not None and usable_j else None
        kind = first.kind or "llm"
        model = model_label((models.get(name) or {}).get("model") or first.model) if kind == "llm" else "fixed phrases"
        rows.append(TierRow(tier=name, kind=kind, quant=first.quant or "-", model=model, stats=st,
                            wbl_ref=wbl_ref, pack_j=by_tier.get(name, 0.0),
                            pack_share=by_tier.get(name, 0.0) / nominal_j if nominal_j else 0.0,
                            soc_from=float(start_soc) if whole and start_soc is not None else max(socs) if socs else None,
                            soc_to=min(ends) if ends else None, full_drain=whole,
                            latency=lat, twin=(models.get(name) or {}).get("twin"),
                            words_estimated=any(r.words_estimated for r in recs)))
    if samples and simulated and samples[-1].get("pack_drawn_j") is not None:
        pack_drawn = float(samples[-1]["pack_drawn_j"])
    else:
        pack_drawn = float(samples[-1].get("e_j") or 0.0) * scale if samples else 0.0
    errs = refs = 0
    seen: set[str] = set()
    for d in read_jsonl(files.dialogue).records:
        if d.get("reference") and d.get("turn_id") not in seen:
            seen.add(str(d.get("turn_id")))
            e, n = word_errors(str(d["reference"]), str(d.get("heard") or ""))
            errs, refs = errs + e, refs + n
    return RunData(root=root, meta=meta, state=state, records=scan.entries, samples=samples, rows=rows,
                   usable_j=usable_j, nominal_j=nominal_j, ref_usable_j=ref_usable_j, simulated=simulated, time_scale=scale,
                   pack_drawn_j=pack_drawn, meter_j=float(samples[-1].get("e_j") or 0.0) if samples else 0.0,
                   torn_lines=scan.torn_lines, bad_lines=scan.bad_lines, sample_torn=sample_torn,
                   segments=list(state.get("segments") or []), asr_wer=errs / refs if refs else None)


def _vals(records: list[TurnLogEntry], key: str) -> list[float]:
    return [v for r in records if (v := getattr(r, key)) is not None]
