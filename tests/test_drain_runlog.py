"""The run files: deterministic turn ids, torn and duplicate lines found, atomic state, options kept for a resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistant.drain.options import DrainOptions
from assistant.atomic import write_json_atomic
from assistant.drain.runlog import DrainError, RunFiles, scan_turns, seq_of, turn_id
from assistant.drain.state import RunState, new_state
from assistant.errors import ConfigError
from assistant.jsonl import last_line
from assistant.messages import TurnLogEntry
from assistant.turnlog import TurnLog, last_turn


def _line(run: str, seq: int, words: int = 3) -> dict[str, object]:
    return {"schema": 1, "turn_id": turn_id(run, seq), "tier": "q8_0", "words": words, "tokens": 4, "energy_j": 1.5}


def test_turn_ids_are_deterministic_and_parse_back() -> None:
    assert turn_id("r1", 7) == "r1#000007"
    assert seq_of("r1", "r1#000007") == 7
    assert seq_of("r1", "r2#000007") is None and seq_of("r1", "r1#x") is None and seq_of("r1", None) is None


def test_scan_finds_torn_duplicate_missing_and_foreign_lines(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    log = TurnLog(path)
    for seq in (0, 1, 1, 3):
        log.append(_line("run", seq))
    log.append(_line("other", 0))
    with path.open("ab") as fh:
        fh.write(b'{"schema": 1, "turn_id": "run#000004", "ti')
    scan = scan_turns(path, "run")
    assert scan.seqs == [0, 1, 3] and [e.turn_id for e in scan.entries] == ["run#000000", "run#000001", "run#000003"]
    assert scan.duplicates == [1] and scan.missing == [2] and scan.foreign == 1 and scan.torn_lines == 1
    assert scan.next_seq == 4
    log.append(_line("run", 4))  # the appender closes the torn line first: it becomes a bad line, not a lost record
    again = scan_turns(path, "run")
    assert again.torn_lines == 0 and again.bad_lines == [6] and again.next_seq == 5
    assert last_line(path) == dict(_line("run", 4))
    assert last_turn(path) == TurnLogEntry.from_json(_line("run", 4))


def test_last_record_ignores_an_unterminated_tail(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    assert last_line(path) is None
    path.write_text(json.dumps({"a": 1}) + "\n" + '{"a": 2')
    assert last_line(path) is None  # the torn tail is not a record, and nothing else is trusted blindly
    path.write_text(json.dumps({"a": 1}) + "\n")
    assert last_line(path) == {"a": 1}
    assert last_turn(path) is None  # a line, but not a turn


def test_state_is_replaced_atomically_and_counts_turns(tmp_path: Path) -> None:
    files = RunFiles(tmp_path)
    state = RunState(files, new_state("run"))
    state.add_turn(TurnLogEntry.from_json(_line("run", 0, words=5)), 0)
    state.add_turn(TurnLogEntry.from_json({**_line("run", 1, words=2), "error": "NoSpeech: nothing heard"}), 1)
    state.save()
    data = json.loads(files.state.read_text())
    assert (data["turns"], data["words"], data["tokens"], data["errors"], data["next_seq"]) == (2, 7, 8, 1, 2)
    assert data["turn_energy_j"] == pytest.approx(3.0)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert oct(files.state.stat().st_mode & 0o777) == "0o600"  # as every atomically written file (README)
    write_json_atomic(files.state, {"x": 1})
    assert json.loads(files.state.read_text()) == {"x": 1}


def test_meta_of_a_missing_or_foreign_directory_is_our_error(tmp_path: Path) -> None:
    with pytest.raises(DrainError, match="does not exist"):
        RunFiles(tmp_path / "nope").load_meta()
    with pytest.raises(DrainError, match="is not a drain run"):
        RunFiles(tmp_path).load_meta()
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(DrainError, match="meta.json is missing or unreadable"):
        RunFiles(tmp_path).load_meta()


def test_options_round_trip_and_reject_bad_values(tmp_path: Path) -> None:
    opts = DrainOptions(tier="q2_k", prompts=tmp_path / "p.txt", until_pct=20, time_scale=30, capacity_wh=0.5,
                        speaker="files", max_turns=9)
    assert DrainOptions.from_json(json.loads(json.dumps(opts.to_json())), "meta.json") == opts
    assert opts.mode == "pinned q2_k" and DrainOptions().mode == "adaptive"
    # a run's id names its mode: a governor run is not called adaptive
    assert [o.slug for o in (opts, DrainOptions(), DrainOptions(target_hours=2.0))] == ["q2_k", "adaptive", "governor"]
    bad: list[dict[str, Any]] = [{"until_pct": 100}, {"time_scale": 0}, {"capacity_wh": -1}, {"speaker": "hdmi"},
                                 {"max_turns": 0}]
    for values in bad:
        with pytest.raises(ConfigError):
            DrainOptions.from_json(values, "test")
    with pytest.raises(ConfigError, match="meta.json: the run's options cannot be read"):
        DrainOptions.from_json({"colour": "red"}, "meta.json")
