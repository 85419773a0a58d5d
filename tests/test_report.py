"""`assistant report`: one run as HTML, runs side by side, the full-drain and extrapolated bases, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.config import load_config
from assistant.drain.begin import resume_run, start_run
from assistant.drain.doc import Doc, Heading, Para, Table, parse_md_tables
from assistant.drain.options import DrainOptions
from assistant.drain.report import write_compare, write_report
from assistant.drain.runlog import DrainError, RunFiles, scan_turns
from tests.drain_helpers import write_config, write_prompts


def test_reports_of_a_full_and_a_partial_pinned_run(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    cfg = load_config(write_config(tmp_path, ladder_files, capacity_wh=0.012))
    prompts = write_prompts(tmp_path)
    full = start_run(cfg, DrainOptions(tier="q2_k", prompts=prompts, until_pct=60.0), tmp_path / "a")
    part = start_run(cfg, DrainOptions(tier="q8_0", prompts=prompts, max_turns=2), tmp_path / "b")
    assert full.status == "finished" and part.status == "stopped" and part.turns == 2

    # a stopped run carries on with a higher limit, numbering on from where it stopped
    more = resume_run(cfg, tmp_path / "b", max_turns=3)
    assert more.status == "stopped" and more.turns == 3
    meta = RunFiles(tmp_path / "b").load_meta()
    assert list(scan_turns(tmp_path / "b" / "turns.jsonl", meta["run_id"]).seqs) == [0, 1, 2]

    written = write_report(tmp_path / "a", fmt="html")
    page = (tmp_path / "a" / "report.html").read_text()
    assert written[0] == tmp_path / "a" / "report.html"
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and '<img src="soc_voltage.png"' in page
    assert "<b>Energy: SIMULATED.</b>" in page and "measured over a full drain" in page
    report_a = json.loads((tmp_path / "a" / "report.json").read_text())
    assert set(report_a["tiers"]) == {"q2_k"} and report_a["tiers"]["q2_k"]["full_drain"]

    out = tmp_path / "side"
    files = write_compare([tmp_path / "a", tmp_path / "b"], out)
    assert files == [out / "compare.md", out / "compare.png"] and (out / "compare.png").stat().st_size > 1000
    tables = parse_md_tables((out / "compare.md").read_text())
    runs, per_tier = tables[0], tables[1]
    assert [r[1] for r in runs[1:]] == ["pinned q2_k", "pinned q8_0"]
    assert [r[2] for r in runs[1:]] == ["finished", "stopped"]
    rows = {r[2]: dict(zip(per_tier[0], r)) for r in per_tier[1:]}
    assert rows["q2_k"]["W/BL basis"].startswith("measured over a full drain")
    assert rows["q8_0"]["W/BL basis"].startswith("extrapolated") and rows["q8_0"]["turns"] == "3"
    study = tables[2]
    assert [r[1] for r in study[1:3]] == ["Q2_K", "Q8_0"] and study[3][6].startswith("Raspberry Pi 5")


def test_report_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DrainError, match="does not exist"):
        write_report(tmp_path / "missing")
    with pytest.raises(DrainError, match="is not a drain run"):
        write_report(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"run_id": "r", "pack": {}}))
    with pytest.raises(DrainError, match="has no turns yet"):
        write_report(tmp_path)


def test_document_renders_markdown_tables_that_parse_back() -> None:
    doc = Doc("t")
    doc.add(Heading("h"), Para("**bold** and `code` <x>"), Table(["a", "b|c"], [["1", "x | y"], ["2", "-"]]))
    md = doc.render("md")
    assert parse_md_tables(md) == [[["a", "b|c"], ["1", "x | y"], ["2", "-"]]]
    page = doc.render("html")
    assert "<b>bold</b> and <code>code</code> &lt;x&gt;" in page and '<td class="r">x | y</td>' in page


def test_a_governor_run_reports_its_plan(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    """A real governor drain (a question every 30 s of the pack's time): the report shows the target against what
    the run lasted, the answers per tier and the plan over time, from the turn log's governor notes."""
    cfg = load_config(write_config(tmp_path, ladder_files, capacity_wh=5.0, time_scale=30.0))
    opts = DrainOptions(prompts=write_prompts(tmp_path), target_hours=5.0, every_s=30.0, max_turns=6)
    assert start_run(cfg, opts, tmp_path / "g").turns == 6
    write_report(tmp_path / "g")
    text = (tmp_path / "g" / "report.md").read_text()
    assert "## The governor's plan" in text and "target 5 h of the pack's time; 0." in text
    assert "a question every 30 s of the pack's time" in text and "so far (the run is stopped, not at its cut-off)" in text
    plan = next(t for t in parse_md_tables(text) if t[0][0] == "turn" and "governor chose" in t[0])
    rows = [dict(zip(plan[0], r)) for r in plan[1:]]
    assert rows[0]["turn"] == "0" and rows[0]["governor chose"] == "(threshold ladder)"
    assert rows[0]["tier used"] == "q8_0" and "too little measured" in rows[0]["why"]
    chosen = [r for r in rows if r["governor chose"] != "(threshold ladder)"]
    assert chosen and all(r["governor chose"] == r["tier used"] for r in chosen)  # its choice is what ran
    assert all(r["projected h on it"] != "-" for r in chosen if r["why"].startswith("tier "))
    files = write_compare([tmp_path / "g"], tmp_path / "side")
    runs = parse_md_tables(files[0].read_text())[0]
    row = dict(zip(runs[0], runs[1]))
    assert row["target h"] == "5" and row["answers by tier"].startswith("q8_0 ") and float(row["pack h"]) > 0
