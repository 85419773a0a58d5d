"""A session on a simulated pack: tiers chosen from the battery, energy per turn, the turn log."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.config import AssistantConfig, PathsConfig
from assistant.errors import BatteryReadError, ConfigError, ModelError, ModelNotFound
from assistant.messages import BatteryReading
from assistant.power.cutoff import DEFAULT_EMPTY
from assistant.sim.pack import SimulatedPack
from assistant.power.tiers import Tier, TierConfig
from assistant.turnlog import read_turns, summarize
from assistant.session import Session
from assistant.speech.speaker import NullSpeaker


def ladder(files: dict[str, Path]) -> TierConfig:
    return TierConfig(tiers=[
        Tier(name="q8_0", model=files["Q8_0"], quant="Q8_0", enter_soc_pct=70, n_ctx=512, max_tokens=24, reply_words=20),
        Tier(name="q4_1", model=files["Q4_1"], quant="Q4_1", enter_soc_pct=45, n_ctx=512, max_tokens=16, reply_words=12),
        Tier(name="q2_k", model=files["Q2_K"], quant="Q2_K", enter_soc_pct=25, n_ctx=512, max_tokens=12, reply_words=8),
        Tier(name="fixed", kind="fixed", enter_soc_pct=10),
        Tier(name="shutdown", kind="shutdown"),
    ])


def config(tmp_path: Path, files: dict[str, Path]) -> AssistantConfig:
    base = AssistantConfig()
    return replace(base, paths=PathsConfig(state_dir=tmp_path / "state", models_dir=tmp_path / "m"),
                   tiers=ladder(files), battery=replace(base.battery, empty_soc_pct=10.0))


class TickingClock:
    """Time that moves on by ``step`` seconds at every look: the pack drains by how often the session
    reads it, the same on a quiet or a loaded machine."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_simulated_discharge_walks_down_the_ladder(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    # A 0.08 Wh pack at 20 W, on a clock that moves 0.1 s at every look: empty in a few dozen turns.
    clock = TickingClock(0.1)
    pack = SimulatedPack(capacity_wh=0.08, start_soc_pct=100.0, power_profile=lambda t: 20.0, clock=clock,
                         cpu_time_fn=lambda: 0.0)
    seen: list[str] = []
    records = []
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=pack, simulation=True,
                 start_meter=False) as session:
        session.meter.clock = clock
        assert session.empty_point.soc_pct == 10.0 and "battery.empty_" in session.empty_point.source
        for _ in range(400):
            session.meter.poll()
            tier = session.select_tier()
            if tier.kind == "shutdown":
                seen.append("shutdown")
                break
            rec = session.run_turn(NullSpeaker(), text="What is the battery level?" if tier.kind == "fixed"
                                   else "Name a large animal.")
            assert session.last_entry is not None and session.last_entry.turn_id == rec.turn_id
            records.append((rec, session.last_entry.tier))
            session.meter.poll()
            if not seen or seen[-1] != tier.name:
                seen.append(tier.name)
        log = read_turns(session.turn_log.path)
    assert seen == ["q8_0", "q4_1", "q2_k", "fixed", "shutdown"], seen
    fixed = [r for r, t in records if t == "fixed"]
    assert fixed and all("battery is at" in r.reply.lower() for r in fixed)
    assert len(log.entries) == len(records) and log.torn_lines == 0
    for entry, (rec, tier_name) in zip(log.entries, records):
        assert entry.turn_id == rec.turn_id and entry.tier == tier_name
        assert entry.battery_before is not None and entry.battery_before.source == "simulated"
        assert entry.battery_before.simulated
        assert entry.energy_measured is False  # a simulation is never called a measurement
        assert entry.energy_j is not None and entry.energy_j > 0
        if entry.kind == "llm":
            assert entry.tokens > 0 and entry.tpj == pytest.approx(entry.tokens / entry.energy_j, rel=1e-3)
            assert entry.wbl == pytest.approx(entry.words / entry.energy_j * (entry.pack_usable_j or 0), rel=1e-3)
    socs = [e.battery_before.soc_pct for e in log.entries if e.battery_before is not None]
    assert socs == sorted(socs, reverse=True)
    stats = summarize(log.entries)
    assert set(stats) == {"q8_0", "q4_1", "q2_k", "fixed"}
    assert stats["fixed"].tokens == 0


def test_a_simulated_pack_outside_a_simulation_decides_nothing(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    """On a device a simulated reading is as good as no gauge: the richest tier, as on external power,
    however low the (fake) pack reads."""
    pack = SimulatedPack(capacity_wh=10, start_soc_pct=12.0)
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=pack, start_meter=False) as s:
        assert s.reading() is not None and s.reading().simulated  # type: ignore[union-attr]
        assert s.policy_reading() is None
        assert s.select_tier().name == "q8_0"
    pack = SimulatedPack(capacity_wh=10, start_soc_pct=12.0)
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=pack, start_meter=False,
                 simulation=True) as s:
        assert s.select_tier().name == "fixed"


def test_a_stale_reading_is_not_used(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    now = [1000.0]
    pack = SimulatedPack(capacity_wh=10, start_soc_pct=50.0, clock=lambda: now[0], cpu_time_fn=lambda: 0.0,
                         power_profile=lambda t: 3.0)
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=pack, start_meter=False,
                 simulation=True) as s:
        s.meter.clock = lambda: now[0]
        assert s.reading() is not None
        now[0] += 11.0  # the gauge has not been read for longer than STALE_S
        assert s.reading() is None and s.policy_reading() is None


class FlakyGauge:
    """A gauge that fails every read after the first few."""

    name = "flaky"
    empty_point = DEFAULT_EMPTY
    poll_period_s = 0.1

    def __init__(self) -> None:
        self.reads = 0

    def read(self) -> BatteryReading:
        self.reads += 1
        if self.reads > 2:
            raise BatteryReadError("I2C bus error")
        return BatteryReading(time.monotonic(), 8.0, -0.5, -4.0, 80.0, False, False, "flaky")

    def close(self) -> None:
        pass

    def arm_power_restore(self) -> bool:
        return False


def test_a_failing_gauge_never_fails_a_turn(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=FlakyGauge(), start_meter=False) as s:
        s.run_turn(NullSpeaker(), text="Say hello.")
        s.run_turn(NullSpeaker(), text="Say hello again.")
        tiers = [e.tier for e in read_turns(s.turn_log.path).entries]
    assert tiers == ["q8_0", "q8_0"]
    assert s.meter.read_errors >= 1


def test_missing_tier_model_is_skipped(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    files = dict(ladder_files, Q8_0=tmp_path / "gone.gguf")
    pack = SimulatedPack(capacity_wh=10, start_soc_pct=95.0)
    with Session(config(tmp_path, files), with_asr=False, gauge=pack) as s:
        s.run_turn(NullSpeaker(), text="Say hello.")
    assert "q8_0" in s.unavailable
    assert s.last_entry is not None and s.last_entry.tier == "q4_1"


def test_corrupt_tier_model_is_skipped_at_load(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(ladder_files["Q8_0"].read_bytes()[:1_000_000])
    pack = SimulatedPack(capacity_wh=10, start_soc_pct=95.0)
    with Session(config(tmp_path, dict(ladder_files, Q8_0=bad)), with_asr=False, gauge=pack) as s:
        s.run_turn(NullSpeaker(), text="Say hello.")
    assert s.last_entry is not None and s.last_entry.tier == "q4_1" and "q8_0" in s.unavailable


def test_unwritable_turn_log_does_not_fail_the_turn(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    pack = SimulatedPack(capacity_wh=10, start_soc_pct=95.0)
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=pack,
                 turn_log=blocker / "turns.jsonl") as s:
        rec = s.run_turn(NullSpeaker(), text="Say hello.")
    assert rec.reply and s.turn_log.failures == 1


def test_the_log_says_when_a_turn_record_reached_the_disk(tmp_path: Path, ladder_files: dict[str, Path],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """"turn record on disk" is logged after the fsync, never for a record the disk refused: after a
    power cut the system bench holds every turn so reported to be in the log exactly once."""
    caplog.set_level("INFO", logger="assistant.session")
    pack = SimulatedPack(capacity_wh=10, start_soc_pct=95.0)
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=pack) as s:
        rec = s.run_turn(NullSpeaker(), text="Say hello.")
        path = s.turn_log.path
    said = [r.getMessage() for r in caplog.records if "turn record on disk" in r.getMessage()]
    assert said == [f"[{rec.turn_id}] turn record on disk: {path}"]
    assert [e.turn_id for e in read_turns(path).entries] == [rec.turn_id]
    caplog.clear()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=pack, turn_log=blocker / "turns.jsonl") as s:
        s.run_turn(NullSpeaker(), text="Say hello.")
    assert not [r for r in caplog.records if "turn record on disk" in r.getMessage()]


def test_pinned_tier_is_used_until_shutdown(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    pack = SimulatedPack(capacity_wh=10, start_soc_pct=95.0)
    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=pack, pin_tier="q2_k") as s:
        s.run_turn(NullSpeaker(), text="Say hello.")
        assert s.last_entry is not None and s.last_entry.tier == "q2_k"
    with pytest.raises(ConfigError, match="no tier named 'q9'"):
        Session(config(tmp_path, ladder_files), with_asr=False, gauge=SimulatedPack(capacity_wh=1), pin_tier="q9")


def test_llm_budget_caps_every_tier(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    """``llm.max_tokens`` and ``llm.n_ctx`` are the reply-length knobs the README names: each tier's
    own budget is capped by them (before, every tier silently overrode them)."""
    base = config(tmp_path, ladder_files)
    cfg = replace(base, llm=replace(base.llm, max_tokens=10, n_ctx=256))
    with Session(cfg, with_asr=False, gauge=SimulatedPack(capacity_wh=10), start_meter=False) as s:
        s.select_tier()
        assert s.tier is not None and s.tier.max_tokens == 24
        assert s.responder.max_tokens == 10 and s.responder.n_ctx == 256  # type: ignore[union-attr]


def test_a_failed_turn_keeps_what_it_did(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    """A voice that crashes on the third sentence: the record keeps the two sentences spoken, their
    words and tokens, and the error (before, it was logged as a blank turn with the full joules)."""
    from scripted import ScriptedResponder, ScriptedSynthesizer

    with Session(config(tmp_path, ladder_files), with_asr=False, gauge=SimulatedPack(capacity_wh=10),
                 start_meter=False) as s:
        s.select_tier()
        s.responder = ScriptedResponder("One two three. Four five six. Seven eight nine. Ten.")  # type: ignore[assignment]
        s.synthesizer = ScriptedSynthesizer(fail_at=2)  # type: ignore[assignment]
        s._switch = lambda tier: None  # type: ignore[method-assign]  # keep the scripted responder
        with pytest.raises(RuntimeError, match="the voice crashed"):
            s.run_turn(NullSpeaker(), text="Count, please.", turn_id="crash")
        (entry,) = read_turns(s.turn_log.path).entries
    assert entry.turn_id == "crash" and "the voice crashed" in (entry.error or "") and entry == s.last_entry
    assert entry.words == 6 and entry.tokens >= 6 and entry.tier == "q8_0" and not entry.answered


def test_a_tier_that_fails_to_load_is_a_logged_turn(tmp_path: Path, ladder_files: dict[str, Path]) -> None:
    """A pinned tier whose model went bad between turns: the turn fails, and the log says so (before,
    ``select_tier`` ran outside the logged block and the turn left no record at all)."""
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(ladder_files["Q2_K"].read_bytes())
    with Session(config(tmp_path, dict(ladder_files, Q2_K=bad)), with_asr=False, gauge=SimulatedPack(capacity_wh=10),
                 start_meter=False, pin_tier="q2_k") as s:
        bad.write_bytes(b"GGUF broken")
        with pytest.raises((ModelError, ModelNotFound)):
            s.run_turn(NullSpeaker(), text="Say hello.", turn_id="no-model")
        (entry,) = read_turns(s.turn_log.path).entries
    assert entry.turn_id == "no-model" and entry.tier is None and entry.error
