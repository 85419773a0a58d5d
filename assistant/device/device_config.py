"""Configuration of the device around the pipeline: button, status LED, low-battery shutdown, service."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

_LOG = logging.getLogger(__name__)

HEADER_GPIOS = range(0, 28)
"""BCM numbers of the GPIOs on the 40-pin header (GPIO0..GPIO27)."""

RESERVED_GPIOS: dict[int, str] = {
    0: "HAT ID EEPROM (ID_SD)",
    1: "HAT ID EEPROM (ID_SC)",
    2: "I2C-1 SDA (UPS HAT gauges, audio boards)",
    3: "I2C-1 SCL (UPS HAT gauges, audio boards)",
    4: "Pimoroni Zero LiPo low-battery / OnOff SHIM power cut",
    5: "X728 SHUTDOWN input",
    6: "X120x and X728 power-loss detect",
    7: "SPI0 CE1 (ReSpeaker 2-Mic LEDs)",
    8: "SPI0 CE0",
    9: "SPI0 MISO",
    10: "SPI0 MOSI (ReSpeaker 2-Mic LEDs)",
    11: "SPI0 SCLK (ReSpeaker 2-Mic LEDs)",
    12: "X728 BOOT and ReSpeaker 2-Mic LED power",
    13: "X728 button (v1.2-2.0)",
    14: "UART TX",
    15: "UART RX",
    16: "X120x charge control",
    18: "I2S BCLK (audio HATs)",
    19: "I2S LRCLK (audio HATs)",
    20: "I2S DIN (audio HATs)",
    21: "I2S DOUT (audio HATs)",
    22: "Raspberry Pi DigiAMP+ mute",
    23: "Raspberry Pi audio boards' rotary encoder, Codec Zero status LED",
    24: "Raspberry Pi audio boards' rotary encoder, Codec Zero status LED",
    25: "Raspberry Pi audio boards' IR receiver (when one is fitted)",
    26: "X728 button (v2.1-2.3)",
    27: "Raspberry Pi audio boards' rotary encoder switch, Codec Zero button",
}
"""Header GPIOs that a supported HAT, audio board or bus uses (hardware/wiring.md; Raspberry Pi's
audio-board documentation, "GPIO usage"). Only GPIO17 is free of all of them: it is the push-to-talk
button's default and also the ReSpeaker 2-Mic HAT's own button. The LED defaults take lines used
only by optional parts of Raspberry Pi's audio boards (an IR receiver, the DigiAMP+ mute, the Codec
Zero's LEDs); a pin set in the configuration that some board uses is warned about at start."""

I2C_GPIOS = {0: "ID_SD", 1: "ID_SC", 2: "SDA", 3: "SCL"}
"""The I2C lines (and the HAT EEPROM's): never a button or an LED when the battery gauge is on I2C."""

DEFAULT_LED_PIN = 25
"""The single LED's default: GPIO25 is used only by the IR receiver some Raspberry Pi audio boards can
carry (GPIO27, the earlier default, is the Codec Zero's button: driving it high shorts it when pressed)."""

DEFAULT_RGB_PINS = (22, 23, 24)
"""Red, green, blue: the DigiAMP+ mute and the Codec Zero's two status LEDs; move them with those boards."""

MIN_BOUNCE_S = 0.01
"""The shortest debounce window (s): contacts bounce for a few ms, and a window of 0 turns a release
bounce into a new press, which would cancel the question just asked."""


def _check_pin(name: str, pin: int, default: int | None = None) -> None:
    if pin not in HEADER_GPIOS:
        raise ValueError(f"{name} must be a BCM GPIO number 0..27 on the 40-pin header, got {pin}")
    if pin in RESERVED_GPIOS and pin != default:
        _LOG.warning("%s GPIO%d is also used by: %s (see hardware/wiring.md)", name, pin, RESERVED_GPIOS[pin])


@dataclass(frozen=True)
class ButtonConfig:
    """The push-to-talk button (YAML section ``button``): a switch between a GPIO and ground."""

    pin: int = 17
    """BCM GPIO the button is wired to (the other leg to ground with ``pull_up``); 17 is free on
    every supported UPS HAT and is the ReSpeaker 2-Mic HAT's own button."""
    pull_up: bool = True
    """Use the Pi's internal pull-up, so pressed reads low (button to ground); false for a button
    to 3.3 V with a pull-down."""
    bounce_s: float = 0.05
    """Contact bounce window (s): a press or release counts once the line has stayed at its new level
    this long (at least 0.01)."""
    min_press_s: float = 0.3
    """A press released sooner than this is a tap (too short to be speech) and is reported as one (s)."""
    shutdown_hold_s: float | None = None
    """Holding the button this long asks for a shutdown (s); empty turns the gesture off."""

    def __post_init__(self) -> None:
        _check_pin("button.pin", self.pin, default=17)
        if self.bounce_s < MIN_BOUNCE_S:
            raise ValueError(f"bounce_s must be at least {MIN_BOUNCE_S} s (contacts bounce for a few ms), "
                             f"got {self.bounce_s}")
        if self.min_press_s < 0:
            raise ValueError(f"min_press_s ({self.min_press_s}) must not be negative")
        if self.shutdown_hold_s is not None and self.shutdown_hold_s <= max(self.min_press_s, self.bounce_s):
            raise ValueError(f"shutdown_hold_s ({self.shutdown_hold_s}) must be longer than min_press_s "
                             f"({self.min_press_s}) and bounce_s ({self.bounce_s})")


def default_colours() -> dict[str, list[float]]:
    """The RGB colour of each state, used for every state ``led.colours`` leaves out."""
    return {
        "idle": [0.0, 1.0, 0.0],
        "listening": [0.0, 0.0, 1.0],
        "thinking": [1.0, 0.6, 0.0],
        "speaking": [0.0, 1.0, 1.0],
        "low_battery": [1.0, 0.0, 0.0],
        "error": [1.0, 0.0, 1.0],
    }


COLOUR_KEYS = ("idle", "listening", "thinking", "speaking", "low_battery", "error")
"""The states an RGB LED has a colour for (``off`` is always dark)."""


def _check_colour(where: str, rgb: list[float]) -> None:
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ValueError(f"{where} must be three numbers 0..1 (red, green, blue), got {rgb}")


@dataclass(frozen=True)
class LedConfig:
    """The status LED (YAML section ``led``): one LED through a resistor, or a common-cathode RGB LED."""

    kind: Literal["none", "led", "pwm", "rgb"] = "led"
    """``led``: on/off LED on ``pin``; ``pwm``: the same LED dimmed (pulses, a dim idle glow);
    ``rgb``: an RGB LED on ``rgb_pins`` with a colour per state; ``none``: no LED."""
    pin: int = DEFAULT_LED_PIN
    """BCM GPIO of a single LED (anode through a resistor, cathode to ground); 25 is taken only by
    the IR receiver some Raspberry Pi audio boards can carry."""
    rgb_pins: list[int] = field(default_factory=lambda: list(DEFAULT_RGB_PINS))
    """BCM GPIOs of the red, green and blue legs; 22, 23, 24 avoid the X728 (5, 6, 12, 13, 26),
    the X120x (6, 16), the ReSpeaker (12, 17, SPI0), I2C and I2S, but not the DigiAMP+ mute (22)
    and the Codec Zero's LEDs (23, 24)."""
    active_high: bool = True
    """The LED lights when the pin is high (anode on the pin); false for a common-anode RGB LED or
    an LED wired from 3.3 V into the pin."""
    idle_brightness: float = 0.1
    """``pwm`` and ``rgb``: brightness of the steady idle glow (0..1)."""
    error_s: float = 1.0
    """How long the error pattern flashes before the LED goes back to what it showed (s)."""
    colours: dict[str, list[float]] = field(default_factory=default_colours)
    """``rgb``: colour (red, green, blue, each 0..1) per state: idle (the tier colour when no tier
    has one of its own), listening, thinking, speaking, low_battery, error; a state left out keeps
    its default colour."""
    tier_colours: dict[str, list[float]] = field(default_factory=dict)
    """``rgb``: idle colour per tier name, e.g. ``{q8_0: [0, 1, 0], fixed: [1, 0.5, 0]}``; a tier
    without one is shaded from green (richest) to red (poorest) by its place in the ladder."""

    def __post_init__(self) -> None:
        if self.kind in ("led", "pwm"):
            _check_pin("led.pin", self.pin, default=DEFAULT_LED_PIN)
        if self.kind == "rgb":
            if len(self.rgb_pins) != 3 or len(set(self.rgb_pins)) != 3:
                raise ValueError(f"rgb_pins must be three different GPIOs (red, green, blue), got {self.rgb_pins}")
            for i, pin in enumerate(self.rgb_pins):
                _check_pin(f"led.rgb_pins[{i}]", pin, default=DEFAULT_RGB_PINS[i])
        if not 0.0 <= self.idle_brightness <= 1.0:
            raise ValueError(f"idle_brightness must be within 0..1, got {self.idle_brightness}")
        if self.error_s <= 0:
            raise ValueError(f"error_s must be positive, got {self.error_s}")
        for key, rgb in self.colours.items():
            if key not in COLOUR_KEYS:
                raise ValueError(f"colours has an unknown state '{key}' (known: {', '.join(COLOUR_KEYS)})")
            _check_colour(f"colours.{key}", rgb)
        for key, rgb in self.tier_colours.items():
            _check_colour(f"tier_colours.{key}", rgb)

    @property
    def pins(self) -> list[int]:
        """The GPIOs this LED drives (none for ``kind: none``)."""
        if self.kind == "none":
            return []
        return list(self.rgb_pins) if self.kind == "rgb" else [self.pin]


@dataclass(frozen=True)
class ShutdownConfig:
    """Safe shutdown on an empty pack (YAML section ``shutdown``); where the pack is empty is
    ``battery.empty_soc_pct`` / ``battery.empty_cell_v``, read by the tier policy and the drain test too."""

    enabled: bool = True
    """Power the appliance off when the pack stays empty while on battery."""
    hold_s: float = 60.0
    """How long the readings must stay empty, continuously and on battery, before the shutdown (s)."""
    command: list[str] = field(default_factory=lambda: ["systemctl", "poweroff"])
    """Program and arguments run to power off (never through a shell); the service user is allowed
    to run it by the polkit rule deploy/install.sh writes."""
    announce: str = "The battery is empty. Shutting down now."
    """Spoken just before the shutdown."""
    timeout_s: float = 30.0
    """Longest wait for the power-off command to return (s)."""
    retry_s: float = 60.0
    """A power-off that was refused (no polkit, an inhibitor) is tried again this often while the
    pack stays empty; the appliance keeps serving and shows low battery meanwhile (s)."""

    def __post_init__(self) -> None:
        if self.hold_s < 0 or self.timeout_s <= 0 or self.retry_s <= 0:
            raise ValueError(f"hold_s ({self.hold_s}) must not be negative, timeout_s ({self.timeout_s}) and "
                             f"retry_s ({self.retry_s}) must be positive")
        if not self.command or not all(isinstance(a, str) and a for a in self.command):
            raise ValueError(f"command must be a non-empty list of non-empty strings, got {self.command!r}")


@dataclass(frozen=True)
class ServiceConfig:
    """Running as a systemd service (YAML section ``service``)."""

    watchdog_heartbeat_max_s: float = 30.0
    """The main loop must report alive at least this often, or the watchdog pings stop and systemd
    restarts the service after ``WatchdogSec`` (s)."""
    turn_budget_s: float = 120.0
    """Longest a single turn may run: past it the main loop withholds its heartbeats, the watchdog
    pings stop and systemd restarts the service (s)."""

    def __post_init__(self) -> None:
        if self.watchdog_heartbeat_max_s <= 0 or self.turn_budget_s <= 0:
            raise ValueError(f"watchdog_heartbeat_max_s ({self.watchdog_heartbeat_max_s}) and turn_budget_s "
                             f"({self.turn_budget_s}) must be positive")
