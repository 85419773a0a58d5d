"""The appliance loop: idle -> listening -> thinking -> speaking -> idle, driven by the push-to-talk button."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from assistant.device import earcons
from assistant.device.button import ButtonEvent, PushToTalkButton
from assistant.device.led import LedState, StatusLed
from assistant.device.notify import SystemdNotifier, Watchdog
from assistant.device.shutdown import ShutdownPolicy, Shutdowner
from assistant.errors import AssistantError, AudioDeviceError, NoSpeech
from assistant.messages import SAMPLE_WIDTH, AudioClip, TurnRecord
from assistant.power.cutoff import PowerSource, power_source
from assistant.power.gauges.absent import AbsentGauge
from assistant.session import Session
from assistant.speech.mic import Microphone
from assistant.speech.speaker import Speaker

_LOG = logging.getLogger(__name__)

BATTERY_CHECK_S = 5.0
"""How often the idle loop looks at the battery for the shutdown policy (s)."""
WAKE_S = 1.0
"""The idle loop wakes this often (heartbeat, battery); it sleeps on the button queue in between (s)."""
HISTORY_LIMIT = 1000
"""How many state changes ``Appliance.history`` keeps (it runs for weeks: the list must not grow)."""
POWER_OFF_REFUSED = "power-off refused"
"""How the standing alarm of a refused power-off begins (LED low battery, systemd status)."""
GAUGE_SILENT_SAY = "The battery gauge has stopped answering. I cannot tell how much charge is left."
"""Spoken once when the gauge goes silent while the appliance runs on battery."""


class State(enum.Enum):
    """What the appliance is doing."""

    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    STOPPING = "stopping"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.IDLE: frozenset({State.LISTENING, State.STOPPING}),
    State.LISTENING: frozenset({State.THINKING, State.IDLE, State.LISTENING, State.STOPPING}),
    State.THINKING: frozenset({State.SPEAKING, State.IDLE, State.LISTENING, State.STOPPING}),
    State.SPEAKING: frozenset({State.IDLE, State.LISTENING, State.STOPPING}),
    State.STOPPING: frozenset({State.IDLE}),
}
"""Every state change the appliance makes (a press may come in any state but stopping: barge-in);
anything else is a bug: logged, and not made. Each change is made by one trigger (``_on_*``)."""


@dataclass
class _Turn:
    """The turn in flight: its worker thread and the signals the main loop sends it."""

    turn_id: str
    started: float
    released: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    record: TurnRecord | None = None
    error: str | None = None
    head: list[bytes] = field(default_factory=list)
    """Audio captured between the contact closing and the press being reported (the debounce window)."""
    stopped: bool = False
    """The main loop stopped this turn (barge-in, tap, shutdown): not a failure."""


class _TurnSpeaker:
    """The appliance's speaker as a turn sees it: the turn plays and stops it but does not close it."""

    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker

    def play(self, clip: AudioClip) -> None:
        self.speaker.play(clip)

    def wait(self, timeout: float | None = None) -> bool:
        return self.speaker.wait(timeout)

    def stop(self) -> None:
        self.speaker.stop()

    def close(self) -> None:
        """The appliance owns the real speaker: nothing to close per turn."""

    def reopen(self) -> None:
        self.speaker.reopen()

    def __enter__(self) -> _TurnSpeaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TurnEvents:
    """One turn's pipeline events, passed to the appliance's triggers with the turn they belong to (a
    turn that has been stopped or replaced changes nothing)."""

    def __init__(self, appliance: Appliance, turn: _Turn) -> None:
        self.appliance = appliance
        self.turn = turn

    def audio_ended(self) -> None:
        self.appliance._on_audio_ended(self.turn)

    def speaking(self) -> None:
        self.appliance._on_first_audio(self.turn)


class Appliance:
    """Push-to-talk assistant: hold to talk (audio streams into the ASR), release, hear the answer.

    A press while thinking or speaking cancels that turn (barge-in) and starts listening. Each turn
    runs in a worker thread, so the main loop keeps serving the button, the watchdog and the
    battery; whatever goes wrong in a turn is logged with its id, an error earcon plays and the
    appliance goes back to idle.
    """

    def __init__(
        self,
        session: Session,
        *,
        mic: Microphone,
        speaker: Speaker,
        button: PushToTalkButton,
        led: StatusLed,
        notifier: SystemdNotifier,
        policy: ShutdownPolicy,
        shutdowner: Shutdowner,
        heartbeat_max_s: float = 30.0,
        turn_budget_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.clock = clock
        """The main loop's clock (``time.monotonic``; tests run a day on a fake one)."""
        self.mic = mic
        self.speaker = speaker
        self.button = button
        self.led = led
        self.notifier = notifier
        self.watchdog = Watchdog(notifier, heartbeat_max_s=heartbeat_max_s)
        self.policy = policy
        self.shutdowner = shutdowner
        self.turn_budget_s = turn_budget_s
        self.state = State.IDLE
        self.turns = 0
        self.history: list[tuple[float, State]] = []
        self.stop_event = threading.Event()
        self.shutdown_reason: str | None = None
        self._turn: _Turn | None = None
        self._lock = threading.Lock()
        self.battery_check_s = BATTERY_CHECK_S
        self._next_battery = 0.0
        self._low_battery = False
        self.alarm: str | None = None
        """A standing battery fault in words (no gauge, a silent gauge, a simulated battery on a device,
        a refused power-off); shown by the LED and in systemd's status line."""
        self._alarm_kind: str | None = None
        self._last_source: PowerSource | None = None
        self._silence_spoken = False
        self._poweroff_tried_at: float | None = None
        self.poweroff_failures = 0
        """Power-off commands that were refused (each retried after ``shutdowner.retry_s``)."""
        self.last_record: TurnRecord | None = None
        """The record of the last turn that finished (transcript, reply, timings)."""
        self.last_cancel_s: float | None = None
        """How long the last barge-in took from the press to everything stopped (s)."""
        self._audio_failed = False
        self._closed = False

    # -- state ----------------------------------------------------------------------------------

    def _enter(self, state: State) -> bool:
        """Change to ``state`` if ``TRANSITIONS`` allows it (staying where it is always does)."""
        with self._lock:
            if state is not self.state and state not in TRANSITIONS[self.state]:
                _LOG.error("no transition from %s to %s: not made", self.state.value, state.value)
                return False
            self.state = state
            self.history.append((time.monotonic(), state))
            del self.history[:-HISTORY_LIMIT]
        self._show()
        return True

    def _show(self) -> None:
        """The LED and systemd's status line for the state, the battery and the standing alarm."""
        state = self.state
        idle = LedState.LOW_BATTERY if self._low_battery else LedState.FAULT if self.alarm else LedState.IDLE
        led = {State.IDLE: idle,
               State.LISTENING: LedState.LISTENING, State.THINKING: LedState.THINKING,
               State.SPEAKING: LedState.SPEAKING, State.STOPPING: LedState.OFF}[state]
        self.led.set_state(led)
        self.notifier.status(f"{state.value}; {self.alarm}" if self.alarm else state.value)

    # -- the triggers: every state change is one of these ------------------------------------------

    def _on_ready(self) -> None:
        """Started (or a refused power-off gave the appliance back): waiting for a press."""
        self._enter(State.IDLE)

    def _on_press(self) -> None:
        """A press, in any state but stopping (a turn in flight has been cancelled): listen."""
        self._enter(State.LISTENING)

    def _on_audio_ended(self, turn: _Turn) -> None:
        """The turn's audio ended (the release, from the turn's thread): think, with the end-of-listening earcon."""
        if turn is self._turn and not turn.cancel.is_set() and self._enter(State.THINKING):
            self._earcon(earcons.listen_stop())

    def _on_first_audio(self, turn: _Turn) -> None:
        """The turn's reply starts to play (from its speech thread): speaking."""
        if turn is self._turn and not turn.cancel.is_set():
            self._enter(State.SPEAKING)

    def _on_turn_over(self) -> None:
        """A turn ended (answered, failed, tapped or stopped): idle again, unless the appliance is stopping."""
        if self.state is not State.STOPPING:
            self._enter(State.IDLE)

    def _on_power_off(self) -> None:
        """A power-off is under way."""
        self._enter(State.STOPPING)

    def _earcon(self, clip: AudioClip) -> None:
        try:
            self.speaker.play(clip)
        except AssistantError as exc:
            _LOG.warning("earcon not played: %s", exc)

    # -- the loop ---------------------------------------------------------------------------------

    def _show_tier(self) -> None:
        """The LED's idle colour for the tier in use, shaded by its place in the ladder."""
        tier = self.session.tier
        if tier is None:
            return
        names = [t.name for t in self.session.tiers.ladder]
        position = names.index(tier.name) / (len(names) - 1) if tier.name in names and len(names) > 1 else 1.0
        self.led.set_tier_colour(tier.name, position)

    @property
    def idle(self) -> bool:
        """Waiting for a press: no turn in flight and nothing being said."""
        return self.state is State.IDLE and self._turn is None

    def start(self) -> None:
        """Load the first tier's model and open the microphone, then tell systemd we are ready."""
        tier = self.session.select_tier()
        self._show_tier()
        self._update_alarm()
        try:
            self.mic.open()
        except AssistantError as exc:  # serve anyway: the microphone is tried again at every press
            _LOG.error("microphone unavailable at start: %s (will retry at the next press)", exc)
            self._audio_failed = True
        self._on_ready()
        self.watchdog.start()
        self.notifier.ready(f"ready, tier {tier.name}")
        _LOG.info("appliance ready (tier %s); hold the button to talk", tier.name)

    def run(self) -> None:
        """Serve until ``stop_event`` is set or a shutdown is decided."""
        self.start()
        try:
            while not self.stop_event.is_set():
                self._heartbeat()
                event = self.button.wait_event(WAKE_S)
                if event is not None:
                    self.handle(event)
                self._reap()
                if self.state is State.IDLE and self.clock() >= self._next_battery:
                    self._check_battery()
        finally:
            self.close()

    def _heartbeat(self) -> None:
        turn = self._turn
        if turn is None or self.clock() - turn.started < self.turn_budget_s:
            self.watchdog.heartbeat()
        else:
            _LOG.error("turn %s has run for over %.0f s: withholding the watchdog", turn.turn_id, self.turn_budget_s)

    def handle(self, event: ButtonEvent) -> None:
        """React to one button event."""
        if event.kind == "press":
            self._cancel_turn("barge-in")
            self._listen(pressed_at=event.t)
        elif event.kind == "release":
            turn = self._turn
            if turn is not None:
                turn.released.set()
        elif event.kind == "tap":
            turn = self._turn
            if turn is not None and self.state is State.LISTENING:
                _LOG.info("[%s] tap of %.2f s is too short to be speech: ignored", turn.turn_id, event.held_s)
                self._cancel_turn("tap")
                self._earcon(earcons.tap_ignored())
                self._on_turn_over()
        elif event.kind == "hold_shutdown":
            self._cancel_turn("shutdown")
            self._power_off("the button was held for shutdown", low_battery=False)

    # -- turns ----------------------------------------------------------------------------------

    def _listen(self, *, pressed_at: float) -> None:
        self.turns += 1
        turn = _Turn(turn_id=self.session.new_turn_id(), started=self.clock())
        if self._audio_failed:
            self._recover_audio()
        try:
            turn.head = self._since_press(pressed_at)
        except AudioDeviceError as exc:
            _LOG.error("[%s] microphone failed: %s; reopening it", turn.turn_id, exc)
            self._recover_audio()
        self._on_press()
        self._earcon(earcons.listen_start())
        turn.thread = threading.Thread(target=self._work, args=(turn,), name=f"turn-{turn.turn_id}", daemon=True)
        self._turn = turn
        turn.thread.start()

    def _since_press(self, pressed_at: float) -> list[bytes]:
        """Drop what the microphone captured before the press; keep what came since the contact closed
        (the press is reported once the debounce window has passed, and the person may already speak)."""
        backlog: list[bytes] = []
        for _ in range(400):  # at most 20 s of backlog at 50 ms blocks
            chunk = self.mic.read_chunk(0.0)
            if chunk is None:
                break
            backlog.append(chunk)
        if not backlog:
            return []
        block_s = len(backlog[-1]) / (SAMPLE_WIDTH * self.mic.rate)
        keep = int(max(0.0, self.clock() - pressed_at) / block_s) + 1 if block_s > 0 else 0
        return backlog[-keep:]

    def _utterance(self, turn: _Turn) -> Iterator[bytes]:
        """Microphone audio from the press until the release (then what was already captured). Audio the
        microphone dropped meanwhile (the recogniser fell behind it by more than its queue) is said in the
        journal: the question was heard in part."""
        first = seen = getattr(self.mic, "overflows", 0)
        try:
            yield from turn.head
            while not turn.cancel.is_set():
                chunk = self.mic.read_chunk(0.2)
                seen = getattr(self.mic, "overflows", 0)  # counted up to the last read, not while unread later
                if chunk:
                    yield chunk
                if turn.released.is_set():
                    for _ in range(40):
                        rest = self.mic.read_chunk(0.0)
                        seen = getattr(self.mic, "overflows", 0)
                        if rest is None:
                            break
                        yield rest
                    return
        finally:
            lost = seen - first
            if lost > 0:
                _LOG.warning("[%s] the recogniser fell behind the microphone: %d blocks of the question were "
                             "dropped, so it was heard in part (a slower machine than this model needs, or a "
                             "busy one)", turn.turn_id, lost)

    def _work(self, turn: _Turn) -> None:
        try:
            turn.record = self.session.run_turn(_TurnSpeaker(self.speaker), audio=self._utterance(turn),
                                                cancel=turn.cancel, turn_id=turn.turn_id, play_out=True,
                                                events=_TurnEvents(self, turn))
            self.last_record = turn.record
            self._show_tier()
        except NoSpeech as exc:
            if not turn.stopped:
                _LOG.info("[%s] %s", turn.turn_id, exc)
                turn.error = str(exc)
                self._earcon(earcons.tap_ignored())
        except AudioDeviceError as exc:
            turn.error = str(exc)
            _LOG.error("[%s] sound device failed: %s; reopening it", turn.turn_id, exc)
            self._recover_audio()
            self._fail(turn)
        except AssistantError as exc:
            turn.error = str(exc)
            _LOG.error("[%s] turn failed: %s", turn.turn_id, exc)
            self._fail(turn)
        except Exception as exc:  # a bug must not take the appliance down: log it fully and go on
            turn.error = f"{type(exc).__name__}: {exc}"
            _LOG.exception("[%s] turn failed unexpectedly", turn.turn_id)
            self._fail(turn)

    def _fail(self, turn: _Turn) -> None:
        if not turn.stopped:
            self.led.set_state(LedState.ERROR)
            self._earcon(earcons.error())

    def _recover_audio(self) -> None:
        """Reopen the microphone and the speaker (a failed stream stays failed until reopened); what
        cannot be reopened yet is tried again at the next press."""
        self._audio_failed = False
        devices: tuple[tuple[str, Microphone | Speaker], ...] = (("microphone", self.mic), ("speaker", self.speaker))
        for name, device in devices:
            try:
                device.reopen()
            except AssistantError as exc:
                self._audio_failed = True
                _LOG.error("%s still unavailable: %s (will retry at the next press)", name, exc)

    def _reap(self) -> None:
        turn = self._turn
        if turn is not None and turn.thread is not None and not turn.thread.is_alive():
            self._turn = None
            self._on_turn_over()
            self._next_battery = 0.0  # look at the battery after every turn

    def _cancel_turn(self, why: str) -> float | None:
        """Stop the turn in flight (LLM, TTS and playback); returns how long that took (s)."""
        turn = self._turn
        if turn is None or turn.thread is None:
            return None
        t0 = time.perf_counter()
        turn.stopped = True
        turn.cancel.set()
        turn.released.set()
        self.speaker.stop()
        turn.thread.join(10.0)
        took = time.perf_counter() - t0
        if turn.thread.is_alive():
            _LOG.error("[%s] turn did not stop within 10 s after %s", turn.turn_id, why)
        else:
            _LOG.info("[%s] cancelled (%s) in %.3f s", turn.turn_id, why, took)
        self._turn = None
        self.last_cancel_s = took
        return took

    # -- battery and shutdown ----------------------------------------------------------------------

    def _battery_alarm(self) -> tuple[str, str] | None:
        """The standing battery fault now, as (kind, words); None when the gauge is there and answering."""
        session = self.session
        gauge = session.gauge
        if isinstance(gauge, AbsentGauge) and gauge.found is None:
            return "absent", (f"no battery gauge ({gauge.why}): running as on external power, no power-off on "
                              "an empty pack; looking for it again")
        last = session.meter.last_reading()
        if last is not None and last.simulated and not session.simulation:
            return "simulated", "the battery is a SIMULATION (battery.kind: simulated): it decides no tier and no power-off"
        age = session.meter.reading_age_s()
        if age is None or age > session.cfg.battery.silent_alarm_s:
            since = "since the start" if age is None else f"for over {session.cfg.battery.silent_alarm_s:.0f} s"
            return "silent", f"the battery gauge {gauge.name} has given no reading {since}"
        return None

    def _update_alarm(self) -> None:
        found = self._battery_alarm()
        kind = found[0] if found is not None else None
        if self._alarm_kind == "refused" and kind is None:
            return  # a refused power-off stays shown until the power-off works or the pack recovers
        if kind == self._alarm_kind:
            return
        was, self._alarm_kind = self.alarm, kind
        self.alarm = found[1] if found is not None else None
        if found is None:
            _LOG.warning("battery alarm cleared (was: %s)", was)
            self._silence_spoken = False
        else:
            _LOG.error("battery alarm: %s", self.alarm)
            if kind == "silent" and self._last_source == "battery" and not self._silence_spoken:
                self._silence_spoken = True
                self._say(GAUGE_SILENT_SAY)
        self._show()

    def _say(self, text: str) -> None:
        synth = self.session.synthesizer
        try:
            if synth is not None:
                for clip in synth.synthesize(text):
                    self.speaker.play(clip)
                self.speaker.wait(15.0)
        except AssistantError as exc:
            _LOG.error("could not say %r: %s", text, exc)

    def _check_battery(self) -> None:
        self._next_battery = self.clock() + self.battery_check_s
        self._update_alarm()
        reading = self.session.policy_reading()
        if reading is None:
            return
        self._last_source = power_source(reading)
        self.policy.empty = self.session.empty_point  # a gauge found after the start brings its own
        decision = self.policy.update(reading)
        if decision.low != self._low_battery:
            self._low_battery = decision.low
            if decision.low:
                _LOG.warning("battery low: %s", decision.reason)
                self._earcon(earcons.low_battery())
            else:
                _LOG.info("battery no longer low: %s", decision.reason)
                if self._alarm_kind == "refused":
                    self.alarm = self._alarm_kind = None
                    self._poweroff_tried_at = None
            self._show()
        if decision.state == "shutdown":
            self._power_off(decision.reason, low_battery=True)

    def _power_off(self, reason: str, *, low_battery: bool) -> None:
        """Say so, flush, run the power-off command. Refused: keep serving, show low battery, and (on a
        low battery) try again every ``retry_s`` while the pack stays empty."""
        now = self.clock()
        tried = self._poweroff_tried_at
        if tried is not None and now - tried < self.shutdowner.retry_s:
            return
        self._poweroff_tried_at = now
        _LOG.warning("shutting down: %s", reason)
        self._on_power_off()
        announce = tried is None

        def shut_down() -> bool:
            if announce:
                self._say(self.shutdowner.announce)
            return self.shutdowner.execute(reason)

        if self._beating(shut_down, "the power-off", self.turn_budget_s + self.shutdowner.timeout_s):
            if low_battery and self.session.gauge.arm_power_restore():
                _LOG.info("the UPS restarts the device when external power returns")
            self.shutdown_reason = reason
            self.stop_event.set()
            return
        self.poweroff_failures += 1
        _LOG.error("the power-off was refused (%d so far); the appliance keeps serving", self.poweroff_failures)
        if low_battery:
            self._alarm_kind = "refused"
            self.alarm = (f"{POWER_OFF_REFUSED} ({self.poweroff_failures}x) on an empty pack; trying again every "
                          f"{self.shutdowner.retry_s:.0f} s")
        else:
            self._poweroff_tried_at = None  # the button may ask again at once
        self._on_ready()

    def _beating(self, work: Callable[[], bool], what: str, budget_s: float) -> bool:
        """``work()`` on a worker thread while this loop keeps the watchdog fed, for at most ``budget_s``
        (then the heartbeats stop and systemd restarts the service, as for a hung turn). Saying the
        announcement and running the power-off command can outlast the watchdog on a slow or busy
        CPU; the appliance must not be killed by its own watchdog halfway through powering off an
        empty pack. False when ``work`` failed."""
        result: list[bool] = []

        def run() -> None:
            try:
                result.append(bool(work()))
            except Exception:  # logged here; the caller treats it as a refusal and tries again later
                _LOG.exception("%s failed", what)

        worker = threading.Thread(target=run, name="power-off", daemon=True)
        deadline = time.monotonic() + budget_s
        worker.start()
        while True:
            self.watchdog.heartbeat()
            worker.join(WAKE_S)
            if not worker.is_alive():
                return bool(result and result[0])
            if time.monotonic() > deadline:
                _LOG.error("%s has taken over %.0f s: withholding the watchdog", what, budget_s)
                worker.join()
                return bool(result and result[0])

    def close(self) -> None:
        """Stop the turn in flight, tell systemd, and close everything the appliance was given: it owns
        the session and every device from the moment it is built; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._cancel_turn("stop")
        self.notifier.stopping()
        self.watchdog.stop()
        self.led.set_state(LedState.OFF)
        for thing in (self.mic, self.speaker, self.button, self.led, self.session):
            try:
                thing.close()
            except Exception:  # closing must go on for the rest
                _LOG.exception("closing %s failed", type(thing).__name__)
