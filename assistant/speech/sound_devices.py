"""Finding sound devices by name through PortAudio (sounddevice), with clear errors."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any, Literal

from assistant.errors import AudioDeviceError

_LOG = logging.getLogger(__name__)

Kind = Literal["input", "output"]
_ROLE = {"input": "microphone", "output": "speaker"}


def import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio library into an AudioDeviceError."""
    try:
        import sounddevice
    except OSError as exc:
        raise AudioDeviceError(
            f"PortAudio is not installed ({exc}): install the Debian package libportaudio2 "
            "(sudo apt-get install libportaudio2)") from exc
    except ImportError as exc:
        raise AudioDeviceError(f"the Python package sounddevice is not installed ({exc})") from exc
    return sounddevice


def rescan_devices() -> None:
    """Make PortAudio enumerate the sound devices again (after a device was plugged in, or the
    audio configuration changed). This closes every stream that is open in the process."""
    sd = import_sounddevice()
    sd._terminate()
    sd._initialize()


def find_device(name: str, kind: Kind) -> tuple[int, dict[str, Any]]:
    """Index and info of the first ``kind``-capable device whose name contains ``name``
    (case-insensitive; an exact name wins). ``default`` falls back to PortAudio's default."""
    sd = import_sounddevice()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    try:
        devices = [dict(d) for d in sd.query_devices()]
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot list sound devices: {exc}") from exc
    usable = [(i, d) for i, d in enumerate(devices) if d[key] > 0]
    wanted = name.strip().lower()
    exact = [(i, d) for i, d in usable if d["name"].lower() == wanted]
    matches = exact or [(i, d) for i, d in usable if wanted in d["name"].lower()]
    if not matches and wanted == "default":
        index = sd.default.device[0 if kind == "input" else 1]
        if isinstance(index, int) and 0 <= index < len(devices) and devices[index][key] > 0:
            matches = [(index, devices[index])]
    if not matches:
        names = ", ".join(repr(d["name"]) for _, d in usable) or "none"
        raise AudioDeviceError(f"no {kind} sound device matches {name!r}; {kind} devices: {names}")
    if len(matches) > 1:
        _LOG.info("%s device %r matches %s; using the first", kind, name,
                  ", ".join(repr(d["name"]) for _, d in matches))
    return matches[0]


_FORMAT_REFUSALS = {-9998, -9997, -9994}
"""PortAudio error codes meaning "not in this format": invalid channel count, sample rate, sample
format. Any other error (e.g. -9999, a host error) means the device itself cannot be used."""


def refuses_format(exc: Exception) -> bool:
    """True if a PortAudioError says the device only refuses this format (rate/channels/type)."""
    args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
    return len(args) > 1 and args[1] in _FORMAT_REFUSALS


def choose_format(index: int, info: dict[str, Any], kind: Kind, rate: int) -> tuple[int, int]:
    """The (rate, channels) to open device ``index`` with, for 16-bit audio: ``rate`` if the
    device takes it, else its own default rate; mono if it takes it, else stereo."""
    sd = import_sounddevice()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    role, name = _ROLE[kind], info["name"]
    native = int(info["default_samplerate"])
    for r in dict.fromkeys((rate, native)):
        for channels in (1, 2):
            if channels > info[f"max_{kind}_channels"]:
                continue
            try:
                check(device=index, samplerate=r, channels=channels, dtype="int16")
                return r, channels
            except sd.PortAudioError as exc:
                if not refuses_format(exc):
                    raise AudioDeviceError(f"{role} {name!r} cannot be opened ({exc}); "
                                           "is it unplugged or used by another program?") from exc
                _LOG.debug("%s %r refuses %d Hz x %d: %s", role, name, r, channels, exc)
    raise AudioDeviceError(f"{role} {name!r} cannot handle 16-bit audio at {rate} Hz "
                           f"or at its own {native} Hz")
