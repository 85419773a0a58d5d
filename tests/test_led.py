"""The status LED on gpiozero mock pins: what each state does to the pins, for each kind of LED."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory, MockPWMPin

from assistant.config import build
from assistant.device.device_config import DEFAULT_LED_PIN, DEFAULT_RGB_PINS, RESERVED_GPIOS, LedConfig
from assistant.device.led import DOUBLE_BLINK, FRAME_S, TRIPLE_BLINK, LedState, Pattern, StatusLed, ladder_colour
from assistant.errors import ConfigError, DeviceError

PIN = DEFAULT_LED_PIN
HAT_PINS = {5, 6, 12, 13, 16, 26}  # X728, X120x (hardware.md 1.3)
AUDIO_BOARD_OPTIONAL = {22, 23, 24, 25}  # DigiAMP+ mute, encoder / Codec Zero LEDs, IR receiver
BUSES = {0, 1, 2, 3, 7, 8, 9, 10, 11, 14, 15, 18, 19, 20, 21}  # ID EEPROM, I2C, SPI0, UART, I2S
RESPEAKER_PINS = {12, 17} | set(range(7, 12))


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.reset()


@pytest.fixture
def pwm_factory() -> Iterator[MockFactory]:
    pins = MockFactory(pin_class=MockPWMPin)
    yield pins
    pins.reset()


def test_plain_led_solid_and_off(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led", pin=PIN), pin_factory=factory) as led:
        pin = factory.pin(PIN)
        led.set_state(LedState.LISTENING)
        assert pin.state is True and led._dev.source is None  # solid: nothing drives it on and off
        led.set_state(LedState.OFF)
        assert pin.state is False
        assert [s for _, s in led.history] == [LedState.LISTENING, LedState.OFF]
        assert led.state == LedState.OFF


def test_active_low_led_inverts(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led", pin=PIN, active_high=False), pin_factory=factory) as led:
        led.set_state(LedState.LISTENING)
        assert factory.pin(PIN).state is False
        led.set_state(LedState.OFF)
        assert factory.pin(PIN).state is True


class ManualTimer:
    """Stands in for the error flash's timer: the test fires it."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None], list[bool]]] = []

    def __call__(self, seconds: float, callback: Callable[[], None]) -> Any:
        cancelled = [False]
        self.pending.append((seconds, callback, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True
        return Handle()

    def fire(self) -> None:
        for _, callback, cancelled in self.pending:
            if not cancelled[0]:
                callback()
        self.pending.clear()


def test_each_state_has_its_pattern(factory: MockFactory) -> None:
    """The table of the docstring, per kind of LED: what is asked of gpiozero, not gpiozero's timing."""
    plain = StatusLed(LedConfig(kind="led"), pin_factory=factory)
    try:
        p = plain.pattern
        assert p(LedState.IDLE) == Pattern("blink", on_s=0.05, off_s=3.95)  # a short flash every 4 s
        assert (p(LedState.THINKING).kind, p(LedState.THINKING).on_s) == ("blink", 0.1)  # fast
        assert (p(LedState.SPEAKING).kind, p(LedState.SPEAKING).on_s) == ("blink", 0.5)  # slow
        assert p(LedState.LOW_BATTERY).frames == DOUBLE_BLINK and p(LedState.FAULT).frames == TRIPLE_BLINK
        assert p(LedState.LISTENING).kind == "solid" and p(LedState.OFF).kind == "off"
        assert (p(LedState.ERROR).kind, p(LedState.ERROR).on_s) == ("blink", 0.05)
    finally:
        plain.close()
    pwm = StatusLed(LedConfig(kind="pwm", idle_brightness=0.1), pin_factory=MockFactory(pin_class=MockPWMPin))
    try:
        assert pwm.pattern(LedState.IDLE) == Pattern("solid", level=0.1)
        assert (pwm.pattern(LedState.THINKING).kind, pwm.pattern(LedState.THINKING).on_s) == ("pulse", 0.25)
        assert (pwm.pattern(LedState.SPEAKING).kind, pwm.pattern(LedState.SPEAKING).on_s) == ("pulse", 0.75)
    finally:
        pwm.close()
    assert sum(DOUBLE_BLINK) == 2 and sum(TRIPLE_BLINK) == 3 and len(DOUBLE_BLINK) == len(TRIPLE_BLINK) == 20


def test_frame_patterns_drive_the_pin_frame_by_frame(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led"), pin_factory=factory) as led:
        led.set_state(LedState.FAULT)
        assert led.frame_values(led.pattern(LedState.FAULT)) == list(TRIPLE_BLINK)
        assert led._dev.source is not None and led._dev.source_delay == FRAME_S  # gpiozero steps through them
        led.set_state(LedState.LISTENING)  # the frame pattern stops, the LED is on at once
        assert led._dev.source is None and factory.pin(PIN).state is True


def test_error_flashes_then_goes_back(factory: MockFactory) -> None:
    timer = ManualTimer()
    with StatusLed(LedConfig(kind="led", error_s=0.3), pin_factory=factory, timer=timer) as led:
        led.set_state(LedState.LISTENING)
        led.set_state(LedState.ERROR)
        assert led.state == LedState.ERROR and [s for s, _, _ in timer.pending] == [0.3]
        timer.fire()  # error_s later
        assert led.state == LedState.LISTENING and factory.pin(PIN).state is True
        assert [s for _, s in led.history] == [LedState.LISTENING, LedState.ERROR, LedState.LISTENING]


def test_a_new_state_during_the_error_flash_wins(factory: MockFactory) -> None:
    timer = ManualTimer()
    with StatusLed(LedConfig(kind="led", error_s=0.2), pin_factory=factory, timer=timer) as led:
        led.set_state(LedState.SPEAKING)
        led.set_state(LedState.ERROR)
        led.set_state(LedState.ERROR)  # restarts the flash, still returns to SPEAKING
        led.set_state(LedState.OFF)
        timer.fire()  # the flashes' timers come due: they were cancelled
        assert led.state == LedState.OFF
        assert factory.pin(PIN).state is False
        assert led.history[-1][1] == LedState.OFF


def test_pwm_glow_solid_and_off(pwm_factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="pwm", idle_brightness=0.1), pin_factory=pwm_factory) as led:
        pin = pwm_factory.pin(PIN)
        led.set_state(LedState.IDLE)
        assert pin.state == pytest.approx(0.1)
        led.set_state(LedState.LISTENING)
        assert pin.state == pytest.approx(1.0)
        led.set_state(LedState.OFF)
        assert pin.state == 0


def test_rgb_colours_per_state(pwm_factory: MockFactory) -> None:
    timer = ManualTimer()
    cfg = LedConfig(kind="rgb", error_s=0.2)
    with StatusLed(cfg, pin_factory=pwm_factory, timer=timer) as led:
        r, g, b = (pwm_factory.pin(p) for p in cfg.rgb_pins)

        def rgb() -> tuple[float, float, float]:
            return (r.state, g.state, b.state)

        led.set_state(LedState.LISTENING)
        assert rgb() == (0, 0, 1)
        led.set_state(LedState.IDLE)
        assert rgb() == pytest.approx((0.0, 0.1, 0.0))
        led.set_state(LedState.LOW_BATTERY)
        frames = led.frame_values(led.pattern(LedState.LOW_BATTERY))[:4]
        assert frames == [(1.0, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 0.0)]  # red double blink
        assert led._dev.source is not None
        assert led.pattern(LedState.FAULT).colour == (1.0, 0.0, 1.0)  # a fault blinks in the error colour
        led.set_state(LedState.ERROR)
        assert led.pattern(LedState.ERROR).colour == (1.0, 0.0, 1.0)  # magenta flashes
        timer.fire()
        assert led.state == LedState.LOW_BATTERY


def test_rgb_partial_colour_map_keeps_the_other_defaults(pwm_factory: MockFactory) -> None:
    cfg = build(LedConfig, {"kind": "rgb", "colours": {"listening": [1, 1, 1]}}, "c.yaml", "led.")
    with StatusLed(cfg, pin_factory=pwm_factory) as led:
        r, g, b = (pwm_factory.pin(p) for p in cfg.rgb_pins)
        led.set_state(LedState.LISTENING)
        assert (r.state, g.state, b.state) == (1, 1, 1)
        led.set_state(LedState.IDLE)
        assert (r.state, g.state, b.state) == pytest.approx((0.0, 0.1, 0.0))  # default idle green


def test_rgb_idle_shows_the_tier_colour(pwm_factory: MockFactory) -> None:
    cfg = LedConfig(kind="rgb", idle_brightness=0.5, tier_colours={"fixed": [1.0, 0.5, 0.0]})
    with StatusLed(cfg, pin_factory=pwm_factory) as led:
        r, g, b = (pwm_factory.pin(p) for p in cfg.rgb_pins)
        led.set_state(LedState.IDLE)
        assert led.set_tier_colour("q2_k", position=1.0) == (1.0, 0.0, 0.0)
        assert (r.state, g.state, b.state) == pytest.approx((0.5, 0.0, 0.0))  # changed at once
        led.set_tier_colour("fixed")
        assert (r.state, g.state, b.state) == pytest.approx((0.5, 0.25, 0.0))
        led.set_state(LedState.LISTENING)
        led.set_tier_colour("q8_0", position=0.0)
        assert (r.state, g.state, b.state) == (0, 0, 1)  # only idle shows the tier
    assert ladder_colour(0.5) == (1.0, 1.0, 0.0)


def test_kind_none_records_without_pins(factory: MockFactory) -> None:
    timer = ManualTimer()
    with StatusLed(LedConfig(kind="none", error_s=0.1), pin_factory=factory, timer=timer) as led:
        led.set_state(LedState.THINKING)
        led.set_state(LedState.ERROR)
        timer.fire()
        assert led.state == LedState.THINKING
        assert [s for _, s in led.history] == [LedState.THINKING, LedState.ERROR, LedState.THINKING]
        times = [t for t, _ in led.history]
        assert times == sorted(times)
    assert not factory.pins


def test_close_turns_off_and_frees_the_pin(factory: MockFactory) -> None:
    led = StatusLed(LedConfig(kind="led"), pin_factory=factory)
    led.set_state(LedState.THINKING)
    led.close()
    led.close()
    assert factory.pin(PIN).state is False
    again = LED(PIN, pin_factory=factory)
    again.close()


def test_pwm_on_a_pin_without_pwm_is_a_config_error(factory: MockFactory) -> None:
    with pytest.raises(DeviceError, match=f"led.pin GPIO{PIN}"):
        StatusLed(LedConfig(kind="pwm"), pin_factory=factory)


def test_config_checks_and_default_pins_avoid_the_hats(caplog: pytest.LogCaptureFixture) -> None:
    """The defaults take only lines of optional parts of Raspberry Pi's audio boards; never a bus,
    a UPS board's line, or the Codec Zero's button (GPIO27, which an LED output would short)."""
    defaults = set(DEFAULT_RGB_PINS) | {LedConfig().pin}
    assert defaults <= AUDIO_BOARD_OPTIONAL and not defaults & (HAT_PINS | RESPEAKER_PINS | BUSES | {27})
    assert {22, 23, 24, 25, 27} <= set(RESERVED_GPIOS)
    assert "Codec Zero button" in RESERVED_GPIOS[27] and "DigiAMP+ mute" in RESERVED_GPIOS[22]
    with caplog.at_level("WARNING"):
        LedConfig()
        assert not caplog.text  # the defaults say nothing at every start
        build(LedConfig, {"pin": 27}, "c.yaml", "led.")
    assert "led.pin GPIO27 is also used by" in caplog.text and "Codec Zero button" in caplog.text
    with pytest.raises(ConfigError, match="rgb_pins"):
        build(LedConfig, {"kind": "rgb", "rgb_pins": [22, 23]}, "c.yaml", "led.")
    with pytest.raises(ConfigError, match="unknown state 'blue'"):
        build(LedConfig, {"colours": {"blue": [0, 0, 1]}}, "c.yaml", "led.")
    with pytest.raises(ConfigError, match="tier_colours.fixed"):
        build(LedConfig, {"tier_colours": {"fixed": [2, 0, 0]}}, "c.yaml", "led.")
    cfg = build(LedConfig, {"kind": "rgb", "rgb_pins": [22, 23, 25], "active_high": False}, "c.yaml", "led.")
    assert cfg.rgb_pins == [22, 23, 25] and not cfg.active_high
