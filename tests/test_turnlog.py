"""The turn log: fsynced JSONL records, a reader that survives torn and corrupt lines, per-tier stats."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from assistant.messages import BatteryPoint, BatteryReading, TurnLogEntry, TurnRecord
from assistant.power.energy import EnergySpan
from assistant.power.tiers import Tier
from assistant.stats import percentile
from assistant.turnlog import (SCHEMA, TurnLog, last_turn, last_turn_number, numbered_turn_id, read_turns, summarize,
                               turn_entry)

TIER = Tier(name="q4_k_m", model=Path("/m/SmolLM2.Q4_K_M.gguf"), quant="Q4_K_M", enter_soc_pct=40,
            max_tokens=80, reply_words=32)
PACK_J = 60_000.0


def battery(soc: float, v: float) -> BatteryReading:
    return BatteryReading(t_monotonic=1.0, voltage_v=v, current_a=-0.5, power_w=-v * 0.5, soc_pct=soc,
                          charging=False, external_power=False, source="ina219@0x42")


def record(turn_id: str = "t1", **kw: Any) -> TurnRecord:
    base: dict[str, Any] = dict(prompt_tokens=40, tokens=20, words=15, tps=80.0, asr_final_s=0.2,
                                first_token_s=0.35, first_audio_s=0.5, total_s=1.5, llm_model="SmolLM2.Q4_K_M.gguf")
    base.update(kw)
    return TurnRecord(turn_id=turn_id, **base)


def entry(turn_id: str = "t1", *, energy: EnergySpan | None = EnergySpan(10.0, 1.5, True), **kw: Any) -> TurnLogEntry:
    return turn_entry(record(turn_id, **kw), tier=TIER, before=battery(55.0, 7.61), after=battery(54.9, 7.6),
                      energy=energy, usable_energy_j=PACK_J, now=1_700_000_000.25)


def test_entry_fields_and_rates() -> None:
    e = entry()
    assert e.schema == SCHEMA == 1
    assert e.time == "2023-11-14T22:13:20.250+00:00" and e.unix == 1_700_000_000.25
    assert (e.tier, e.quant, e.model, e.kind) == ("q4_k_m", "Q4_K_M", "SmolLM2.Q4_K_M.gguf", "llm")
    assert e.battery_before == BatteryPoint(55.0, 7.61, -3.805, "ina219@0x42", False)
    assert e.to_json()["battery_before"] == {"soc_pct": 55.0, "voltage_v": 7.61, "power_w": -3.805,
                                             "source": "ina219@0x42", "simulated": False}
    assert e.battery_after is not None and e.battery_after.soc_pct == 54.9
    assert e.energy_j == 10.0 and e.energy_measured is True
    assert e.tpj == 2.0                      # 20 tokens / 10 J
    assert e.wbl == 90_000.0                 # 15 words / 10 J x 60 kJ
    assert e.words_per_token == 0.75
    assert (e.asr_final_s, e.first_token_s, e.first_audio_s, e.total_s) == (0.2, 0.35, 0.5, 1.5)
    assert (e.max_tokens, e.reply_words, e.cancelled, e.error) == (80, 32, False, None)
    assert e.answered and e.governor is None


def test_entry_without_energy_or_tokens() -> None:
    e = entry(energy=None, tokens=0, words=0, tps=float("nan"))
    assert e.energy_j is None and e.tpj is None and e.wbl is None and e.words_per_token is None
    assert e.tps is None  # NaN never reaches the file
    assert not e.answered


def test_a_hand_edited_line_reads_with_wrong_figures_as_missing() -> None:
    data = entry().to_json()
    data.update(words="many", tokens=None, energy_j="ten", tps=float("inf"), battery_before=[1, 2],
                cancelled="yes", energy_measured=1, governor="none", tier=7)
    e = TurnLogEntry.from_json(data)
    assert (e.words, e.tokens, e.energy_j, e.tps, e.battery_before) == (0, 0, None, None, None)
    assert (e.cancelled, e.energy_measured, e.governor, e.tier) == (False, None, None, None)
    for bad in ({}, [], {"schema": 1}, {"schema": True, "turn_id": "x"}, {"schema": 1, "turn_id": 3}):
        with pytest.raises(ValueError):
            TurnLogEntry.from_json(bad)


def test_round_trip_and_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    log = TurnLog(tmp_path / "state" / "turns.jsonl")  # the directory is created
    written = [log.write_turn(record(f"t{i}", words=10 + i), tier=TIER, before=None, after=None,
                              energy=EnergySpan(5.0, 1.0, False), usable_energy_j=PACK_J) for i in range(3)]
    assert len(synced) == 3 and log.written == 3 and log.failures == 0
    got = read_turns(log.path)
    assert got.entries == written and got.torn_lines == 0 and got.bad_lines == []
    assert last_turn(log.path) == written[-1]
    assert log.path.read_text().count("\n") == 3


def test_torn_last_line_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    log = TurnLog(path)
    log.append(entry("t1").to_json())
    log.append(entry("t2").to_json())
    full = path.read_bytes()
    path.write_bytes(full[: len(full) - 40])  # power cut in the middle of writing t2
    got = read_turns(path)
    assert [r.turn_id for r in got.entries] == ["t1"]
    assert got.torn_lines == 1 and got.bad_lines == []
    assert last_turn(path) is None  # the tail is torn: no last turn rather than a wrong one
    # the next record must not be glued onto the torn line
    log.append(entry("t3").to_json())
    got = read_turns(path)
    assert [r.turn_id for r in got.entries] == ["t1", "t3"]
    assert got.torn_lines == 0 and got.bad_lines == [2]


def test_garbage_in_the_middle_is_skipped_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    lines = [json.dumps(entry("t1").to_json()), "{not json", "", json.dumps([1, 2]), '{"no_schema": 1}',
             "\xff\xfe".encode("latin-1").decode("latin-1"), json.dumps(entry("t2").to_json()),
             '{"schema": 1, "no_turn_id": true}']
    path.write_bytes(b"\n".join(x.encode("latin-1") if x.startswith("\xff") else x.encode() for x in lines) + b"\n")
    got = read_turns(path)
    assert [r.turn_id for r in got.entries] == ["t1", "t2"]  # the last line is JSON but no turn: skipped too
    assert got.bad_lines == [2, 4, 5, 6] and got.torn_lines == 0


def test_missing_log_reads_empty(tmp_path: Path) -> None:
    got = read_turns(tmp_path / "nothing.jsonl")
    assert got.entries == [] and got.torn_lines == 0 and got.bad_lines == []
    assert last_turn(tmp_path / "nothing.jsonl") is None


def test_full_disk_is_logged_once_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    log = TurnLog(tmp_path / "turns.jsonl")
    log.append(entry("t0").to_json())

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with caplog.at_level(logging.WARNING, logger="assistant.jsonl"):
        results = [log.append(entry(f"t{i}").to_json()) for i in range(1, 4)]
    assert results == [False, False, False]
    assert log.failures == 3 and log.written == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "No space left" in warnings[0].getMessage()


class ShortDisk:
    """A file object whose disk takes ``room`` more bytes and then refuses: partial writes included."""

    def __init__(self, real: Any, room: int) -> None:
        self.real, self.room = real, room

    def write(self, data: Any) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        part = bytes(data)[: self.room]
        self.room -= len(part)
        return int(self.real.write(part))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __enter__(self) -> ShortDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()


@pytest.mark.parametrize("room", [0, 1, 17, 120])
def test_a_refused_record_leaves_the_file_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         room: int) -> None:
    """The disk takes part of the record and then refuses the rest: the file must read back exactly as
    before, so no partial line is left to swallow or corrupt the next record."""
    path = tmp_path / "turns.jsonl"
    log = TurnLog(path)
    log.append(entry("t0").to_json())
    before = path.read_bytes()
    real_open = Path.open

    def short_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        return ShortDisk(real_open(self, *args, **kwargs), room)

    monkeypatch.setattr(Path, "open", short_open)
    assert log.append(entry("t1-" + "x" * 200).to_json()) is False
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert log.append(entry("t2").to_json()) is True
    assert [r.turn_id for r in read_turns(path).entries] == ["t0", "t2"] and read_turns(path).bad_lines == []


def test_a_real_full_file_system_leaves_the_file_byte_identical(tmp_path: Path) -> None:
    """The same on a full tmpfs, the kernel's own ENOSPC and partial writes (as root; /dev/full otherwise)."""
    from assistant.soak.file_faults import DiskFull

    disk = DiskFull(tmp_path / "mnt", size_kb=64)
    mounted = disk.mount()
    try:
        log = TurnLog((disk.mountpoint if mounted else tmp_path) / "turns.jsonl")
        disk.log_holder = log
        refused = 0
        for i in range(20):
            log.append(entry(f"ok{i}").to_json())
            disk.fill()
            for size in (3000, 6000, 12000):
                before = log.path.read_bytes() if log.path.exists() else b""
                if not log.append(entry(f"big{i}-{size}-" + "y" * size).to_json()):
                    refused += 1
                    assert log.path.read_bytes() == before
            disk.free()
        assert refused > 0 and read_turns(log.path).bad_lines == []
    finally:
        disk.unmount()


def test_unwritable_directory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the state directory should be")
    log = TurnLog(blocker / "turns.jsonl")
    with caplog.at_level(logging.WARNING, logger="assistant.jsonl"):
        assert log.append(entry().to_json()) is False
        assert log.append(entry().to_json()) is False
    assert log.failures == 2
    assert caplog.text.count("cannot write turn log") == 1


def test_unencodable_record_is_dropped_not_raised() -> None:
    log = TurnLog(Path("/nonexistent/never-written.jsonl"))
    assert log.append({"schema": 1, "turn_id": "x", "bad": float("inf")}) is False
    assert log.failures == 1


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)


def test_summarize_hand_checked() -> None:
    rs = [
        entry("a1", tokens=20, words=15, tps=80.0, first_audio_s=0.4, total_s=1.0, energy=EnergySpan(10.0, 1, True)),
        entry("a2", tokens=40, words=30, tps=70.0, first_audio_s=0.6, total_s=2.0, energy=EnergySpan(20.0, 2, False)),
        entry("a3", tokens=10, words=5, tps=None, first_audio_s=None, total_s=3.0, energy=None, cancelled=True),
    ]
    other = turn_entry(record("b1", tokens=0, words=12, tps=None, error="boom"),
                       tier=Tier(name="fixed", kind="fixed", enter_soc_pct=5), before=None, after=None,
                       energy=EnergySpan(2.0, 1, True), usable_energy_j=PACK_J)
    stats = summarize(rs + [other])
    a = stats["q4_k_m"]
    assert (a.turns, a.words, a.tokens) == (3, 50, 70)
    assert (a.energy_j, a.energy_turns, a.measured_turns) == (30.0, 2, 1)
    assert a.tps_mean == 75.0
    assert a.tpj == pytest.approx(60 / 30)                 # tokens of the turns with energy / their joules
    assert a.wbl == pytest.approx(45 / 30 * PACK_J)        # 90 000 words per battery life
    assert a.words_per_token == pytest.approx(50 / 70)
    assert a.first_audio_p50_s == pytest.approx(0.5) and a.first_audio_p95_s == pytest.approx(0.59)
    assert a.total_p50_s == 2.0 and a.total_p95_s == pytest.approx(2.9)
    assert (a.cancelled, a.errors) == (1, 0)
    f = stats["fixed"]
    assert f.turns == 1 and f.tpj == 0.0 and f.words_per_token is None and f.errors == 1
    assert f.wbl == pytest.approx(12 / 2.0 * PACK_J)
    assert summarize(rs, usable_energy_j=1000.0)["q4_k_m"].wbl == pytest.approx(45 / 30 * 1000.0)


def test_turn_numbers_continue_from_the_highest_in_the_log(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    assert last_turn_number(path) == 0 and numbered_turn_id(1) == "t000001"
    log = TurnLog(path)
    for tid in ("t000007", "t000041", "run#000099", "t000003", "t1796538208-19-9cb4", "x12"):
        log.append(entry(tid).to_json())
    with path.open("ab") as fh:
        fh.write(b'{"schema": 1, "turn_id": "t000099"')  # torn: never counted as written
    assert last_turn_number(path) == 41
