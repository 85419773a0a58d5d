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
    config = write_config(tmp_path, ladder_files, capacity_wh=0.02, empty_soc_pct=10.0, idle_w=0.4, w_per_busy_core=3.4,
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
    done = len(before.entries)
    assert done >= 4 and before.seqs == list(range(done))
    # a power cut in the middle of writing the next record
    with (run / "turns.jsonl").open("ab") as fh:
        fh.write(f'{{"schema": 1, "turn_id": "{meta["run_id"]}#{done:06d}", "tier": "q2'.encode())

    assert main(args[:2] + ["drain-test", "--resume", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "finished" in shown and "1 torn line(s) in the turn log skipped" in shown

    after = scan_turns(run / "turns.jsonl", meta["run_id"])
    seqs = after.seqs
    assert seqs == list(range(len(seqs))) and len(seqs) > done  # contiguous, none twice, none lost
    assert not after.duplicates and not after.missing and after.bad_lines  # the torn line stays, skipped
    assert [r.turn_id for r in after.entries[:done]] == [r.turn_id for r in before.entries]
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "finished" and state["turns"] == len(seqs)
    assert state["words"] == sum(r.words for r in after.entries)
    seg = state["segments"][1]
    assert seg["from_seq"] == done and seg["torn_lines"] == 1

    # the simulated pack, the energy and the clock carry on from where the run died
    samples, _, _ = read_samples(run / "battery.jsonl")
    old = [s for s in samples if s["segment"] == 0]
    new = [s for s in samples if s["segment"] == 1]
    assert old == samples_before[:len(old)] and new
    # it resumes at the charge the last logged turn left (never above it), and the drawn energy plus the energy
    # left in the pack stays the pack's capacity in every sample of both segments: nothing lost, nothing twice
    last_after = before.entries[-1].battery_after
    assert last_after is not None and last_after.soc_pct is not None
    assert min(old[-1]["pack_soc_pct"], last_after.soc_pct) == pytest.approx(seg["soc_pct"])
    assert new[0]["pack_soc_pct"] <= seg["soc_pct"]
    capacity_j = meta["pack"]["capacity_wh"] * 3600
    for s in samples:
        assert s["pack_drawn_j"] + s["pack_soc_pct"] / 100 * capacity_j == pytest.approx(capacity_j, abs=0.05)
    assert old[-1]["e_j"] <= new[0]["e_j"] <= old[-1]["e_j"] + 30.0  # + loading the engines again
    assert old[-1]["t_s"] <= new[0]["t_s"] <= old[-1]["t_s"] + 1.5  # the time it was dead is not counted
    first_new = after.entries[done].battery_before
    assert first_new is not None and (first_new.soc_pct or 0) <= last_after.soc_pct
    assert samples[-1]["soc_pct"] <= 50.0 + 3.0
    drawn = [s["pack_drawn_j"] for s in samples]
    assert drawn == sorted(drawn)


def test_a_run_to_the_brownout_measures_and_stores_the_empty_point(tmp_path: Path, ladder_files: dict[str, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``--until brownout`` runs past the empty point on a real gauge; when the power comes back (a new
    boot), the resume turns where the pack gave out into this device's empty point."""
    from dataclasses import replace

    import assistant.drain.begin as begin
    from assistant.config import load_config
    from assistant.drain.begin import resume_run, start_run
    from assistant.drain.options import DrainOptions
    from assistant.drain.runlog import DrainError
    from assistant.power.empty_store import load_measured
    from assistant.sim.chips.bus import EmulatedBus
    from assistant.sim.chips.ina219 import EmulatedIna219
    from assistant.power.gauges.ina219 import Ina219Gauge
    from assistant.sim.pack import SimulatedPack

    cfg = load_config(write_config(tmp_path, ladder_files, capacity_wh=19.0,
                                   rungs=[tier("q2_k", ladder_files["Q2_K"], "Q2_K", 30.0),
                                          tier("fixed", None, "none", 20.0, kind="fixed")]))
    cfg = replace(cfg, shutdown=replace(cfg.shutdown, hold_s=1.0))
    monkeypatch.setattr(begin, "HALT_MARGIN_S", 0.0)  # a lead of hold_s alone: the run here lasts seconds
    pack = SimulatedPack(capacity_wh=19.0, start_soc_pct=9.0, cells_in_series=2, power_profile=lambda t: 6.0)
    chip = EmulatedIna219(shunt_ohms=0.1)
    chip.state_source = pack.read
    gauge = Ina219Gauge.for_board("waveshare_b", bus=EmulatedBus({0x42: chip}))
    run = tmp_path / "run"
    with pytest.raises(DrainError, match="a simulated pack does not brown out"):
        start_run(cfg, DrainOptions(until_brownout=True, prompts=write_prompts(tmp_path)), tmp_path / "sim")
    result = start_run(cfg, DrainOptions(until_brownout=True, prompts=write_prompts(tmp_path), max_turns=3), run,
                       gauge=gauge)
    assert result.status == "stopped" and result.turns == 3  # past the board's 12 %: no stop at the empty point
    state = json.loads((run / "state.json").read_text())
    state["status"] = "running"  # the power went while it ran ...
    state["segments"][-1]["boot_id"] = "a-boot-before-the-power-cut"  # ... and the device booted again
    (run / "state.json").write_text(json.dumps(state))
    measured = resume_run(cfg, run)
    assert measured.status == "finished" and measured.empty_point_measured
    point = load_measured(cfg.paths.state_dir, "ina219@0x42")
    assert point is not None and point.cell_voltage_v is not None and 3.0 < point.cell_voltage_v < 3.8
    assert "measured by drain run" in point.source
    assert json.loads((run / "state.json").read_text())["measured_empty_point"]["cell_voltage_v"] == point.cell_voltage_v
    with pytest.raises(DrainError, match="already finished"):
        resume_run(cfg, run)
