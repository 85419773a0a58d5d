"""Fuzzing the turn-log reader: any file content gives the good records and the count of bad ones, never an
exception or a hang; what it returns is safe for ``assistant stats``."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.messages import TurnLogEntry
from assistant.turnlog import TurnLog, TurnsRead, read_turns, summarize
from fuzzing import time_limit

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
FIELDS = ("schema", "turn_id", "tier", "words", "tokens", "energy_j", "tps", "first_audio_s", "total_s",
          "cancelled", "error", "pack_usable_j")
records = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=8)


def read(tmp_path: Path, data: bytes) -> TurnsRead:
    path = tmp_path / "turns.jsonl"
    path.write_bytes(data)
    with time_limit(5.0):
        return read_turns(path)


def check(result: TurnsRead, data: bytes) -> None:
    """Every line is accounted for at most once; every entry is typed as its fields say, so ``stats``
    can add and compare them; the summary counts every entry."""
    lines = data.split(b"\n")
    assert result.torn_lines <= 1
    assert len(result.entries) + len(result.bad_lines) + result.torn_lines <= sum(1 for x in lines if x.strip())
    for e in result.entries:
        assert isinstance(e, TurnLogEntry) and isinstance(e.schema, int) and isinstance(e.turn_id, str)
        assert all(isinstance(n, int) for n in (e.words, e.tokens, e.prompt_tokens))
        assert all(x is None or isinstance(x, float) for x in (e.energy_j, e.tps, e.total_s, e.pack_usable_j))
        assert e.tier is None or isinstance(e.tier, str)
    with time_limit(5.0):
        stats = summarize(result.entries)
    assert sum(s.turns for s in stats.values()) == len(result.entries)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    check(read(tmp_path, data), data)


@FUZZ
@given(st.lists(st.one_of(records.map(lambda r: json.dumps(r).encode()), st.binary(max_size=40),
                          st.just(b'{"schema": 1, "turn_id": "t1", "words": 3'),  # torn
                          st.just(json.dumps({"schema": 1, "turn_id": "ok", "words": 2}).encode())),
                max_size=12),
       st.booleans())
def test_arbitrary_lines(tmp_path: Path, lines: list[bytes], final_newline: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    check(read(tmp_path, data), data)


@FUZZ
@given(st.lists(st.fixed_dictionaries({"schema": st.integers(0, 3), "turn_id": st.text(max_size=8)},
                                      optional={"tier": st.text(max_size=6) | st.none(),
                                                "words": st.integers(0, 10**6), "tokens": st.integers(0, 10**6),
                                                "energy_j": st.floats(0, 1e6) | st.none(),
                                                "tps": st.floats(0, 1e4) | st.none(),
                                                "total_s": st.floats(0, 1e4) | st.none(),
                                                "cancelled": st.booleans(), "error": st.text(max_size=8) | st.none(),
                                                "pack_usable_j": st.floats(0, 1e7) | st.none()}),
                max_size=10))
def test_records_of_the_right_types_summarize(tmp_path: Path, entries: list[dict[str, object]]) -> None:
    data = "".join(json.dumps(e) + "\n" for e in entries).encode()
    result = read(tmp_path, data)
    assert len(result.entries) == len(entries)
    check(result, data)
    stats = summarize(result.entries)
    assert sum(s.words for s in stats.values()) == sum(int(e.get("words") or 0) for e in entries)  # type: ignore[call-overload]


def test_a_torn_last_line_is_reported_and_the_next_record_survives(tmp_path: Path) -> None:
    log = TurnLog(tmp_path / "turns.jsonl")
    log.append({"schema": 1, "turn_id": "a"})
    with (tmp_path / "turns.jsonl").open("ab") as fh:
        fh.write(b'{"schema": 1, "turn_id": "to')  # power cut while writing
    assert read_turns(log.path).torn_lines == 1
    log.append({"schema": 1, "turn_id": "b"})
    result = read_turns(log.path)
    assert [r.turn_id for r in result.entries] == ["a", "b"] and result.bad_lines == [2]


def test_a_record_with_a_non_numeric_count_does_not_break_stats(tmp_path: Path) -> None:
    result = read(tmp_path, b'{"schema": 1, "turn_id": "x", "words": "many", "tokens": 4, "energy_j": "2"}\n')
    (e,) = result.entries
    assert (e.words, e.tokens, e.energy_j) == (0, 4, None)
    stats = summarize(result.entries)["(none)"]
    assert (stats.turns, stats.words, stats.tokens, stats.energy_turns) == (1, 0, 4, 0)
