"""`assistant devices`: the sound cards and GPIO chips here, the microphone and speaker to use, and
(with --write) those written into the config file."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from assistant.config import AssistantConfig, MicConfig, SpeakerConfig, build
from assistant.errors import AudioDeviceError, ConfigError, DeviceError

MARKER = "# sound device chosen by `assistant devices` from the cards found\n"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("devices", help="list sound cards and GPIO chips; choose the microphone and speaker",
                       description="List the sound cards (/proc/asound) and GPIO chips, say which card the "
                       "microphone and the speaker use, and check that gpiozero opens the header's chip. "
                       "Exit status 5: no microphone or speaker to choose; 9: a GPIO problem.")
    p.add_argument("--write", action="store_true",
                   help="write mic.device and speaker.device into the config file in use, where they are "
                        "still `default` (a device you named is kept)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    from assistant.config_edit import read_config_text, write_section
    from assistant.device import gpiochip, sound_cards

    if args.write and cfg.source is None:
        raise ConfigError("--write needs a config file: give --config FILE (the service's is "
                          "/etc/assistant/config.yaml)")
    cards = sound_cards.list_cards()
    print("sound cards (/proc/asound):")
    for card in cards:
        print(f"  {card.describe()}")
    if not cards:
        print("  none")
    configured = {"mic": cfg.mic.device, "speaker": cfg.speaker.device}
    audio_error: AudioDeviceError | None = None
    try:
        chosen = sound_cards.assign(cards, **configured)  # raises, saying what to plug in
    except AudioDeviceError as exc:
        audio_error, chosen = exc, {}
    for role, capture in (("mic", True), ("speaker", False)):
        if role in chosen:
            print(f"{role}.device: {chosen[role]!r} (chosen; was `default`)")
        elif audio_error is None:
            named = sound_cards.card_for(cards, configured[role], capture=capture)
            where = named.describe() if named else "no card by that name: an ALSA device name, or unplugged"
            print(f"{role}.device: {configured[role]!r} (configured; {where})")
    if args.write and chosen:
        assert cfg.source is not None
        _, data = read_config_text(cfg.source)
        for role, cls in (("mic", MicConfig), ("speaker", SpeakerConfig)):
            if role not in chosen:
                continue
            section: dict[str, Any] = dict(data.get(role) or {}, device=chosen[role])
            changed = write_section(cfg.source, role, section, marker=MARKER,
                                    validate=functools.partial(_validate, cls, str(cfg.source), f"{role}."))
            print(f"{role}.device {'written to' if changed else 'already set in'} {cfg.source}")

    report = gpiochip.verify()
    print("GPIO chips (/dev/gpiochip*):")
    for chip in report.chips:
        print(f"  {chip.describe()}{'  <- the 40-pin header' if chip is report.header else ''}")
    if not report.chips:
        print("  none")
    if audio_error is not None:
        raise audio_error
    if report.problems:
        raise DeviceError(report.summary() + (f"; fix: {report.fix}" if report.fix else ""))
    print(f"GPIO: {report.summary()}")
    return 0


def _validate(cls: type[Any], filename: str, prefix: str, section: dict[str, Any]) -> object:
    """The section built as the loader would build it (a bad value raises ConfigError naming the key)."""
    return build(cls, section, filename, prefix)
