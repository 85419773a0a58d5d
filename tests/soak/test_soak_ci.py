"""The soak in its CI form: fault-injected turns on simulated hardware plus kill and restart cycles, under 3 minutes.

The long form runs the same test with more turns: ``ASSISTANT_SOAK_TURNS=1000 pytest tests/soak -q`` (or
``assistant soak --turns 1000``); ``ASSISTANT_SOAK_SEED`` and ``ASSISTANT_SOAK_RESTARTS`` change the schedule.
Memory is judged in runs of 400 steps or more (about 600 turns): RSS climbs for the first 300 steps.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from assistant.soak import run_soak, summary
from assistant.soak.driver import ACTION_WEIGHTS, FAULT_WEIGHTS

TURNS = int(os.environ.get("ASSISTANT_SOAK_TURNS", "100"))
SEED = int(os.environ.get("ASSISTANT_SOAK_SEED", "1"))
RESTARTS = int(os.environ.get("ASSISTANT_SOAK_RESTARTS", "2"))


def test_the_appliance_survives_the_soak(tmp_path: Path) -> None:
    t0 = time.monotonic()
    report = run_soak(tmp_path / "out", turns=TURNS, seed=SEED, restarts=RESTARTS)
    text = summary(report)
    assert report.passed, text
    assert report.appliance_turns >= TURNS and report.turns_lost == 0
    assert set(report.faults) == set(FAULT_WEIGHTS), report.faults  # every kind of fault was injected
    assert set(report.actions) == set(ACTION_WEIGHTS), report.actions  # and every button action
    assert report.recovered.get("model_restored", 0) >= 1
    assert report.completed >= report.appliance_turns // 2
    assert report.log is not None and report.log.torn_last_line <= 1
    if RESTARTS:
        assert report.restarts is not None and report.restarts.sigterm >= 1 and report.restarts.kill9 >= 1
        assert report.restarts.served_after_last_restart and not report.restarts.duplicate_ids
    saved = json.loads((tmp_path / "out" / "soak-report.json").read_text())
    assert saved["passed"] is True and saved["appliance_turns"] == report.appliance_turns
    print(f"soak took {time.monotonic() - t0:.0f} s:\n{text}")  # shown with -s; about 105 s for 100 turns here
