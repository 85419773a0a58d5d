"""The status LED: one pattern per appliance state, on a plain, dimmable or RGB LED."""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from assistant.device.device_config import LedConfig, default_colours
from assistant.errors import DeviceError

_LOG = logging.getLogger(__name__)

Colour = tuple[float, float, float]

HISTORY_LIMIT = 256
"""How many state changes ``StatusLed.history`` keeps."""

FRAME_S = 0.1
"""Step of the frame-by-frame patterns (the low-battery double blink) (s)."""

DOUBLE_BLINK = (1, 0, 1) + (0,) * 17
"""Low battery: two 0.1 s flashes, then dark, every 2 s (frames of FRAME_S)."""

TRIPLE_BLINK = (1, 0, 1, 0, 1) + (0,) * 15
"""A standing fault (no battery gauge, a silent one): three 0.1 s flashes every 2 s, in the error colour."""


class LedState(enum.Enum):
    """What the appliance is doing, as the LED shows it."""

    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    LOW_BATTERY = "low_battery"
    ERROR = "error"
    FAULT = "fault"
    OFF = "off"


@dataclass(frozen=True)
class Pattern:
    """What the LED does in one state, independent of how gpiozero times it."""

    kind: Literal["off", "solid", "blink", "pulse", "frames"]
    """``solid``: on at ``level``; ``blink``: on ``on_s``, off ``off_s``; ``pulse``: fade in and out
    over ``on_s`` each; ``frames``: ``frames`` stepped every ``FRAME_S`` (1 = on), repeated."""
    colour: Colour = (1.0, 1.0, 1.0)
    """The colour of an RGB LED (plain and PWM LEDs ignore it)."""
    level: float = 1.0
    """Brightness of a solid pattern (0..1; 1 on a plain LED)."""
    on_s: float = 0.0
    off_s: float = 0.0
    frames: tuple[int, ...] = ()


Timer = Callable[[float, Callable[[], None]], Any]
"""Makes a started timer that calls back after the seconds given (``threading.Timer`` started); it
must have ``cancel()``. Tests pass one they fire themselves."""


def _thread_timer(seconds: float, callback: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    return timer


def ladder_colour(position: float) -> Colour:
    """Green for the richest tier (0.0), through yellow, to red for the poorest (1.0)."""
    p = min(1.0, max(0.0, position))
    return (min(1.0, 2.0 * p), min(1.0, 2.0 * (1.0 - p)), 0.0)


class StatusLed:
    """Shows the appliance state on an LED, with gpiozero doing all the blinking in the background.

    Wiring (``kind: led`` or ``pwm``): GPIO ``pin`` -> resistor (330 ohm-1 kohm) -> LED anode, LED
    cathode -> ground. ``kind: rgb``: the three legs of a common-cathode RGB LED on ``rgb_pins``
    (red, green, blue), each through its own resistor, the common leg to ground (common-anode: the
    common leg to 3.3 V and ``active_high: false``). ``kind: none``: no LED; states are still
    recorded.

    Patterns: idle is a 50 ms flash every 4 s (``led``), a dim steady glow (``pwm``), or the tier
    colour dimmed (``rgb``); listening is solid on; thinking blinks fast (``led``) or pulses fast;
    speaking blinks slowly or pulses slowly; low battery double-blinks every 2 s; a standing fault
    (no battery gauge, a silent one) triple-blinks every 2 s in the error colour until it is cleared;
    error flashes rapidly for ``error_s`` and then the LED goes back to the state it showed before;
    off is dark.
    """

    def __init__(self, cfg: LedConfig, *, pin_factory: Any = None, timer: Timer = _thread_timer) -> None:
        """``pin_factory``: a gpiozero pin factory (None: gpiozero's default); ``timer``: ends the
        error flash after ``error_s``."""
        self.cfg = cfg
        self._timer = timer
        self.history: list[tuple[float, LedState]] = []
        """(``time.monotonic()``, state) for every state shown, oldest first (bounded)."""
        self._lock = threading.Lock()
        self._state = LedState.OFF
        self._resume = LedState.OFF
        self._error_timer: Any = None
        self._generation = 0
        idle = cfg.colours.get("idle") or default_colours()["idle"]
        self._tier_colour: Colour = (idle[0], idle[1], idle[2])
        self._closed = False
        self._dev: Any = self._open(cfg, pin_factory)

    @staticmethod
    def _open(cfg: LedConfig, pin_factory: Any) -> Any:
        if cfg.kind == "none":
            return None
        from gpiozero import LED, PWMLED, RGBLED, GPIOZeroError

        where = f"led.rgb_pins {cfg.rgb_pins}" if cfg.kind == "rgb" else f"led.pin GPIO{cfg.pin}"
        try:
            if cfg.kind == "led":
                return LED(cfg.pin, active_high=cfg.active_high, pin_factory=pin_factory)
            if cfg.kind == "pwm":
                return PWMLED(cfg.pin, active_high=cfg.active_high, pin_factory=pin_factory)
            red, green, blue = cfg.rgb_pins
            return RGBLED(red, green, blue, active_high=cfg.active_high, pwm=True, pin_factory=pin_factory)
        except (GPIOZeroError, OSError, RuntimeError, ValueError) as exc:
            raise DeviceError(f"{where}: cannot open the {cfg.kind} LED: {exc} "
                              f"(off the Pi set GPIOZERO_PIN_FACTORY=mock, or led.kind: none)") from exc

    @property
    def state(self) -> LedState:
        """The state the LED shows now (after an error flash, the one it went back to)."""
        with self._lock:
            return self._state

    def set_state(self, state: LedState) -> None:
        """Show ``state``; setting the state already shown changes nothing (ERROR restarts its flash)."""
        with self._lock:
            if state == self._state and state != LedState.ERROR:
                return
            self._cancel_error_locked()
            if state == LedState.ERROR:
                if self._state != LedState.ERROR:
                    self._resume = self._state
                self._generation += 1
                if not self._closed:
                    generation = self._generation
                    self._error_timer = self._timer(self.cfg.error_s, lambda: self._end_error(generation))
            self._show_locked(state)

    def set_tier_colour(self, name: str, position: float = 0.0) -> Colour:
        """Take the idle colour of tier ``name`` (``tier_colours``, else by its ``position`` in the
        ladder: 0.0 richest .. 1.0 poorest); an idle RGB LED changes at once. Returns the colour."""
        configured = self.cfg.tier_colours.get(name)
        colour: Colour = (configured[0], configured[1], configured[2]) if configured else ladder_colour(position)
        with self._lock:
            self._tier_colour = colour
            if self._state == LedState.IDLE and self.cfg.kind == "rgb":
                self._apply_locked(LedState.IDLE)
        _LOG.debug("tier %s idle colour %s", name, colour)
        return colour

    def _end_error(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._state != LedState.ERROR:
                return
            self._error_timer = None
            self._show_locked(self._resume)

    def _cancel_error_locked(self) -> None:
        if self._error_timer is not None:
            self._error_timer.cancel()
            self._error_timer = None
        self._generation += 1

    def _show_locked(self, state: LedState) -> None:
        self._state = state
        self.history.append((time.monotonic(), state))
        del self.history[:-HISTORY_LIMIT]
        _LOG.debug("led %s", state.value)
        self._apply_locked(state)

    def _colour(self, key: str) -> Colour:
        c = self.cfg.colours.get(key) or default_colours()[key]
        return (c[0], c[1], c[2])

    def pattern(self, state: LedState) -> Pattern:
        """What ``state`` shows on this LED (pure: the table the docstring describes)."""
        kind = self.cfg.kind
        if state == LedState.OFF:
            return Pattern("off")
        if state == LedState.LISTENING:
            return Pattern("solid", self._colour("listening"))
        if state == LedState.IDLE:
            if kind == "led":
                return Pattern("blink", on_s=0.05, off_s=3.95)
            return Pattern("solid", self._tier_colour if kind == "rgb" else (1.0, 1.0, 1.0),
                           level=self.cfg.idle_brightness)
        if state in (LedState.THINKING, LedState.SPEAKING):
            fast = state == LedState.THINKING
            colour = self._colour(state.value)
            if kind == "led":
                return Pattern("blink", on_s=0.1 if fast else 0.5, off_s=0.1 if fast else 0.5)
            return Pattern("pulse", colour, on_s=0.25 if fast else 0.75, off_s=0.25 if fast else 0.75)
        if state == LedState.LOW_BATTERY:
            return Pattern("frames", self._colour("low_battery"), frames=DOUBLE_BLINK)
        if state == LedState.FAULT:
            return Pattern("frames", self._colour("error"), frames=TRIPLE_BLINK)
        return Pattern("blink", self._colour("error"), on_s=0.05, off_s=0.05)  # ERROR

    def frame_values(self, p: Pattern) -> list[Any]:
        """The pin values a frame pattern steps through, ``FRAME_S`` apart (a colour on an RGB LED)."""
        if self.cfg.kind == "rgb":
            on, off = p.colour, (0.0, 0.0, 0.0)
            return [on if f else off for f in p.frames]
        return [1 if f else 0 for f in p.frames]

    def _apply_locked(self, state: LedState) -> None:
        dev = self._dev
        if dev is None or self._closed:
            return
        dev.source = None  # stop a frame pattern before anything else drives the pins
        rgb = self.cfg.kind == "rgb"
        p = self.pattern(state)

        def lit(level: float = 1.0) -> Any:
            return tuple(c * level for c in p.colour) if rgb else level

        if p.kind == "off":
            dev.off()
        elif p.kind == "solid":
            dev.value = lit(p.level) if (rgb or self.cfg.kind == "pwm") else 1
        elif p.kind == "blink":
            extra = {"on_color": p.colour} if rgb else {}
            dev.blink(on_time=p.on_s, off_time=p.off_s, background=True, **extra)
        elif p.kind == "pulse":
            extra = {"on_color": p.colour} if rgb else {}
            dev.pulse(fade_in_time=p.on_s, fade_out_time=p.off_s, background=True, **extra)
        else:
            dev.source_delay = FRAME_S
            dev.source = itertools.cycle(self.frame_values(p))

    def close(self) -> None:
        """Turn the LED off and release its pins; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._cancel_error_locked()
            if self._dev is not None:
                self._dev.source = None
                self._dev.off()
                self._dev.close()
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
