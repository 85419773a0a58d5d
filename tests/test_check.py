"""`assistant check` on the simulated hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.cli import main


def test_check_sim_passes_every_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["-q", "check", "--sim", "--press-timeout", "5"]) == 0
    out = capsys.readouterr().out
    for name in ("button", "status LED", "speaker", "microphone", "model smollm2-135m"):
        assert any(line.startswith("PASS") and name in line for line in out.splitlines()), (name, out)
    assert "SIMULATED" in out  # the gauge says it is a simulation
    assert "WARN  tier ladder" in out  # nothing built in this fresh models dir: said, with the fix
    assert "assistant models build-ladder" in out


def test_check_reports_failures_with_fixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "assistant.yaml").write_text("mic:\n  device: no-such-mic\nspeaker:\n  device: no-such-speaker\n")
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    assert main(["-q", "check", "--press-timeout", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  microphone" in out and "no-such-mic" in out
    assert "FAIL  button" in out and "no press within" in out


def test_check_fails_without_a_gauge_and_says_what_to_do(tmp_path: Path) -> None:
    """No HAT on a device: FAIL, with the fix; the appliance would run without a power-off."""
    from assistant.config import AssistantConfig
    from assistant.device.selftest import check_gauge
    from assistant.sim.chips.bus import EmulatedBus

    (tmp_path / "i2c-1").touch()
    cfg = AssistantConfig()
    check = check_gauge(cfg, bus=EmulatedBus({}), dev_dir=tmp_path)
    assert check.verdict == "fail" and "no battery gauge found" in check.detail
    assert "i2cdetect -y 1" in check.fix and "never powers off" in check.fix
    simulated = check_gauge(cfg, dev_dir=tmp_path / "none")  # kind auto, no I2C at all: raise, not simulate
    assert simulated.verdict == "fail"


def test_check_shows_the_empty_point_of_a_found_gauge(tmp_path: Path) -> None:
    from dataclasses import replace

    from assistant.config import AssistantConfig, PathsConfig
    from assistant.device.selftest import check_gauge
    from assistant.sim.chips.bus import EmulatedBus
    from assistant.sim.chips.ina219 import EmulatedIna219

    cfg = replace(AssistantConfig(), paths=PathsConfig(state_dir=tmp_path, models_dir=tmp_path))
    check = check_gauge(cfg, bus=EmulatedBus({0x42: EmulatedIna219(pack_voltage_v=7.7, current_a=-0.6)}))
    assert check.verdict == "pass" and "power source battery" in check.detail
    assert "SoC 12 % or 3.55 V per cell (board preset waveshare_b" in check.detail
