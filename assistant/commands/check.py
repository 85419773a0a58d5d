"""`assistant check`: button, LED, microphone, speaker, battery gauge and every model file, for a person."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, TypeVar

from assistant.config import AssistantConfig
from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.device.selftest import Check


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("check", help="self-test: press the button, watch the LED, listen for the tone")
    p.add_argument("--sim", action="store_true", help="check the simulated hardware (the button is pressed for you)")
    p.add_argument("--press-timeout", type=float, default=20.0, metavar="S", help="how long to wait for a press (s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    from assistant.device.button import PushToTalkButton
    from assistant.device.led import StatusLed
    from assistant.device.selftest import (
        Check, check_button, check_gauge, check_gpio_chip, check_led, check_mic, check_models, check_sound_cards,
        check_speaker, format_checks,
    )
    from assistant.sim.devices import SimMicrophone, mock_pin_factory
    from assistant.speech.mic import SoundDeviceMicrophone
    from assistant.speech.speaker import NullSpeaker, SoundDeviceSpeaker

    if args.sim:
        cfg = replace(cfg, battery=replace(cfg.battery, kind="simulated"))
    factory = mock_pin_factory() if args.sim else None
    checks: list[Check] = [check_gauge(cfg, simulation=args.sim)]
    checks += check_models(cfg)
    if not args.sim:  # the real hardware: which sound cards and which GPIO chip
        checks += [check_sound_cards(cfg), check_gpio_chip()]
    checks.append(_device("status LED", lambda: StatusLed(cfg.led, pin_factory=factory), check_led))
    checks.append(_device("speaker", lambda: NullSpeaker() if args.sim else SoundDeviceSpeaker(device=cfg.speaker.device),
                          check_speaker))
    checks.append(_device("microphone", lambda: SimMicrophone(rate=cfg.asr.rate, noise_dbfs=-60) if args.sim else
                          SoundDeviceMicrophone(device=cfg.mic.device, rate=cfg.asr.rate, capture_rate=cfg.mic.rate),
                          check_mic))
    try:
        button = PushToTalkButton(cfg.button, pin_factory=factory)
    except AssistantError as exc:
        checks.append(Check("button", "fail", str(exc), "check button.pin (hardware/wiring.md)"))
    else:
        try:
            if not args.sim:
                print(f"Press the push-to-talk button (GPIO{cfg.button.pin}) within {args.press_timeout:.0f} s ...",
                      flush=True)
            press = (lambda: button.pin.drive_low()) if args.sim else None
            checks.append(check_button(button, args.press_timeout, press))
        finally:
            button.close()
    print(format_checks(checks))
    failed = [c.name for c in checks if c.verdict == "fail"]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed or warned"
          + (f"; fix: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


_D = TypeVar("_D", bound="_Closable")


class _Closable(Protocol):
    def close(self) -> None: ...


def _device(name: str, opener: Callable[[], _D], test: Callable[[_D], Check]) -> Check:
    """Open a device, check it and close it; a device that cannot be opened is a failed check."""
    from assistant.device.selftest import Check

    try:
        device = opener()
    except AssistantError as exc:
        return Check(name, "fail", str(exc), "see hardware/ for wiring and device names")
    try:
        return test(device)
    finally:
        device.close()
