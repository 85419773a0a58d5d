"""The status LED on gpiozero mock pins: what each state does to the pins, for each kind of LED."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory, MockPWMPin

from assistant.config import build
from assistant.device.device_config import DEFAULT_LED_PIN, DEFAULT_RGB_PINS, RESERVED_GPIOS, LedConfig
from assistant.device.led import LedState, StatusLed, ladder_colour
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


def changes(pin: Any, after: float) -> list[tuple[float, Any]]:
    """(seconds since the previous change, new state) for the changes recorded so far, after waiting."""
    time.sleep(after)
    return [(s.timestamp, s.state) for s in pin.states[1:]]


def test_plain_led_solid_and_off(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led", pin=PIN), pin_factory=factory) as led:
        pin = factory.pin(PIN)
        led.set_state(LedState.LISTENING)
        assert pin.state is True
        time.sleep(0.3)
        assert pin.state is True  # solid: no blinking
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


def test_plain_led_thinking_blinks_fast_and_speaking_slowly(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led"), pin_factory=factory) as led:
        pin = factory.pin(PIN)
        pin.clear_states()
        led.set_state(LedState.THINKING)
        fast = changes(pin, 0.65)
        assert len(fast) >= 5
        assert all(0.05 <= dt <= 0.2 for dt, _ in fast[1:])
        led.set_state(LedState.SPEAKING)
        pin.clear_states()
        slow = changes(pin, 1.3)
        assert 2 <= len(slow) <= 4
        assert all(0.4 <= dt <= 0.7 for dt, _ in slow[1:])


def test_plain_led_idle_is_a_short_flash(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led"), pin_factory=factory) as led:
        pin = factory.pin(PIN)
        pin.clear_states()
        led.set_state(LedState.IDLE)
        flash = changes(pin, 0.4)
        assert [s for _, s in flash] == [True, False]  # then dark for about 4 s
        assert flash[1][0] < 0.15


def test_low_battery_double_blinks(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led"), pin_factory=factory) as led:
        pin = factory.pin(PIN)
        pin.clear_states()
        led.set_state(LedState.LOW_BATTERY)
        seen = changes(pin, 0.9)
        assert [s for _, s in seen] == [True, False, True, False]
        assert all(0.05 <= dt <= 0.2 for dt, _ in seen[1:])
        led.set_state(LedState.LISTENING)  # the frame pattern stops
        pin.clear_states()
        assert changes(pin, 0.3) == []
        assert pin.state is True


def test_error_flashes_then_goes_back(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led", error_s=0.3), pin_factory=factory) as led:
        pin = factory.pin(PIN)
        led.set_state(LedState.LISTENING)
        pin.clear_states()
        led.set_state(LedState.ERROR)
        assert led.state == LedState.ERROR
        assert len(changes(pin, 0.25)) >= 3
        time.sleep(0.25)
        assert led.state == LedState.LISTENING
        assert pin.state is True
        assert [s for _, s in led.history] == [LedState.LISTENING, LedState.ERROR, LedState.LISTENING]


def test_a_new_state_during_the_error_flash_wins(factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="led", error_s=0.2), pin_factory=factory) as led:
        led.set_state(LedState.SPEAKING)
        led.set_state(LedState.ERROR)
        led.set_state(LedState.ERROR)  # restarts the flash, still returns to SPEAKING
        led.set_state(LedState.OFF)
        time.sleep(0.35)
        assert led.state == LedState.OFF
        assert factory.pin(PIN).state is False
        assert led.history[-1][1] == LedState.OFF


def test_pwm_idle_glow_and_pulses(pwm_factory: MockFactory) -> None:
    with StatusLed(LedConfig(kind="pwm", idle_brightness=0.1), pin_factory=pwm_factory) as led:
        pin = pwm_factory.pin(PIN)
        led.set_state(LedState.IDLE)
        assert pin.state == pytest.approx(0.1)
        led.set_state(LedState.LISTENING)
        assert pin.state == pytest.approx(1.0)
        pin.clear_states()
        led.set_state(LedState.THINKING)
        levels = [s for _, s in changes(pin, 0.5)]
        assert any(0.2 < v < 0.8 for v in levels)  # a fade, not a blink
        assert max(levels) == pytest.approx(1.0, abs=0.1)
        led.set_state(LedState.OFF)
        assert pin.state == 0


def test_rgb_colours_per_state(pwm_factory: MockFactory) -> None:
    cfg = LedConfig(kind="rgb", error_s=0.2)
    with StatusLed(cfg, pin_factory=pwm_factory) as led:
        r, g, b = (pwm_factory.pin(p) for p in cfg.rgb_pins)

        def rgb() -> tuple[float, float, float]:
            return (r.state, g.state, b.state)

        led.set_state(LedState.LISTENING)
        assert rgb() == (0, 0, 1)
        led.set_state(LedState.IDLE)
        assert rgb() == pytest.approx((0.0, 0.1, 0.0))
        for pin in (r, g, b):
            pin.clear_states()
        led.set_state(LedState.LOW_BATTERY)
        time.sleep(0.5)
        assert [s.state for s in r.states[1:4]] == [1.0, 0.0, 1.0]  # red double blink
        assert all(s.state == 0 for s in g.states[1:])
        led.set_state(LedState.ERROR)
        time.sleep(0.03)
        assert (r.state, b.state) in {(1.0, 1.0), (0.0, 0.0)} and g.state == 0  # magenta flashes
        time.sleep(0.35)
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
    with StatusLed(LedConfig(kind="none", error_s=0.1), pin_factory=factory) as led:
        led.set_state(LedState.THINKING)
        led.set_state(LedState.ERROR)
        time.sleep(0.25)
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
