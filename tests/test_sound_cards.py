"""Choosing the microphone and speaker from the kernel's sound cards, and `assistant devices --write`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from asound_layouts import write_layout
from assistant.cli import main
from assistant.config import load_config
from assistant.device import gpiochip, sound_cards
from assistant.device.selftest import check_sound_cards
from assistant.errors import AudioDeviceError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "config.example.yaml"


def cards(tmp_path: Path, layout: str) -> list[sound_cards.SoundCard]:
    return sound_cards.list_cards(write_layout(tmp_path / layout, layout))


@pytest.mark.parametrize(("layout", "mic", "speaker"), [
    ("pi5-usb-adapter", "USB PnP Sound Device", "USB PnP Sound Device"),  # one card does both
    ("pi5-usb-mic-and-speaker", "USB Microphone", "UACDemoV1.0"),
    ("pi4-headphones-usb-mic", "USB Microphone", "bcm2835 Headphones"),  # the Pi 4's jack plays
    ("pi5-respeaker", "seeed-2mic-voicecard", "seeed-2mic-voicecard"),
])
def test_the_cards_a_maker_plugs_in_are_chosen(tmp_path: Path, layout: str, mic: str, speaker: str) -> None:
    found = cards(tmp_path, layout)
    assert sound_cards.assign(found, mic="default", speaker="default") == {"mic": mic, "speaker": speaker}


def test_a_pi5_with_only_hdmi_is_refused_with_what_to_plug_in(tmp_path: Path) -> None:
    found = cards(tmp_path, "pi5-hdmi-only")
    assert [(c.index, c.id, c.name, c.playback, c.capture, c.hdmi) for c in found] == [
        (0, "vc4hdmi0", "vc4-hdmi-0", True, False, True), (1, "vc4hdmi1", "vc4-hdmi-1", True, False, True)]
    with pytest.raises(AudioDeviceError) as err:
        sound_cards.assign(found, mic="default", speaker="default")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("no microphone and no speaker: the sound cards here are: card 0 'vc4-hdmi-0'")
    assert "HDMI audio is not used" in text
    assert "Plug in a USB microphone" in text and "a USB speaker" in text and "audio HAT" in text
    assert text.endswith("then run: sudo assistant devices --write")


def test_only_what_is_missing_is_asked_for(tmp_path: Path) -> None:
    found = cards(tmp_path, "pi5-usb-mic-only")
    with pytest.raises(AudioDeviceError, match=r"^no speaker: .*Plug in a USB speaker") as err:
        sound_cards.assign(found, mic="default", speaker="default")
    assert "microphone (or" not in str(err.value)
    # a speaker the maker named is kept and not asked for; the microphone is still chosen
    assert sound_cards.assign(found, mic="default", speaker="hifiberry") == {"mic": "USB Microphone"}
    assert sound_cards.assign(found, mic="USB", speaker="hifiberry") == {}


@pytest.mark.parametrize("layout", ["loopback-only", "none"])
def test_virtual_or_no_cards_are_no_microphone(tmp_path: Path, layout: str) -> None:
    with pytest.raises(AudioDeviceError, match="no microphone and no speaker"):
        sound_cards.assign(cards(tmp_path, layout), mic="default", speaker="default")


def test_no_sound_support_at_all_is_no_card(tmp_path: Path) -> None:
    assert sound_cards.list_cards(tmp_path / "no-such-dir") == []


def test_names_match_the_way_sound_devices_are_found(tmp_path: Path) -> None:
    """PortAudio calls a card's devices "<short name>: <PCM name> (hw:C,D)"; the configured name is a
    part of that (tests/test_sound_devices.py lists such names from a Pi)."""
    found = cards(tmp_path, "pi5-usb-mic-and-speaker")
    mic = found[3]
    assert sound_cards.portaudio_names(mic, capture=True) == ["USB Microphone: USB Audio (hw:3,0)"]
    assert sound_cards.portaudio_names(mic, capture=False) == []
    assert sound_cards.card_for(found, "usb micro", capture=True) is mic
    assert sound_cards.card_for(found, "UACDemo", capture=False) is found[2]
    assert sound_cards.card_for(found, "UACDemo", capture=True) is None
    assert sound_cards.card_for(found, "hw:0,0", capture=False) is found[0]


def device_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> Path:
    """These sound cards, a GPIO check that passes, and a copy of the service's example config."""
    monkeypatch.setattr(sound_cards, "PROC_ASOUND", write_layout(tmp_path / "asound", layout))
    report = gpiochip.GpioReport([], None, "2.0.1.post3", 0)
    monkeypatch.setattr(gpiochip, "verify", lambda: report)
    config = tmp_path / "config.yaml"
    shutil.copy(EXAMPLE, config)
    return config


def test_devices_write_fills_in_default_once_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = device_with(tmp_path, monkeypatch, "pi5-usb-mic-and-speaker")
    config.chmod(0o640)
    assert main(["-q", "--config", str(config), "devices", "--write"]) == 0
    out = capsys.readouterr().out
    assert "mic.device: 'USB Microphone' (chosen; was `default`)" in out
    cfg = load_config(config)
    assert (cfg.mic.device, cfg.speaker.device) == ("USB Microphone", "UACDemoV1.0")
    text = config.read_text()
    assert "# Gauge to use: auto probes I2C" in text  # the other sections keep their comments
    before = yaml.safe_load(EXAMPLE.read_text())
    after = yaml.safe_load(text)
    assert {k: v for k, v in after.items() if k not in ("mic", "speaker")} == \
           {k: v for k, v in before.items() if k not in ("mic", "speaker")}
    assert config.stat().st_mode & 0o777 == 0o640
    # again: nothing changes (the choice is no longer `default`, so it is kept)
    assert main(["-q", "--config", str(config), "devices", "--write"]) == 0
    assert config.read_text() == text
    assert "mic.device: 'USB Microphone' (configured; card 3 'USB Microphone'" in capsys.readouterr().out


def test_devices_refuses_on_hdmi_only_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = device_with(tmp_path, monkeypatch, "pi5-hdmi-only")
    assert main(["-q", "--config", str(config), "devices", "--write"]) == AudioDeviceError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("assistant: error: no microphone and no speaker")
    assert config.read_bytes() == EXAMPLE.read_bytes()


def test_devices_write_needs_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    assert main(["-q", "devices", "--write"]) == 2
    assert "--write needs a config file" in capsys.readouterr().err


def test_self_test_reports_the_cards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from assistant.config import AssistantConfig, MicConfig

    monkeypatch.setattr(sound_cards, "PROC_ASOUND", write_layout(tmp_path / "a", "pi5-usb-adapter"))
    check = check_sound_cards(AssistantConfig())
    assert check.verdict == "warn" and "would be mic.device 'USB PnP Sound Device'" in check.detail
    assert "sudo assistant devices --write" in check.fix
    named = replace(AssistantConfig(), mic=MicConfig(device="USB PnP"), speaker=replace(AssistantConfig().speaker,
                                                                                          device="USB PnP"))
    assert check_sound_cards(named).verdict == "pass"
    monkeypatch.setattr(sound_cards, "PROC_ASOUND", write_layout(tmp_path / "b", "pi5-hdmi-only"))
    failed = check_sound_cards(AssistantConfig())
    assert failed.verdict == "fail" and "Plug in a USB microphone" in failed.detail
