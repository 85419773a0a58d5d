"""The appliance loop on simulated hardware: mock button, clip-fed microphone, WAV speaker, simulated pack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from assistant.commands.turn import demo_question
from assistant.config import AssistantConfig, LlmConfig, PathsConfig
from assistant.device.appliance import TRANSITIONS, Appliance, State, _Turn
from assistant.device.hardware import SimControls, build_appliance
from assistant.device.led import LedState
from assistant.messages import AudioClip
from assistant.turnlog import read_turns
from assistant.speech.wav import read_wav


def sim_config(tmp_path: Path, **llm: object) -> AssistantConfig:
    cfg = replace(AssistantConfig(), paths=PathsConfig(state_dir=tmp_path / "state", models_dir=tmp_path / "models"))
    return replace(cfg, llm=replace(LlmConfig(), **llm)) if llm else cfg  # type: ignore[arg-type]


class Running:
    """An appliance serving in a background thread."""

    def __init__(self, appliance: Appliance, controls: SimControls) -> None:
        self.appliance = appliance
        self.controls = controls
        self.thread = threading.Thread(target=appliance.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.appliance.state is State.IDLE and self.appliance.history, 60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.appliance.stop_event.set()
        self.thread.join(20)
        self.appliance.close()
        assert not self.thread.is_alive()


def wait_for(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def question() -> AudioClip:
    return read_wav(demo_question())


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    appliance, controls = build_appliance(sim_config(tmp_path), sim=True, sim_out=tmp_path / "speaker.wav")
    assert controls is not None
    with Running(appliance, controls) as r:
        yield r


def led_states(appliance: Appliance) -> list[LedState]:
    states = [s for _, s in appliance.led.history]
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def test_a_whole_turn_by_pressing_the_button(running: Running, question: AudioClip) -> None:
    app, ctl = running.appliance, running.controls
    ctl.ask(question)
    wait_for(lambda: app.turns == 1 and app.state is State.IDLE and app._turn is None, 60)
    log = read_turns(app.session.turn_log.path)
    assert len(log.entries) == 1
    record = app.last_record
    assert record is not None
    assert record.transcript == "what is the capital of france"
    assert "Paris" in record.reply
    entry = log.entries[0]
    assert entry.turn_id == record.turn_id and entry.words == record.words >= 4 and entry.tier == "q4_1"
    assert "Paris" not in app.session.turn_log.path.read_text()  # the log keeps counts, not the conversation
    states = led_states(app)
    for s in (LedState.LISTENING, LedState.THINKING, LedState.SPEAKING, LedState.IDLE):
        assert s in states, states
    order = [states.index(s) for s in (LedState.LISTENING, LedState.THINKING, LedState.SPEAKING)]
    assert order == sorted(order)
    audio = np.frombuffer(ctl.speaker.audio.pcm, "<i2")
    assert ctl.speaker.seconds > 1.5 and np.abs(audio).max() > 3000  # earcons and the spoken answer


def test_every_state_change_is_a_listed_transition_and_a_stopped_turn_changes_nothing(tmp_path: Path) -> None:
    appliance, _ = build_appliance(sim_config(tmp_path), sim=True, sim_out=tmp_path / "speaker.wav")
    try:
        assert set(TRANSITIONS) == set(State)
        assert not appliance._enter(State.SPEAKING) and appliance.state is State.IDLE  # idle -> speaking: none
        appliance._on_press()
        replaced, turn = _Turn(turn_id="t1", started=0.0), _Turn(turn_id="t2", started=0.0)
        appliance._turn = turn
        appliance._on_audio_ended(replaced)  # a late event of a turn a barge-in replaced
        assert appliance.state is State.LISTENING
        appliance._on_audio_ended(turn)
        assert appliance.state is State.THINKING
        turn.cancel.set()
        appliance._on_first_audio(turn)  # a cancelled turn's reply does not start speaking
        assert appliance.state is State.THINKING
        appliance._on_power_off()
        appliance._on_turn_over()  # a turn ending during a power-off does not make it idle
        assert appliance.state is State.STOPPING and not appliance._enter(State.LISTENING)
        appliance._on_ready()  # the power-off was refused
        assert [s for _, s in appliance.history] == [State.LISTENING, State.THINKING, State.STOPPING, State.IDLE]
    finally:
        appliance._turn = None
        appliance.close()


def test_a_tap_is_ignored(running: Running) -> None:
    app, ctl = running.appliance, running.controls
    ctl.press()
    time.sleep(0.1)
    ctl.release()
    wait_for(lambda: app._turn is None and app.state is State.IDLE, 10)
    entries = read_turns(app.session.turn_log.path).entries
    assert len(entries) <= 1 and app.last_record is None  # nothing was answered
    assert all(e.words == 0 and e.tokens == 0 and (e.cancelled or e.error) for e in entries), entries
    states = led_states(app)
    assert LedState.THINKING not in states and LedState.SPEAKING not in states, states


def test_barge_in_cancels_the_reply_and_listens(tmp_path: Path, question: AudioClip) -> None:
    cfg = sim_config(tmp_path, system_prompt="You are a storyteller. Answer in eight long sentences.",
                     max_tokens=200)
    appliance, controls = build_appliance(cfg, sim=True, sim_out=tmp_path / "speaker.wav")
    assert controls is not None
    with Running(appliance, controls):
        controls.ask(question)
        wait_for(lambda: appliance.state is State.SPEAKING, 60)
        controls.press()
        wait_for(lambda: appliance.state is State.LISTENING and appliance.last_cancel_s is not None, 10)
        assert appliance.last_cancel_s is not None and appliance.last_cancel_s < 10.0  # stopped, not abandoned
        controls.mic.say(question)
        assert controls.mic.wait_said(question.seconds + 30)  # the new turn heard all of it
        controls.release()
        wait_for(lambda: appliance.turns == 2 and appliance._turn is None, 60)
        records = read_turns(appliance.session.turn_log.path).entries
    assert [r.cancelled for r in records] == [True, False]
    assert not [t for t in threading.enumerate() if t.name.startswith(("tts-", "turn-"))]


def test_a_press_while_speaking_stops_the_reply_where_it_is(running: Running, question: AudioClip) -> None:
    """Barge-in on scripted engines: the reply is held after its first sentence, so the press comes
    while it speaks, at a known point, however fast or slow the machine."""
    from scripted import ScriptedResponder, ScriptedSynthesizer

    app, ctl = running.appliance, running.controls
    reply = ScriptedResponder("One two three four. Five six seven eight. Nine ten eleven.", "The second answer.")
    reply.gate_at = 5  # "Five" waits: the first sentence is out and playing
    app.session.responder = reply  # type: ignore[assignment]
    app.session.synthesizer = voice = ScriptedSynthesizer()  # type: ignore[assignment]
    ctl.ask(question)
    assert reply.reached_gate.wait(60)
    wait_for(lambda: app.state is State.SPEAKING, 30)
    turn = app._turn
    assert turn is not None
    ctl.press()
    wait_for(turn.cancel.is_set, 30)
    reply.gate.set()
    wait_for(lambda: app.state is State.LISTENING and app.last_cancel_s is not None, 30)
    ctl.mic.say(question)
    assert ctl.mic.wait_said(question.seconds + 30)
    ctl.release()
    wait_for(lambda: app.turns == 2 and app._turn is None and app.state is State.IDLE, 60)
    first, second = read_turns(app.session.turn_log.path).entries
    assert first.cancelled and first.words == 4, first  # the first sentence only: cut where it was
    assert not second.cancelled and second.words == 3 and voice.sentences[-1] == "The second answer."
    assert [s for _, s in app.history][-4:] == [State.LISTENING, State.THINKING, State.SPEAKING, State.IDLE]


def test_a_failing_turn_is_survived(running: Running, question: AudioClip, monkeypatch: pytest.MonkeyPatch) -> None:
    app, ctl = running.appliance, running.controls
    synth = app.session.synthesizer
    assert synth is not None
    real = synth.synthesize
    calls = {"n": 0}

    def broken(text: str) -> Iterator[AudioClip]:
        calls["n"] += 1
        if calls["n"] == 1:
            from assistant.errors import ModelError

            raise ModelError("voice crashed")
        yield from real(text)

    monkeypatch.setattr(synth, "synthesize", broken)
    ctl.ask(question)
    wait_for(lambda: app.turns == 1 and app._turn is None, 60)
    assert LedState.ERROR in led_states(app)
    ctl.ask(question)
    wait_for(lambda: app.turns == 2 and app._turn is None, 60)
    records = read_turns(app.session.turn_log.path).entries
    assert records[0].error and "voice crashed" in records[0].error
    assert records[1].answered


def test_watchdog_pings_stop_when_the_loop_hangs(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.1)
    env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    cfg = replace(sim_config(tmp_path), service=replace(AssistantConfig().service, watchdog_heartbeat_max_s=1.5))
    appliance, controls = build_appliance(cfg, sim=True, sim_out=tmp_path / "s.wav", environ=env)
    hang = threading.Event()
    real_wait = appliance.button.wait_event

    def maybe_hang(timeout: float | None = None) -> object:
        if hang.is_set():
            time.sleep(3600)
        return real_wait(0.2)

    appliance.button.wait_event = maybe_hang  # type: ignore[method-assign]
    threading.Thread(target=appliance.run, daemon=True).start()

    def messages(seconds: float) -> list[str]:
        got: list[str] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                pass
        return got

    first = messages(2.0)
    assert any("READY=1" in m for m in first)
    assert sum("WATCHDOG=1" in m for m in first) >= 3
    hang.set()
    messages(2.0)  # heartbeats stop now; pings go on until the heartbeat is 1.5 s old
    later = messages(2.0)
    assert not any("WATCHDOG=1" in m for m in later), later
    sock.close()


def test_sigterm_stops_cleanly_with_a_complete_log(tmp_path: Path) -> None:
    (tmp_path / "assistant.yaml").write_text(
        f"paths:\n  state_dir: {tmp_path / 'state'}\n  models_dir: {tmp_path / 'models'}\n")
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "run", "--sim", "--sim-press-every", "4"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "state" / "turns.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_turns(log).entries) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = read_turns(log)
    assert len(result.entries) >= 2 and result.torn_lines == 0 and not result.bad_lines
    assert all(r.words > 0 for r in result.entries if not r.cancelled)
    assert "appliance stopped after" in err


def test_audio_the_microphone_dropped_during_a_question_is_said(running: Running, question: AudioClip,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A recogniser that falls behind the microphone by more than its queue loses audio (the microphone counts
    it in ``overflows``): the question is then heard in part, and the journal says why."""
    app, ctl = running.appliance, running.controls
    mic = app.mic
    read = mic.read_chunk
    mic.overflows = 0  # type: ignore[attr-defined]

    def falling_behind(timeout: float) -> bytes | None:
        chunk = read(timeout)
        if app._turn is not None and mic.overflows < 3:  # type: ignore[attr-defined]
            mic.overflows += 1  # type: ignore[attr-defined]
        return chunk

    mic.read_chunk = falling_behind  # type: ignore[method-assign]
    with caplog.at_level("WARNING", logger="assistant.device.appliance"):
        ctl.ask(question)
        wait_for(lambda: app.turns == 1 and app.state is State.IDLE and app._turn is None, 60)
    said = [r.getMessage() for r in caplog.records if "fell behind the microphone" in r.getMessage()]
    assert len(said) == 1 and "3 blocks" in said[0], said
