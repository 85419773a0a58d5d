"""/proc/asound as the kernel writes it on real Raspberry Pi set-ups (cards and pcm files).

Formats: ``snd_card_info_read`` (sound/core/init.c: ``"%2i [%-15s]: %s - %s\\n"`` over index, id,
driver, short name, then 22 spaces and the long name; ``--- no soundcards ---`` when there is
none) and ``snd_pcm_proc_read`` (sound/core/pcm.c: ``"%02i-%02i: %s : %s"`` over card, device, id,
name, then `` : playback N`` / `` : capture N`` for each stream the device has). Card and PCM
names as `aplay -l` shows them on a Pi 5 (vc4-hdmi, "MAI PCM i2s-hifi-0"), a Pi 4 (bcm2835
Headphones), a C-Media USB adapter, a USB speaker and a ReSpeaker 2-Mic HAT.
"""

from __future__ import annotations

from pathlib import Path

NO_CARDS = "--- no soundcards ---\n"


def card(index: int, ident: str, driver: str, short: str, long: str) -> str:
    return f"{index:2d} [{ident:<15s}]: {driver} - {short}\n{'':22s}{long}\n"


def pcm(card_index: int, device: int, ident: str, name: str, *, playback: int = 0, capture: int = 0) -> str:
    line = f"{card_index:02d}-{device:02d}: {ident} : {name}"
    if playback:
        line += f" : playback {playback}"
    if capture:
        line += f" : capture {capture}"
    return line + "\n"


def hdmi(first: int) -> list[tuple[str, str]]:
    """The two vc4-hdmi cards: playback only, and only of IEC958 frames at the hw: device."""
    return [(card(i, f"vc4hdmi{n}", "vc4-hdmi", f"vc4-hdmi-{n}", f"vc4-hdmi-{n}"),
             pcm(i, 0, "MAI PCM i2s-hifi-0", "MAI PCM i2s-hifi-0", playback=1))
            for n, i in enumerate((first, first + 1))]


def usb_adapter(index: int) -> tuple[str, str]:
    """A C-Media "USB PnP Sound Device": a microphone input and a headphone output."""
    return (card(index, "Device", "USB-Audio", "USB PnP Sound Device",
                 "C-Media Electronics Inc. USB PnP Sound Device at usb-xhci-hcd.0-1, full speed"),
            pcm(index, 0, "USB Audio", "USB Audio", playback=1, capture=1))


def usb_mic(index: int) -> tuple[str, str]:
    """A USB microphone: capture only."""
    return (card(index, "Microphone", "USB-Audio", "USB Microphone",
                 "MICROPHONE USB Microphone at usb-xhci-hcd.1-1, full speed"),
            pcm(index, 0, "USB Audio", "USB Audio", capture=1))


def usb_speaker(index: int) -> tuple[str, str]:
    """A small USB speaker: playback only."""
    return (card(index, "UACDemoV10", "USB-Audio", "UACDemoV1.0",
                 "Jieli Technology UACDemoV1.0 at usb-xhci-hcd.0-2, full speed"),
            pcm(index, 0, "USB Audio", "USB Audio", playback=1))


def respeaker(index: int) -> tuple[str, str]:
    return (card(index, "seeed2micvoicec", "seeed-2mic-voic", "seeed-2mic-voicecard", "seeed-2mic-voicecard"),
            pcm(index, 0, "bcm2835-i2s-wm8960-hifi wm8960-hifi-0", "bcm2835-i2s-wm8960-hifi wm8960-hifi-0",
                playback=1, capture=1))


def pi4_headphones(index: int) -> tuple[str, str]:
    return (card(index, "Headphones", "bcm2835_headpho", "bcm2835 Headphones", "bcm2835 Headphones"),
            pcm(index, 0, "bcm2835 Headphones", "bcm2835 Headphones", playback=8))


def loopback(index: int) -> tuple[str, str]:
    return (card(index, "Loopback", "Loopback", "Loopback", f"Loopback {index + 1}"),
            pcm(index, 0, "Loopback PCM", "Loopback PCM", playback=8, capture=8)
            + pcm(index, 1, "Loopback PCM", "Loopback PCM", playback=8, capture=8))


LAYOUTS: dict[str, list[tuple[str, str]]] = {
    "pi5-hdmi-only": hdmi(0),
    "pi5-usb-adapter": [*hdmi(0), usb_adapter(2)],
    "pi5-usb-mic-and-speaker": [*hdmi(0), usb_speaker(2), usb_mic(3)],
    "pi5-usb-mic-only": [*hdmi(0), usb_mic(2)],
    "pi4-headphones-usb-mic": [pi4_headphones(0), *hdmi(1), usb_mic(3)],
    "pi5-respeaker": [respeaker(0), *hdmi(1)],
    "loopback-only": [loopback(0)],
    "none": [],
}


def write_layout(root: Path, name: str) -> Path:
    """A /proc/asound-like directory holding ``cards`` and ``pcm`` for one layout."""
    root.mkdir(parents=True, exist_ok=True)
    entries = LAYOUTS[name]
    (root / "cards").write_text("".join(c for c, _ in entries) or NO_CARDS)
    (root / "pcm").write_text("".join(p for _, p in entries))
    return root
