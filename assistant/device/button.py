"""The push-to-talk button: gpiozero edges, debounced, turned into press/release/tap/hold events."""

from __future__ import annotations

import logging
import queue
import threading
import time
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
    ``wait_event`` blocks on it. On top of gpiozero's ``bounce_time`` an edge closer than
    ``bounce_s`` to the last accepted one is ignored, and when the window closes the line is read
    again so that a release lost in the bounce is still reported. A release is reported as ``tap``
    when the button was down for less than ``min_press_s``. With ``shutdown_hold_s`` set, holding
    the button that long reports ``hold_shutdown``; the release that follows it is not reported.
    """

    def __init__(self, cfg: ButtonConfig, *, pin_factory: Any = None) -> None:
        """``pin_factory``: a gpiozero pin factory (None: gpiozero's default, GPIOZERO_PIN_FACTORY)."""
        self.cfg = cfg
        self._events: queue.Queue[ButtonEvent | None] = queue.Queue()
        self._lock = threading.Lock()
        self._down = False
        self._down_at = 0.0
        self._last_edge = -float("inf")
        self._hold_reported = False
        self._settle: threading.Timer | None = None
        self._closed = False
        self._button = self._open(cfg, pin_factory)
        self._button.when_pressed = self._on_pressed
        self._button.when_released = self._on_released
        if cfg.shutdown_hold_s is not None:
            self._button.when_held = self._on_held
        if self._button.is_pressed:
            _LOG.warning("button on GPIO%d reads pressed at start; check the wiring and button.pull_up", cfg.pin)

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
            return Button(cfg.pin, pull_up=cfg.pull_up, bounce_time=cfg.bounce_s or None,
                          hold_time=hold, pin_factory=pin_factory)
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

    def _accept_edge_locked(self, now: float) -> bool:
        """True if an edge at ``now`` is outside the bounce window; otherwise re-check later."""
        if now - self._last_edge >= self.cfg.bounce_s:
            self._last_edge = now
            return True
        if self._settle is None and not self._closed:
            delay = self._last_edge + self.cfg.bounce_s - now + 0.002
            self._settle = threading.Timer(max(0.0, delay), self._on_settled)
            self._settle.daemon = True
            self._settle.start()
        return False

    def _on_pressed(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closed or self._down or not self._accept_edge_locked(now):
                return
            self._press_locked(now)

    def _on_released(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closed or not self._down or not self._accept_edge_locked(now):
                return
            self._release_locked(now)

    def _on_settled(self) -> None:
        """End of a bounce window in which edges were ignored: report where the line really is."""
        now = time.monotonic()
        with self._lock:
            self._settle = None
            if self._closed:
                return
            try:
                pressed = bool(self._button.is_pressed)
            except Exception as exc:  # noqa: BLE001 - a closed or failed pin must not kill the timer thread
                _LOG.debug("button state unreadable after bounce: %s", exc)
                return
            if pressed == self._down:
                return
            self._last_edge = now
            if pressed:
                self._press_locked(now)
            else:
                self._release_locked(now)

    def _on_held(self) -> None:
        now = time.monotonic()
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
            if self._settle is not None:
                self._settle.cancel()
                self._settle = None
        self._button.close()
        self._events.put(None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
