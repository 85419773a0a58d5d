"""The soak driver: presses the button of a simulated appliance for many turns and injects a fault now and then."""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator

from assistant.device.appliance import State
from assistant.messages import AudioClip
from assistant.sim.chips.ina219 import REG_BUS, REG_CONFIG, REG_CURRENT, REG_SHUNT
from assistant.soak.checks import Outcome, sample
from assistant.soak.faults import engine_error
from assistant.soak.file_faults import MODEL_FAULTS
from assistant.soak.recorder import DriveResult, TurnRecorder
from assistant.soak.rig import BANDS, Rig

_LOG = logging.getLogger(__name__)

RECOVERY_TRIES = 4
"""Presses allowed after a fault is cleared before the appliance must have answered one (count)."""

FAULT_WEIGHTS: dict[str, float] = {
    "gauge_io": 2, "gauge_garbage": 2, "mic_unplug": 1, "speaker_unplug": 1, "asr_error": 1.5,
    "tts_error": 1.5, "model_broken": 1, "model_deleted": 0.5, "disk_full": 1,
}
"""Relative frequency of each injected fault."""
ACTION_WEIGHTS: dict[str, float] = {
    "turn": 6, "bounce": 2, "glitch_listening": 1, "tap": 1, "barge_thinking": 1, "barge_speaking": 1,
    "battery_swap": 1,
}
"""Relative frequency of each button action on steps without a fault."""


@contextlib.contextmanager
def _burst() -> Iterator[None]:
    """Edges that physically come microseconds apart: this thread keeps the interpreter until they are
    all in (the button takes an edge without blocking), so a busy machine cannot stretch a 5 ms glitch
    into a release that lasts a whole debounce window."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


class Driver:
    """Drives one rig: ``run(turns)`` until that many turns have been started, with seeded randomness."""

    def __init__(self, rig: Rig, clips: list[AudioClip], *, seed: int, fault_rate: float = 0.35) -> None:
        self.rig = rig
        self.clips = clips
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.recorder = TurnRecorder(rig)
        self.result = DriveResult()
        self.loop_error: BaseException | None = None
        self._expected = 0
        self._first_faults = self.rng.sample(list(FAULT_WEIGHTS), len(FAULT_WEIGHTS))
        self._first_actions = self.rng.sample(list(ACTION_WEIGHTS), len(ACTION_WEIGHTS))
        """Every fault and every action comes once, in a seeded order, before the weighted draws."""
        self._thread = threading.Thread(target=self._serve, name="soak-appliance", daemon=True)

    # -- the appliance thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            self.rig.appliance.run()
        except BaseException as exc:  # the driver reports it: the loop must never end on its own
            self.loop_error = exc
            _LOG.exception("soak: the appliance loop ended with an exception")

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 120
        while not self.rig.appliance.history and time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError(f"the appliance did not start: {self.loop_error}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the loop, pressing the button while it stops; wait for it."""
        pin = self.rig.pin  # taken first: the appliance closes the button (and every device) as it stops
        self.rig.appliance.stop_event.set()
        if pin is not None:
            pin.drive_low()
        self._thread.join(30)
        if self._thread.is_alive():
            self.result.problems.append("the appliance loop did not stop within 30 s")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the button and the microphone --------------------------------------------------------------

    def _bounce(self, final_low: bool) -> None:
        """Contact bounce after an edge: the line flips a few times, then settles. The flips come back
        to back (see ``_burst``): the debounce judges a level only once it has held for the whole
        window, so any gap shorter than the window is the same to it."""
        pin = self.rig.pin
        with _burst():
            for _ in range(self.rng.randint(2, 5)):
                pin.drive_high() if final_low else pin.drive_low()
                pin.drive_low() if final_low else pin.drive_high()

    def _press(self, *, bounce: bool) -> None:
        if bounce:
            self.rig.pin.drive_low()
            self._bounce(final_low=True)
        else:
            self.rig.pin.drive_low()

    def _release(self, *, bounce: bool) -> None:
        if bounce:
            self.rig.pin.drive_high()
            self._bounce(final_low=False)
        else:
            self.rig.pin.drive_high()

    def _speak(self) -> None:
        seconds = self.rig.mic.say(self.rng.choice(self.clips))
        time.sleep(seconds / self.rig.options.time_scale + 0.05)

    def _pressed(self) -> None:
        self.result.presses += 1
        self._expected += 1

    def _listening(self, turns_before: int, timeout: float = 15.0) -> bool:
        """Wait until the press has started a new turn and the appliance listens (the earcon played)."""
        app = self.rig.appliance
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if app.turns > turns_before and app.state is State.LISTENING:
                return True
            time.sleep(0.002)
        return False

    def _ask(self, *, bounce: bool = False, glitch: bool = False) -> None:
        """Press once the last release was judged, speak once the appliance listens, release: one turn."""
        self.rig.appliance.button.settled(5.0)  # a press inside the last release's window would be a glitch
        turns = self.rig.appliance.turns
        self._press(bounce=bounce)
        self._pressed()
        self._listening(turns)
        self._speak()
        if glitch:  # the contact opens for a moment while held: shorter than the window, it splits nothing
            with _burst():
                self.rig.pin.drive_high()
                self.rig.pin.drive_low()
            self._speak()
        self._release(bounce=bounce)

    def _turn(self, **kw: bool) -> Outcome | None:
        """One whole turn; its outcome (None and a problem when it never ended)."""
        start = self.recorder.count
        self._ask(**kw)
        if not self.recorder.wait_done(start + 1, lambda: self.alive):
            self.result.problems.append(f"step {self.result.steps}: a press got no finished turn "
                                        f"(state {self.rig.appliance.state.value})")
            return None
        return self.recorder.outcomes[start]

    def _wait_state(self, state: State, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.rig.appliance.state is state:
                return True
            time.sleep(0.002)
        return False

    def _recover(self, fault: str) -> None:
        """After a fault is cleared, the appliance must answer again within a few presses."""
        for _ in range(RECOVERY_TRIES):
            outcome = self._turn()
            if outcome is not None and outcome.status == "ok":
                self.result.recovered[fault] += 1
                return
            if not self.alive:
                break
        self.result.problems.append(f"step {self.result.steps}: no turn completed within {RECOVERY_TRIES} "
                                    f"presses after the fault '{fault}' was cleared")

    # -- faults -------------------------------------------------------------------------------------

    def _fault(self, kind: str) -> None:
        rig, rng = self.rig, self.rng
        self.result.faults[kind] += 1
        if kind == "gauge_io":
            rig.chip.fail_next_reads(rng.randint(1, 40))
            self._recover(kind)
        elif kind == "gauge_garbage":
            if rng.random() < 0.25:
                rig.chip.brownout()
            else:
                register = rng.choice([REG_BUS, REG_CURRENT, REG_SHUNT, REG_CONFIG])
                rig.chip.inject_garbage(register, rng.randrange(0x10000), rng.randint(1, 6))
            self._recover(kind)
        elif kind in ("mic_unplug", "speaker_unplug"):
            device = rig.mic if kind == "mic_unplug" else rig.speaker
            device.unplug()
            for _ in range(rng.randint(1, 2)):
                self._turn()
            device.plug()
            self._recover(kind)
        elif kind == "asr_error":
            rig.transcriber.arm(rng.randint(0, 6), engine_error(rng, "ASR"))
            self._turn()
            self._recover(kind)
        elif kind == "tts_error":
            rig.synthesizer.arm(rng.randint(0, 1), engine_error(rng, "TTS"))
            self._turn()
            self._recover(kind)
        elif kind == "model_broken":
            self._model_broken()
        elif kind == "model_deleted":
            resident = rig.session.tier.name if rig.session.tier is not None else None
            if resident in rig.models:
                rig.models[resident].damage("missing", rng)  # unlinked while mapped: must go on serving
                self._recover(kind)
                rig.models[resident].restore()
            else:
                self._recover(kind)
        elif kind == "disk_full":
            rig.disk.fill()
            for _ in range(rng.randint(1, 3)):
                self._turn()
            rig.disk.free()
            self._recover(kind)
        else:
            raise ValueError(f"unknown fault {kind!r}")

    def _model_broken(self) -> None:
        rig, rng = self.rig, self.rng
        resident = rig.session.tier.name if rig.session.tier is not None else None
        victim = rng.choice([name for name in rig.models if name != resident])
        fault = rig.models[victim]
        fault.damage(rng.choice(MODEL_FAULTS), rng)
        rig.swap_pack(BANDS[victim])
        rig.session.meter.poll()  # the meter takes a reading of the new pack now
        outcome = self._turn()
        if outcome is not None and outcome.status == "ok" and outcome.tier == victim:
            self.result.problems.append(f"step {self.result.steps}: tier '{victim}' answered with a "
                                        f"{fault.broken} model file")
        fault.restore()
        self._recover("model_broken")
        back = self._turn()
        if back is not None and back.status == "ok" and back.tier == victim:
            self.result.recovered["model_restored"] += 1
        else:
            self.result.problems.append(f"step {self.result.steps}: tier '{victim}' was not used again after its "
                                        f"model file was restored (turn went to {back.tier if back else None})")

    # -- plain actions --------------------------------------------------------------------------------

    def _action(self, kind: str) -> None:
        rig, rng = self.rig, self.rng
        self.result.actions[kind] += 1
        if kind == "turn":
            if rng.random() < 0.1:  # sometimes from a settled idle state, not right after the last answer
                self._wait_state(State.IDLE, 1.5)
            self._turn()
        elif kind == "bounce":
            self._turn(bounce=True)
        elif kind == "glitch_listening":
            self._turn(glitch=True)  # one turn: _check_presses fails the step if the glitch started another
        elif kind == "tap":
            start = self.recorder.count
            self.rig.appliance.button.settled(5.0)
            self._press(bounce=False)
            self._pressed()
            time.sleep(rig.appliance.button.cfg.bounce_s + 0.02)  # held past the window, released before min_press_s
            self._release(bounce=False)
            if not self.recorder.wait_done(start + 1, lambda: self.alive):
                self.result.problems.append(f"step {self.result.steps}: a tap left a turn running")
        elif kind in ("barge_thinking", "barge_speaking"):
            start = self.recorder.count
            self._ask()
            target = State.THINKING if kind == "barge_thinking" else State.SPEAKING
            reached = self._wait_state(target, 20.0)
            self._ask()  # the press cancels the turn in flight
            if not self.recorder.wait_done(start + 2, lambda: self.alive):
                self.result.problems.append(f"step {self.result.steps}: no turn ended after a barge-in")
            elif not reached:
                _LOG.info("soak: the turn ended before it was %s", target.value)
        elif kind == "battery_swap":
            band = rng.choice(list(BANDS))
            rig.swap_pack(BANDS[band])
            rig.session.meter.poll()
            self._turn()
        else:
            raise ValueError(f"unknown action {kind!r}")

    def _check_presses(self, turns_before: int) -> None:
        started = self.rig.appliance.turns - turns_before
        if started == self._expected:
            return
        self.result.problems.append(f"step {self.result.steps} ({self.result.script[-1]}): {self._expected} "
                                    f"presses started {started} turns")

    # -- the run --------------------------------------------------------------------------------------

    def run(self, turns: int, *, progress: Callable[[int, int], None] | None = None) -> DriveResult:
        """Press and inject until ``turns`` turns have been started."""
        faults, f_weights = list(FAULT_WEIGHTS), list(FAULT_WEIGHTS.values())
        actions, a_weights = list(ACTION_WEIGHTS), list(ACTION_WEIGHTS.values())
        while self.recorder.count < turns:
            if not self.alive:
                self.result.problems.append(f"step {self.result.steps}: the appliance loop is not running "
                                            f"({type(self.loop_error).__name__}: {self.loop_error})")
                break
            self.result.steps += 1
            self.recorder.step = self.result.steps
            self.result.samples.append(sample(self.result.steps))
            turns_before, self._expected = self.rig.appliance.turns, 0
            if self.rng.random() < self.fault_rate:
                kind = self._first_faults.pop() if self._first_faults else self.rng.choices(faults, f_weights)[0]
                self.result.script.append(kind)
                self._fault(kind)
            else:
                kind = self._first_actions.pop() if self._first_actions else self.rng.choices(actions, a_weights)[0]
                self.result.script.append(kind)
                self._action(kind)
            self._check_presses(turns_before)
            if progress is not None:
                progress(self.recorder.count, turns)
        for o in self.recorder.outcomes:
            if o.status == "ok" and o.tier:
                self.result.tiers[o.tier] += 1
        return self.result
