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
