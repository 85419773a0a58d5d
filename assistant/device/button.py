"""The push-to-talk button: gpiozero edges, debounced, turned into press/release/tap/hold events."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from assistant.device.device_config import ButtonConfig
from assistant.errors import DeviceError

_LOG = logging.getLogger(__name__)

ButtonEventKind = Literal["press", "release", "tap", "hold_shutdown"]


@dataclass(frozen=True)
class ButtonEvent:
    """One thing the button did."""

    kind: ButtonEventKind
    """``press``: went down; ``release``: came up after at least ``min_press_s``; ``tap``: came up
    sooner (too short to be speech); ``hold_shutdown``: held for ``shutdown_hold_s``."""
    t: float
    """``time.monotonic()`` of the edge (s)."""
    held_s: float
    """How long the button had been down (s); 0 for ``press``."""


class PushToTalkButton:
    """Hold to talk: a momentary switch between a GPIO (``cfg.pin``, BCM) and ground.

    Wiring: one leg to the GPIO, the other to a ground pin; the Pi's internal pull-up (``pull_up``)
    keeps the line high until the switch pulls it low. Example (on a PC, with mock pins)::

        from gpiozero.pins.mock import MockFactory
        button = PushToTalkButton(ButtonConfig(), pin_factory=MockFactory())
        button.pin.drive_low()          # press
        event = button.wait_event(1.0)  # ButtonEvent(kind='press', ...)

    gpiozero calls back on its own thread; the events go through a thread-safe queue and
    ``wait_event`` blocks on it. Debouncing is this class's alone (gpiozero gets no ``bounce_time``:
    its software debounce drops edges): a press or a release counts once the line has stayed at its
    new level for ``bounce_s``, as lgpio's debounce does on the Pi ("stable for N µs"). Every edge
    starts the window again, so contact bounce gives one event, and a glitch shorter than the window
    in the middle of a hold gives none. The event carries the time of the first edge of its burst. A
    release is reported as ``tap`` when the button was down for less than ``min_press_s``. With
    ``shutdown_hold_s`` set, holding the button that long reports ``hold_shutdown``; the release that
    follows it is not reported.
    """

    def __init__(self, cfg: ButtonConfig, *, pin_factory: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``pin_factory``: a gpiozero pin factory (None: gpiozero's default, GPIOZERO_PIN_FACTORY);
        ``clock``: the time stamped on events."""
        self.cfg = cfg
        self._clock = clock
        self._events: queue.Queue[ButtonEvent | None] = queue.Queue()
        self._lock = threading.Condition()
        self._down = False
        self._down_at = 0.0
        self._burst_at: float | None = None
        """When the first edge of the burst being debounced came (the time its event will carry)."""
        self._raw = False
        """The level the last raw edge left (True: pressed)."""
        self._last_edge = -float("inf")
        self._deadline: float | None = None
        """``time.monotonic()`` at which the open window closes; None: no window open."""
        self._hold_reported = False
        self._closed = False
        self._worker = threading.Thread(target=self._debounce, name=f"button-{cfg.pin}", daemon=True)
        self._button = self._open(cfg, pin_factory)
        self._button.when_pressed = self._on_pressed
        self._button.when_released = self._on_released
        if cfg.shutdown_hold_s is not None:
            self._button.when_held = self._on_held
        if self._button.is_pressed:
            _LOG.warning("button on GPIO%d reads pressed at start; check the wiring and button.pull_up", cfg.pin)
        self._worker.start()

    @staticmethod
    def _open(cfg: ButtonConfig, pin_factory: Any) -> Any:
        try:
            from gpiozero import Button, GPIOZeroError
        except ImportError as exc:  # pragma: no cover - gpiozero is a core dependency
            raise DeviceError(f"button.pin: gpiozero cannot be imported ({exc})") from exc
        # gpiozero's hold thread waits hold_time on every press and close() joins it: without the
        # shutdown gesture keep that wait short, so closing during a press does not stall.
        hold = cfg.shutdown_hold_s if cfg.shutdown_hold_s is not None else 0.1
        try:
            return Button(cfg.pin, pull_up=cfg.pull_up, bounce_time=None, hold_time=hold, pin_factory=pin_factory)
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            raise DeviceError(f"button.pin: cannot open GPIO{cfg.pin} for the button: {exc} "
                              f"(off the Pi set GPIOZERO_PIN_FACTORY=mock)") from exc

    @property
    def pin(self) -> Any:
        """The gpiozero pin object (a mock pin's ``drive_low()`` presses the button)."""
        return self._button.pin

    @property
    def is_pressed(self) -> bool:
        """The debounced state: True between a reported press and its release."""
        with self._lock:
            return self._down

    def wait_event(self, timeout: float | None = None) -> ButtonEvent | None:
        """The next event, blocking up to ``timeout`` s (None: forever); None on timeout or once closed."""
        if self._closed and self._events.empty():
            return None
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if event is None:  # close() wakes waiters
            self._events.put(None)
        return event

    def clear(self) -> int:
        """Drop the events not yet taken (e.g. presses while the appliance was busy); returns how many."""
        dropped = 0
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return dropped
            if event is None:
                self._events.put(None)
                return dropped
            dropped += 1

    def _emit(self, kind: ButtonEventKind, t: float, held_s: float) -> None:
        _LOG.debug("button %s (held %.3f s)", kind, held_s)
        self._events.put(ButtonEvent(kind, t, held_s))

    def _press_locked(self, now: float) -> None:
        self._down, self._down_at, self._hold_reported = True, now, False
        self._emit("press", now, 0.0)

    def _release_locked(self, now: float) -> None:
        self._down = False
        held = now - self._down_at
        if self._hold_reported:
            return
        self._emit("tap" if held < self.cfg.min_press_s else "release", now, held)

    def _edge(self, pressed: bool) -> None:
        """A raw edge: (re)open the window; the level is judged once it has held for ``bounce_s``.
        Never blocks: a burst of edges goes in back to back, as the contacts make it."""
        now = self._clock()
        with self._lock:
            if self._closed:
                return
            if self._deadline is not None and now - self._last_edge >= self.cfg.bounce_s:
                # the level before this edge held for a whole window and the worker has not judged it
                # yet (a busy machine): judge it now, or a release followed by a press would be lost
                self._judge_locked(self._raw)
            if self._burst_at is None:
                self._burst_at = now
            self._raw = pressed
            self._last_edge = now
            self._deadline = time.monotonic() + self.cfg.bounce_s
            self._lock.notify_all()

    def _on_pressed(self) -> None:
        self._edge(True)

    def _on_released(self) -> None:
        self._edge(False)

    def _judge_locked(self, pressed: bool) -> None:
        """The line has stayed ``pressed`` for the window: report it if that is news."""
        at = self._burst_at if self._burst_at is not None else self._clock()
        self._burst_at = None
        self._deadline = None
        if pressed and not self._down:
            self._press_locked(at)
        elif not pressed and self._down:
            self._release_locked(at)
        self._lock.notify_all()

    def _debounce(self) -> None:
        """The worker: sleeps until a window closes with no further edge, then reads the line."""
        with self._lock:
            while not self._closed:
                if self._deadline is None:
                    self._lock.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._lock.wait(left)  # a new edge moves the deadline and wakes it
                    continue
                try:
                    pressed = bool(self._button.is_pressed)
                except Exception as exc:  # noqa: BLE001 - a closed or failed pin must not end the worker
                    _LOG.debug("button state unreadable after the debounce window: %s", exc)
                    pressed = self._raw
                self._judge_locked(pressed)

    def settled(self, timeout: float | None = None) -> bool:
        """Wait until no debounce window is open (every edge so far has been judged); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._deadline is None or self._closed, timeout)

    def _on_held(self) -> None:
        now = self._clock()
        with self._lock:
            if self._closed or not self._down or self._hold_reported:
                return
            held = now - self._down_at
            self._hold_reported = True
            _LOG.warning("button held %.1f s: shutdown requested", held)
            self._emit("hold_shutdown", now, held)

    def close(self) -> None:
        """Release the GPIO and wake any ``wait_event`` caller; safe to call twice.

        gpiozero joins its hold thread here: during a press, with ``shutdown_hold_s`` set, that
        can take until the hold time would have passed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        if self._worker is not threading.current_thread():
            self._worker.join()  # no thread of the button outlives it
        self._button.close()
        self._events.put(None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
