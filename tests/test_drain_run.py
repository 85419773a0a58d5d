"""A real drain run: spoken questions through ASR, two LLM tiers and fixed phrases down to the cut-off, then its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.config import load_config
from assistant.errors import ConfigError
from assistant.drain.begin import active_run, start_run
from assistant.drain.doc import parse_md_tables
from assistant.drain.options import DrainOptions, Progress
from assistant.drain.report import write_report
from assistant.drain.runlog import read_samples, scan_turns
from assistant.turnlog import summarize
from drain_helpers import QUESTIONS, write_config, write_prompts


def test_adaptive_drain_to_the_cutoff_and_its_report(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    # 0.03 Wh drawn at the process's real CPU power x 2: about 20 turns from full to the 20 % cut-off.
    cfg = load_config(write_config(tmp_path, ladder_files, capacity_wh=0.03, time_scale=2.0))
    seen: list[Progress] = []
    out = tmp_path / "run"
    result = start_run(cfg, DrainOptions(prompts=write_prompts(tmp_path)), out, progress=seen.append)

    assert result.status == "finished", result.reason
    assert "reached its empty point" in result.reason or "the tier policy chose shutdown" in result.reason
    assert result.simulated and active_run(cfg) is None
    meta = json.loads((out / "meta.json").read_text())
    state = json.loads((out / "state.json").read_text())
    scan = scan_turns(out / "turns.jsonl", meta["run_id"])
    records = scan.entries
    samples, torn, bad = read_samples(out / "battery.jsonl")
    assert torn == 0 and not bad and not scan.duplicates and not scan.missing

    # every turn is logged once, in order, with its deterministic id, and every turn was heard by the real ASR
    assert scan.seqs == list(range(len(records))) == list(range(state["turns"]))
    assert all(r.turn_id == f"{meta['run_id']}#{seq:06d}" for seq, r in zip(scan.seqs, records))
    assert all(r.asr_final_s is not None for r in records)
    dialogue = [json.loads(x) for x in (out / "dialogue.jsonl").read_text().splitlines()]
    assert [d["reference"] for d in dialogue] == [QUESTIONS[i % len(QUESTIONS)] for i in range(len(records))]
    assert sum(1 for d in dialogue if d["heard"]) >= len(dialogue) - 1

    # it walked down at least two LLM tiers to the cut-off, energy simulated and said so
    tiers = [r.tier for r in records]
    assert "q8_0" in tiers and "q2_k" in tiers and tiers.index("q8_0") < tiers.index("q2_k")
    assert all(r.energy_measured is False and (r.energy_j or 0) > 0 for r in records)
    last_soc = samples[-1]["soc_pct"]
    assert last_soc <= meta["until_pct"] + 3.0 and meta["until_pct"] == 20.0

    # the log, the state and the battery stream agree
    assert state["words"] == sum(r.words for r in records) == result.words > 0
    assert state["turn_energy_j"] == pytest.approx(sum(r.energy_j or 0 for r in records), abs=1e-3)
    assert samples[-1]["e_j"] >= state["turn_energy_j"]
    socs = [s["soc_pct"] for s in samples]
    assert socs == sorted(socs, reverse=True)
    # time scale 2: the pack gives up twice the energy the meter integrates at the real rate
    assert samples[-1]["pack_drawn_j"] == pytest.approx(2.0 * samples[-1]["e_j"], rel=0.05)
    assert seen and seen[-1].turns == state["turns"] and seen[-1].tier == records[-1].tier

    # the report: files, and numbers consistent with the log (W/BL = words/J x usable J, as `stats` says)
    written = write_report(out)
    for name in ("report.md", "report.json", "soc_voltage.png", "wbl.png", "rates.png", "latency.png"):
        assert out / name in written and (out / name).stat().st_size > 0
    assert (out / "soc_voltage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    usable = meta["pack"]["usable_j"]
    stats = summarize(records, usable_energy_j=usable)
    assert report["words"] == state["words"] and report["energy"] == "simulated"
    for name, s in stats.items():
        rs = [r for r in records if r.tier == name]
        wbl = sum(r.words for r in rs) / sum(r.energy_j or 0 for r in rs) * usable
        assert report["tiers"][name]["wbl"] == pytest.approx(wbl, rel=1e-9) == s.wbl
        assert report["tiers"][name]["wbl_ref"] == pytest.approx(wbl / usable * report["ref_usable_j"])
        assert not report["tiers"][name]["full_drain"]  # an adaptive run covers part of the pack per tier
    whole = report["words"] / (report["pack_drawn_j"] / 2.0) * usable  # at the real rate: time scale 2 undone
    assert report["words_per_charge_whole"] == pytest.approx(whole)
    shares = sum(t["pack_share"] for t in report["tiers"].values())
    assert shares <= report["pack_drawn_j"] / (meta["pack"]["capacity_wh"] * 3600) + 1e-9

    text = (out / "report.md").read_text()
    assert "SIMULATED" in text and "extrapolated" in text and "not measured" in text
    tables = parse_md_tables(text)
    per_tier = next(t for t in tables if t[0][:2] == ["tier", "quant"])
    body = {row[0]: dict(zip(per_tier[0], row)) for row in per_tier[1:]}
    assert set(body) == set(stats)
    for name, s in stats.items():
        assert int(body[name]["words"]) == s.words and int(body[name]["turns"]) == s.turns
        assert body[name]["W/BL this pack"] == f"{s.wbl:,.1f}"
    study = next(t for t in tables if t[0][0] == "model")
    ours = [r for r in study[1:] if r[6].startswith("this machine")]
    assert {r[1] for r in ours} == {"Q8_0", "Q2_K"} and all(r[7] == "simulated" for r in ours)
    assert any(r[6] == "Raspberry Pi 5 (LLMPi study, published)" for r in study[1:])


def test_questions_every_s_seconds_idle_in_between(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    """--every: a question every S seconds of the pack's time; between them the appliance idles, which costs the
    pack its idle draw and nothing else."""
    cfg = load_config(write_config(tmp_path, ladder_files, capacity_wh=5.0, time_scale=20.0))
    out = tmp_path / "run"
    opts = DrainOptions(prompts=write_prompts(tmp_path), every_s=60.0, max_turns=3)
    assert opts.mode == "adaptive, a question every 60 s"
    result = start_run(cfg, opts, out)
    assert result.status == "stopped" and result.turns == 3
    state = json.loads((out / "state.json").read_text())
    scan = scan_turns(out / "turns.jsonl", json.loads((out / "meta.json").read_text())["run_id"])
    samples, _, _ = read_samples(out / "battery.jsonl")
    # three questions 3 s of real time apart (60 s of the pack's time at time scale 20); the last one is followed
    # by a pause too
    assert state["t_s"] >= 3 * 60.0 / 20.0
    assert samples[-1]["pack_sim_s"] >= 3 * 60.0 - 1.0
    assert len(scan.entries) == 3
    idle = [-x["power_w"] for x in samples if x.get("turns") and x.get("power_w") is not None]
    assert len(idle) >= 3 and min(idle) == pytest.approx(2.8 / 0.9, rel=0.1)  # the Pi 5's idle draw in the pauses
    with pytest.raises(ConfigError, match="--every"):
        DrainOptions(every_s=0.0)
