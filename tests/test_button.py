"""The push-to-talk button on gpiozero mock pins: press, release, tap, bounce, hold, close."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero import Button
from gpiozero.pins.mock import MockFactory

from assistant.config import build
from assistant.device.button import ButtonEvent, PushToTalkButton
from assistant.device.device_config import ButtonConfig
from assistant.errors import ConfigError, DeviceError

FAST = ButtonConfig(pin=17, bounce_s=0.02, min_press_s=0.1)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.reset()


@pytest.fixture
def button(factory: MockFactory) -> Iterator[PushToTalkButton]:
    b = PushToTalkButton(FAST, pin_factory=factory)
    yield b
    b.close()


class Clock:
    """The button's clock, moved by the test: held times are exact, and no test sleeps through them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(factory: MockFactory, clock: Clock) -> Iterator[PushToTalkButton]:
    """A button stamping its events with ``clock``."""
    b = PushToTalkButton(FAST, pin_factory=factory, clock=clock)
    yield b
    b.close()


def expect(button: PushToTalkButton, kind: str, timeout: float = 1.0) -> ButtonEvent:
    event = button.wait_event(timeout)
    assert event is not None, f"no {kind} event within {timeout} s"
    assert event.kind == kind, event
    return event


def test_press_then_release_after_min_press(timed: PushToTalkButton, clock: Clock) -> None:
    button = timed
    assert not button.is_pressed
    button.pin.drive_low()
    press = expect(button, "press")
    assert press.held_s == 0.0 and press.t == 1000.0
    assert button.is_pressed
    clock.now += 0.15
    button.pin.drive_high()
    release = expect(button, "release")
    assert release.held_s == pytest.approx(0.15) and release.t == pytest.approx(1000.15)
    assert not button.is_pressed
    assert button.settled(1.0) and button.wait_event(0.0) is None


def test_short_press_is_a_tap(timed: PushToTalkButton, clock: Clock) -> None:
    timed.pin.drive_low()
    expect(timed, "press")
    clock.now += FAST.min_press_s - 0.001
    timed.pin.drive_high()
    tap = expect(timed, "tap")
    assert tap.held_s == pytest.approx(FAST.min_press_s - 0.001)


def test_bounce_on_press_gives_one_press(timed: PushToTalkButton, clock: Clock) -> None:
    button = timed
    for _ in range(5):  # a bouncing contact, all within microseconds
        button.pin.drive_low()
        button.pin.drive_high()
    button.pin.drive_low()
    expect(button, "press")
    assert button.settled(1.0)  # the bounce window closes with the line low: nothing more
    assert button.wait_event(0.0) is None
    assert button.is_pressed
    clock.now += FAST.min_press_s
    button.pin.drive_high()
    assert expect(button, "release").held_s == pytest.approx(FAST.min_press_s)


def test_a_burst_that_ends_where_it_began_is_nothing(button: PushToTalkButton) -> None:
    """lgpio's debounce on the Pi reports an edge only once the line has been stable for the window:
    a burst that ends released, every edge inside one window, is no press at all."""
    button.pin.drive_low()
    button.pin.drive_high()
    button.pin.drive_low()
    button.pin.drive_high()
    assert button.settled(1.0)
    assert button.wait_event(0.0) is None and not button.is_pressed


def test_a_glitch_shorter_than_the_window_during_a_hold_splits_nothing(button: PushToTalkButton) -> None:
    """A few milliseconds of contact loss in the middle of a hold (a worn switch, a knock) is filtered,
    as lgpio does on the Pi: the question being asked is not cut in two."""
    button.pin.drive_low()
    press = expect(button, "press")
    button.pin.drive_high()  # the contact opens for a moment ...
    button.pin.drive_low()  # ... and closes again, well within bounce_s
    assert button.settled(1.0)
    assert button.wait_event(0.0) is None and button.is_pressed
    button.pin.drive_high()
    end = button.wait_event(1.0)  # one end of the press (a tap or a release, by how long it was held)
    assert end is not None and end.kind in ("tap", "release") and end.t > press.t
    assert button.settled(1.0) and button.wait_event(0.0) is None


def test_the_event_carries_the_time_of_the_first_edge(factory: MockFactory) -> None:
    now = [100.0]
    with PushToTalkButton(FAST, pin_factory=factory, clock=lambda: now[0]) as b:
        b.pin.drive_low()
        now[0] = 100.004
        b.pin.drive_high()
        now[0] = 100.009
        b.pin.drive_low()  # bouncing for 9 ms, then stable
        assert expect(b, "press").t == 100.0


def test_gpiozero_gets_no_debounce_of_its_own(button: PushToTalkButton) -> None:
    """gpiozero's software bounce_time drops edges (gpiozero#1039) and MockPin ignores it: one layer only."""
    assert button._button.pin.bounce is None


def test_hold_reports_shutdown_and_swallows_the_release(factory: MockFactory) -> None:
    cfg = ButtonConfig(pin=17, bounce_s=0.02, min_press_s=0.1, shutdown_hold_s=0.3)
    with PushToTalkButton(cfg, pin_factory=factory) as b:
        b.pin.drive_low()
        expect(b, "press")
        hold = expect(b, "hold_shutdown", timeout=1.5)
        assert 0.29 <= hold.held_s < 1.0
        b.pin.drive_high()
        assert b.wait_event(0.2) is None
        assert not b.is_pressed
        b.pin.drive_low()  # the next press starts afresh
        expect(b, "press")
        assert b.wait_event(0.12) is None  # held past min_press_s, short of the shutdown hold
        b.pin.drive_high()
        assert 0.1 <= expect(b, "release").held_s < 0.3


def test_hold_without_shutdown_configured_is_a_long_release(button: PushToTalkButton) -> None:
    button.pin.drive_low()
    expect(button, "press")
    assert button.wait_event(1.2) is None  # gpiozero's hold timer fires, but reports nothing
    button.pin.drive_high()
    assert expect(button, "release").held_s >= 1.2


def test_pull_down_wiring_presses_high(factory: MockFactory) -> None:
    cfg = ButtonConfig(pin=17, pull_up=False, bounce_s=0.02, min_press_s=0.1)
    with PushToTalkButton(cfg, pin_factory=factory) as b:
        b.pin.drive_high()
        expect(b, "press")
        b.pin.drive_low()
        expect(b, "tap")


def test_wait_blocks_until_an_event_from_another_thread(button: PushToTalkButton) -> None:
    start = time.monotonic()
    assert button.wait_event(0.2) is None
    assert time.monotonic() - start >= 0.19
    pressed = threading.Timer(0.1, button.pin.drive_low)
    pressed.start()
    start = time.monotonic()
    event = button.wait_event(2.0)
    assert event is not None and event.kind == "press"
    assert 0.08 <= time.monotonic() - start < 1.0
    pressed.join()
    closing = time.monotonic()
    button.close()  # while the button is still held
    assert time.monotonic() - closing < 0.5


def test_clear_drops_pending_events(button: PushToTalkButton) -> None:
    button.pin.drive_low()
    assert button.settled(1.0)
    button.pin.drive_high()
    assert button.settled(1.0)
    assert button.clear() == 2
    assert button.wait_event(0.05) is None


def test_close_releases_the_pin_and_wakes_waiters(factory: MockFactory) -> None:
    b = PushToTalkButton(FAST, pin_factory=factory)
    with pytest.raises(DeviceError, match="GPIO17"):
        PushToTalkButton(FAST, pin_factory=factory)  # still held by b
    woken: list[ButtonEvent | None] = []
    waiter = threading.Thread(target=lambda: woken.append(b.wait_event(5.0)))
    waiter.start()
    time.sleep(0.05)
    b.close()
    waiter.join(1.0)
    assert not waiter.is_alive() and woken == [None]
    b.close()  # twice is fine
    assert b.wait_event(1.0) is None
    again = Button(17, pin_factory=factory)  # the pin is free again
    again.close()


def test_bad_pin_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="button.pin"):
        build(ButtonConfig, {"pin": 40}, "config.yaml", "button.")
    with pytest.raises(ConfigError, match="shutdown_hold_s"):
        build(ButtonConfig, {"shutdown_hold_s": 0.1}, "config.yaml", "button.")
    cfg = build(ButtonConfig, {"pin": 22, "shutdown_hold_s": 5}, "config.yaml", "button.")
    assert cfg == ButtonConfig(pin=22, shutdown_hold_s=5.0)
    for too_short in (0, 0.005):  # a release bounce would become a press and cancel the question
        with pytest.raises(ConfigError, match=r"button.*bounce_s must be at least 0.01"):
            build(ButtonConfig, {"bounce_s": too_short}, "config.yaml", "button.")


def test_a_late_timer_loses_no_edge(factory: MockFactory) -> None:
    """On a busy machine the window's timer can run late: a release followed by the next press, each
    held for a whole window by the edges' own times, is still a release and a press."""
    now = [50.0]
    with PushToTalkButton(FAST, pin_factory=factory, clock=lambda: now[0]) as b:
        b.pin.drive_low()  # pressed at 50.00 ...
        now[0] = 50.2
        b.pin.drive_high()  # ... released at 50.20, before any timer ran (the clock here is the edges')
        now[0] = 50.25
        b.pin.drive_low()  # pressed again at 50.25
        press = b.wait_event(0.0)
        release = b.wait_event(0.0)
        assert press is not None and press.kind == "press" and press.t == 50.0
        assert release is not None and release.kind == "release" and release.t == 50.2
        again = expect(b, "press")  # judged by the timer once nothing moves
        assert again.t == 50.25


def test_a_touch_shorter_than_the_window_is_nothing(button: PushToTalkButton) -> None:
    button.pin.drive_low()
    button.pin.drive_high()  # well within bounce_s: as lgpio would, nothing is reported
    assert button.settled(1.0) and button.wait_event(0.0) is None
