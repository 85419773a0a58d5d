"""The sound cards the kernel has (``/proc/asound``), and which of them a headless appliance uses.

A system service talks to ALSA's cards directly: ALSA's ``default`` is no answer on a Raspberry
Pi 5 (card 0 is HDMI, playback only: there is no analogue jack) nor on a desktop image (it goes
to PipeWire, which a system service cannot reach). So the microphone and the speaker are named
after a card, by the card's short name, which is how PortAudio's device names begin
(``"USB PnP Sound Device: USB Audio (hw:1,0)"``) and which stays put when card numbers change.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AudioDeviceError

_LOG = logging.getLogger(__name__)

PROC_ASOUND = Path("/proc/asound")

# "%2i [%-15s]: %s - %s\n" over index, id, driver, short name; then 22 spaces and the long name
# (snd_card_info_read, sound/core/init.c).
_CARD = re.compile(r"^\s*(\d+) \[(.{1,15}?)\s*\]: (.*?) - (.*)$")
# "%02i-%02i: %s : %s" over card, device, id, name, then " : playback %i" and " : capture %i" for
# the streams the device has (snd_pcm_proc_read, sound/core/pcm.c).
_PCM = re.compile(r"^(\d+)-(\d+): (.*?)((?: : (?:playback|capture) \d+)*)$")
_STREAM = re.compile(r" : (playback|capture) (\d+)")
_VIRTUAL_DRIVERS = {"loopback", "dummy"}

FIX_COMMAND = "sudo assistant devices --write"
"""What to run once the hardware is plugged in (as root: it writes /etc/assistant/config.yaml)."""


@dataclass(frozen=True)
class Pcm:
    """One PCM device of a card: ``hw:card,device`` to ALSA."""

    card: int
    device: int
    id: str
    name: str
    playback: int
    """Playback substreams (0: it cannot play)."""
    capture: int
    """Capture substreams (0: it cannot record)."""


@dataclass(frozen=True)
class SoundCard:
    """One ALSA card, as ``/proc/asound/cards`` and ``/proc/asound/pcm`` show it."""

    index: int
    id: str
    """ALSA's card id (``hw:CARD=<id>``), e.g. ``Device`` or ``vc4hdmi0``."""
    driver: str
    name: str
    """The short name; PortAudio's device names start with it."""
    long_name: str
    pcms: tuple[Pcm, ...] = ()

    @property
    def capture(self) -> bool:
        return any(p.capture for p in self.pcms)

    @property
    def playback(self) -> bool:
        return any(p.playback for p in self.pcms)

    @property
    def hdmi(self) -> bool:
        """HDMI audio: it needs a display that takes audio, and its ``hw:`` device only takes IEC958
        frames, so it is never chosen on its own."""
        return "hdmi" in f"{self.driver} {self.id} {self.name}".lower()

    @property
    def virtual(self) -> bool:
        """snd-aloop or snd-dummy: no microphone or speaker behind it."""
        return self.driver.lower() in _VIRTUAL_DRIVERS

    def describe(self) -> str:
        ways = [w for w, ok in (("capture", self.capture), ("playback", self.playback)) if ok]
        note = " (HDMI)" if self.hdmi else " (virtual)" if self.virtual else ""
        return f"card {self.index} {self.name!r} [{self.driver}]: {', '.join(ways) or 'no PCM'}{note}"


def parse_cards(text: str) -> list[tuple[int, str, str, str, str]]:
    """(index, id, driver, short name, long name) of every card in ``/proc/asound/cards``."""
    out: list[tuple[int, str, str, str, str]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _CARD.match(line)
        if m is None:
            continue
        long_name = lines[i + 1].strip() if i + 1 < len(lines) and not _CARD.match(lines[i + 1]) else ""
        out.append((int(m.group(1)), m.group(2).strip(), m.group(3).strip(), m.group(4).strip(), long_name))
    return out


def parse_pcms(text: str) -> list[Pcm]:
    """Every PCM device in ``/proc/asound/pcm``."""
    out = []
    for line in text.splitlines():
        m = _PCM.match(line.rstrip())
        if m is None:
            continue
        ident, _, name = m.group(3).partition(" : ")
        streams = {kind: int(n) for kind, n in _STREAM.findall(m.group(4))}
        out.append(Pcm(int(m.group(1)), int(m.group(2)), ident.strip(), name.strip(),
                       streams.get("playback", 0), streams.get("capture", 0)))
    return out


def list_cards(proc: Path | None = None) -> list[SoundCard]:
    """The sound cards the kernel has registered (``proc``: default /proc/asound); none when it has
    no sound support at all."""
    proc = PROC_ASOUND if proc is None else proc
    try:
        cards_text = (proc / "cards").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AudioDeviceError(f"cannot read {proc / 'cards'}: {exc}") from exc
    try:
        pcms = parse_pcms((proc / "pcm").read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:  # no PCM device at all (CONFIG_SND_PCM without any card)
        pcms = []
    except OSError as exc:
        raise AudioDeviceError(f"cannot read {proc / 'pcm'}: {exc}") from exc
    return [SoundCard(index, ident, driver, name, long_name, tuple(p for p in pcms if p.card == index))
            for index, ident, driver, name, long_name in parse_cards(cards_text)]


@dataclass(frozen=True)
class SoundChoice:
    """The cards the appliance would use for the microphone and the speaker (None: none fits)."""

    cards: tuple[SoundCard, ...]
    mic: SoundCard | None
    speaker: SoundCard | None

    def problem(self, *, mic: bool = True, speaker: bool = True) -> str | None:
        """One line saying what is missing and what to plug in (of the roles asked about), or None."""
        no_mic, no_speaker = mic and self.mic is None, speaker and self.speaker is None
        if not no_mic and not no_speaker:
            return None
        found = "; ".join(c.describe() for c in self.cards) or "no sound card at all"
        missing, plug = [], []
        if no_mic:
            missing.append("no microphone")
            plug.append("a USB microphone (or a USB sound card with a microphone)")
        if no_speaker:
            missing.append("no speaker")
            plug.append("a USB speaker (or a speaker on a USB sound card)")
        hdmi = " (HDMI audio is not used)" if any(c.hdmi for c in self.cards) else ""
        return (f"{' and '.join(missing)}: the sound cards here are: {found}{hdmi}. Plug in "
                f"{' and '.join(plug)}, or fit an audio HAT with its driver, then run: {FIX_COMMAND}")


def choose(cards: list[SoundCard]) -> SoundChoice:
    """The first real card that records is the microphone; the speaker is that card when it also
    plays (a USB sound card, a headset, an audio HAT), otherwise the first real card that plays.
    HDMI and virtual cards are never chosen."""
    usable = [c for c in cards if not c.hdmi and not c.virtual]
    mic = next((c for c in usable if c.capture), None)
    if mic is not None and mic.playback:
        speaker: SoundCard | None = mic
    else:
        speaker = next((c for c in usable if c.playback), None)
    return SoundChoice(tuple(cards), mic, speaker)


def portaudio_names(card: SoundCard, *, capture: bool) -> list[str]:
    """The names PortAudio gives this card's devices that record (or play): "<short name>: <PCM
    name> (hw:<card>,<device>)"."""
    return [f"{card.name}: {p.name} (hw:{card.index},{p.device})"
            for p in card.pcms if (p.capture if capture else p.playback)]


def card_for(cards: list[SoundCard], device: str, *, capture: bool) -> SoundCard | None:
    """The card a configured device name points at, by the rule sound devices are found with (a
    case-insensitive part of PortAudio's name), or None: then it is an ALSA plugin or no card."""
    wanted = device.strip().lower()
    return next((c for c in cards if any(wanted in n.lower() for n in portaudio_names(c, capture=capture))), None)


def assign(cards: list[SoundCard], *, mic: str, speaker: str) -> dict[str, str]:
    """The device names to write for the roles whose configured device is still ``default``
    (``{"mic": ..., "speaker": ...}``; a device the maker named is kept). Raises AudioDeviceError,
    saying what to plug in, when such a role has no card."""
    choice = choose(cards)
    need = {"mic": mic.strip().lower() == "default", "speaker": speaker.strip().lower() == "default"}
    problem = choice.problem(mic=need["mic"], speaker=need["speaker"])
    if problem:
        raise AudioDeviceError(problem)
    chosen = {"mic": choice.mic, "speaker": choice.speaker}
    return {role: card.name for role, card in chosen.items() if need[role] and card is not None}
