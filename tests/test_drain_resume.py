"""A drain run killed with SIGKILL mid-run, its turn log torn, then resumed: continuity of turns, energy and charge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.drain.runlog import read_samples, scan_turns
from drain_helpers import tier, write_config, write_prompts

ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_9_mid_run_then_resume(tmp_path: Path, ladder_files: dict[str, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ladder_files, capacity_wh=0.02, shutdown_soc_pct=10.0,
                          rungs=[tier("q2_k", ladder_files["Q2_K"], "Q2_K", 30.0), tier("fixed", None, "none", 20.0,
                                                                                     kind="fixed")])
    run = tmp_path / "run"
    args = ["--config", str(config), "drain-test", "--tier", "q2_k", "--until", "50",
            "--prompts", str(write_prompts(tmp_path)), "--out", str(run)]
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "-q", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _lines(run / "turns.jsonl") < 4:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    meta = json.loads((run / "meta.json").read_text())
    before = scan_turns(run / "turns.jsonl", meta["run_id"])
    samples_before, _, _ = read_samples(run / "battery.jsonl")
    state_before = json.loads((run / "state.json").read_text())
    assert state_before["status"] == "running"
    done = len(before.records)
    assert done >= 4 and [r["seq"] for r in before.records] == list(range(done))
    # a power cut in the middle of writing the next record
    with (run / "turns.jsonl").open("ab") as fh:
        fh.write(f'{{"schema": 1, "turn_id": "{meta["run_id"]}#{done:06d}", "tier": "q2'.encode())

    assert main(args[:2] + ["drain-test", "--resume", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "finished" in shown and "1 torn line(s) in the turn log skipped" in shown

    after = scan_turns(run / "turns.jsonl", meta["run_id"])
    seqs = [r["seq"] for r in after.records]
    assert seqs == list(range(len(seqs))) and len(seqs) > done  # contiguous, none twice, none lost
    assert not after.duplicates and not after.missing and after.bad_lines  # the torn line stays, skipped
    assert [r["turn_id"] for r in after.records[:done]] == [r["turn_id"] for r in before.records]
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "finished" and state["turns"] == len(seqs)
    assert state["words"] == sum(r["words"] for r in after.records)
    seg = state["segments"][1]
    assert seg["from_seq"] == done and seg["torn_lines"] == 1

    # the simulated pack, the energy and the clock carry on from where the run died
    samples, _, _ = read_samples(run / "battery.jsonl")
    old = [s for s in samples if s["segment"] == 0]
    new = [s for s in samples if s["segment"] == 1]
    assert old == samples_before[:len(old)] and new
    # it resumes at the charge the last logged turn left (never above it), and the drawn energy plus the energy
    # left in the pack stays the pack's capacity in every sample of both segments: nothing lost, nothing twice
    assert min(old[-1]["pack_soc_pct"], before.records[-1]["battery_after"]["soc_pct"]) == pytest.approx(seg["soc_pct"])
    assert new[0]["pack_soc_pct"] <= seg["soc_pct"]
    capacity_j = meta["pack"]["capacity_wh"] * 3600
    for s in samples:
        assert s["pack_drawn_j"] + s["pack_soc_pct"] / 100 * capacity_j == pytest.approx(capacity_j, abs=0.05)
    assert old[-1]["e_j"] <= new[0]["e_j"] <= old[-1]["e_j"] + 30.0  # + loading the engines again
    assert old[-1]["t_s"] <= new[0]["t_s"] <= old[-1]["t_s"] + 1.5  # the time it was dead is not counted
    first_new = after.records[done]
    assert first_new["battery_before"]["soc_pct"] <= before.records[-1]["battery_after"]["soc_pct"]
    assert samples[-1]["soc_pct"] <= 50.0 + 3.0
    drawn = [s["pack_drawn_j"] for s in samples]
    assert drawn == sorted(drawn)
