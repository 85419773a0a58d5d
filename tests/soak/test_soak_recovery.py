"""What the soak's faults broke, fixed: the loop outlives a lost microphone, reopens a speaker that came back,
takes a restored model again, logs turns that failed with a raw engine error, and keeps turn ids unique."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.device.appliance import HISTORY_LIMIT, Appliance, State
from assistant.errors import ModelError
from assistant.messages import TurnLogEntry
from assistant.turnlog import last_turn_number, numbered_turn_id, read_turns
from assistant.soak.checks import Outcome
from assistant.soak.driver import Driver
from fuzzing import time_limit
from assistant.soak.rig import BANDS, Rig, RigOptions, build_rig, question_clips


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    rig = build_rig(tmp_path_factory.mktemp("rig"), RigOptions(time_scale=8.0))
    driver = Driver(rig, question_clips(rig)[1:2], seed=5)  # "What time is it?"
    driver.start()
    yield driver
    driver.stop()
    rig.close()


def turn(driver: Driver) -> Outcome:
    outcome = driver._turn()
    assert outcome is not None and driver.alive, driver.loop_error
    return outcome


def last_record(rig: Rig) -> TurnLogEntry:
    return read_turns(rig.log_path).entries[-1]


def test_a_microphone_lost_before_the_press_does_not_end_the_loop(driven: Driver) -> None:
    rig = driven.rig
    assert turn(driven).status == "ok"
    rig.mic.unplug()
    failed = turn(driven)  # the press finds the dead stream while draining it
    assert failed.status == "error" and "AudioDeviceError" in (failed.error or "")
    assert driven.alive and rig.appliance.state is not State.STOPPING
    rig.mic.plug()
    assert turn(driven).status == "ok"  # reopened at the press


def test_a_speaker_that_came_back_is_reopened(driven: Driver) -> None:
    rig = driven.rig
    rig.speaker.unplug()
    assert turn(driven).status == "error"
    rig.speaker.plug()
    assert turn(driven).status == "ok"
    assert rig.speaker.reopens >= 1


def test_a_turn_that_fails_with_a_raw_engine_error_is_logged(driven: Driver) -> None:
    rig = driven.rig
    rig.synthesizer.arm(0, lambda: RuntimeError("voice crashed (injected)"))
    outcome = turn(driven)
    assert outcome.status == "error" and outcome.logged
    record = last_record(rig)
    assert record.turn_id == outcome.turn_id and str(record.error).startswith("RuntimeError")


def test_a_restored_model_file_brings_its_tier_back(driven: Driver) -> None:
    rig = driven.rig
    rig.swap_pack(BANDS["rich"])
    time.sleep(0.3)
    assert turn(driven).tier == "rich"
    rig.models["lean"].damage("truncated", random.Random(2))
    rig.swap_pack(BANDS["lean"])
    time.sleep(0.3)
    assert turn(driven).tier == "fixed"  # the next lower tier that works
    assert "lean" in rig.session.unavailable
    assert turn(driven).tier == "fixed"  # and the broken file is not loaded again at every turn
    rig.models["lean"].restore()
    assert turn(driven).tier == "lean"
    assert "lean" not in rig.session.unavailable


def test_a_pinned_tier_whose_model_broke_fails_instead_of_looping(driven: Driver) -> None:
    session = driven.rig.session
    fault = driven.rig.models["rich"]
    try:
        session.pinned = session.tiers.tier("rich")
        session.unavailable.discard("rich")
        if session.tier is not None and session.tier.name == "rich":
            session._switch(session.tiers.tier("fixed"))  # type: ignore[arg-type]
        fault.damage("not_gguf", random.Random(3))
        with time_limit(20), pytest.raises(ModelError):
            session.select_tier()
    finally:
        session.pinned = None
        fault.restore()


def test_turn_ids_are_unique_across_restarts_even_when_the_clock_went_back(driven: Driver,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The ids of a run continue from the log's last number: a restart in the same second, or with the
    clock set back (a Pi without an RTC before NTP), still gives new ids."""
    rig = driven.rig
    assert turn(driven).status == "ok"
    logged = [e.turn_id for e in read_turns(rig.log_path).entries]
    monkeypatch.setattr(time, "time", lambda: 0.0)  # 1970, as a Pi boots without network
    again = last_turn_number(rig.log_path)
    assert again == max(int(i[1:]) for i in logged)  # a restart starts above every logged id
    assert turn(driven).status == "ok"
    ids = [e.turn_id for e in read_turns(rig.log_path).entries]
    assert len(ids) == len(set(ids)) and ids[-1] == numbered_turn_id(again + 1)


def test_the_state_history_stays_bounded(driven: Driver) -> None:
    a = driven.rig.appliance
    b = Appliance(a.session, mic=a.mic, speaker=a.speaker, button=a.button, led=a.led, notifier=a.notifier,
                  policy=a.policy, shutdowner=a.shutdowner)
    for _ in range(HISTORY_LIMIT + 50):
        b.history.append((0.0, State.IDLE))
    b._enter(State.IDLE)
    assert len(b.history) == HISTORY_LIMIT
    a.led.set_state(a.led.history[-1][1])


def test_the_rig_is_real(driven: Driver, tmp_path: Path) -> None:
    rig = driven.rig
    assert rig.gauge.name == "ina219@0x42" and rig.session.gauge is rig.gauge
    assert rig.chip.reads > 0  # the energy meter reads the emulated chip on the emulated bus
    assert rig.session.transcriber is rig.transcriber and rig.transcriber.engine.startswith("pocketsphinx")
    assert rig.disk.mode in ("tmpfs", "/dev/full")
