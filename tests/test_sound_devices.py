"""Finding sound devices by name, and the errors when there is none or no PortAudio at all."""

from __future__ import annotations

import ctypes.util
import sys
import types

import pytest

from assistant.errors import AudioDeviceError
from assistant.speech import sound_devices
from assistant.speech.mic import SoundDeviceMicrophone
from assistant.speech.sound_devices import choose_format, find_device, import_sounddevice, refuses_format
from assistant.speech.speaker import SoundDeviceSpeaker
from audio_fixtures import VirtualAudio, realaudio, virtual_audio

__all__ = ["virtual_audio"]  # the session fixture, imported so that pytest finds it here


def test_missing_portaudio_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """sounddevice's own import fails as it does without libportaudio2 (find_library -> None)."""
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(AudioDeviceError, match=r"PortAudio library not found.*apt-get install libportaudio2"):
        SoundDeviceMicrophone(device="usb").open()
    with pytest.raises(AudioDeviceError, match="libportaudio2"):
        import_sounddevice()


PI_DEVICES = [  # as sounddevice lists them on a Raspberry Pi 5 with a USB microphone and a HAT
    {"name": "USB PnP Sound Device: Audio (hw:2,0)", "max_input_channels": 1, "max_output_channels": 0,
     "default_samplerate": 48000.0},
    {"name": "snd_rpi_hifiberry_dac: HifiBerry DAC HiFi pcm5102a-hifi-0 (hw:3,0)", "max_input_channels": 0,
     "max_output_channels": 2, "default_samplerate": 44100.0},
    {"name": "vc4-hdmi-0: MAI PCM i2s-hifi-0 (hw:0,0)", "max_input_channels": 0, "max_output_channels": 2,
     "default_samplerate": 48000.0},
    {"name": "sysdefault", "max_input_channels": 128, "max_output_channels": 128, "default_samplerate": 48000.0},
    {"name": "default", "max_input_channels": 128, "max_output_channels": 128, "default_samplerate": 48000.0},
]


@pytest.fixture
def pi_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """sounddevice replaced at the seam by the device list of a Raspberry Pi."""
    fake = types.SimpleNamespace(query_devices=lambda: PI_DEVICES, default=types.SimpleNamespace(device=[0, 1]),
                                 PortAudioError=RuntimeError)
    monkeypatch.setattr(sound_devices, "import_sounddevice", lambda: fake)


@pytest.mark.parametrize(("name", "kind", "index"), [
    ("USB", "input", 0), ("usb pnp", "input", 0), ("hifiberry", "output", 1), ("HDMI", "output", 2),
    ("default", "input", 4), ("default", "output", 4),  # the exact name wins over "sysdefault"
    ("hw:", "output", 1),  # several match: the first
])
def test_matching_rules_on_a_pi_device_list(pi_devices: None, name: str, kind: sound_devices.Kind,
                                             index: int) -> None:
    assert find_device(name, kind)[0] == index


def test_an_output_only_device_is_not_a_microphone(pi_devices: None) -> None:
    with pytest.raises(AudioDeviceError, match="no input sound device matches 'hifiberry'; input devices: "
                                               "'USB PnP Sound Device: Audio \\(hw:2,0\\)', 'sysdefault', 'default'"):
        find_device("hifiberry", "input")


def test_format_refusals_are_told_apart_from_broken_devices() -> None:
    class PortAudioError(Exception):
        pass

    assert refuses_format(PortAudioError("Invalid sample rate", -9997))
    assert refuses_format(PortAudioError("Invalid number of channels", -9998))
    assert not refuses_format(PortAudioError("Unanticipated host error", -9999, (0, -5, "I/O error")))
    assert not refuses_format(PortAudioError("Error querying device"))


@realaudio
def test_device_is_chosen_by_name_substring(virtual_audio: VirtualAudio) -> None:
    _, info = find_device("USB", "input")
    assert info["name"] == "usbmic"
    _, info = find_device("hatSpeak", "output")
    assert info["name"] == "hatspeaker"
    _, info = find_device("default", "input")
    assert info["name"] == "default"


@realaudio
def test_unknown_microphone_lists_the_inputs(virtual_audio: VirtualAudio) -> None:
    with pytest.raises(AudioDeviceError) as info:
        SoundDeviceMicrophone(device="Blue Yeti").open()
    text = str(info.value)
    assert "no input sound device matches 'Blue Yeti'" in text and "'usbmic'" in text


@realaudio
def test_unknown_names_list_the_devices_that_exist(virtual_audio: VirtualAudio) -> None:
    with pytest.raises(AudioDeviceError) as info:
        find_device("Blue Yeti", "input")
    assert "no input sound device matches 'Blue Yeti'; input devices: 'usbmic'" in str(info.value)
    with pytest.raises(AudioDeviceError, match="no output sound device matches 'JBL'.*'hatspeaker'"):
        find_device("JBL", "output")


@realaudio
def test_choose_format_prefers_the_asked_rate_in_mono(virtual_audio: VirtualAudio) -> None:
    index, info = find_device("usbmic", "input")
    assert choose_format(index, info, "input", 16000) == (16000, 1)
    index, info = find_device("hatspeaker", "output")
    assert choose_format(index, info, "output", 22050) == (22050, 1)


def test_speaker_without_portaudio_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(AudioDeviceError, match="libportaudio2"):
        SoundDeviceSpeaker(device="hat").open(16000)
