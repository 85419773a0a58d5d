"""The command line end to end: the demo, `ask`, and every kind of bad input giving a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.commands.turn import demo_question

ROOT = Path(__file__).resolve().parents[1]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(tmp_path)
    env.pop("ASSISTANT_CONFIG", None)
    return env


def test_demo_json_is_a_full_spoken_exchange(tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "demo", "--json", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, env=cli_env(tmp_path), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in ("transcript", "reply", "asr_engine", "llm_model", "words", "tokens",
                "asr_final_s", "first_token_s", "first_audio_s", "total_s", "answer_wav"):
        assert key in data, key
    assert data["transcript"] == "what is the capital of france"
    assert "Paris" in data["reply"]
    assert data["asr_engine"] == "pocketsphinx (fallback)"
    assert "fallback" in proc.stderr  # the log says so too
    assert data["answer_wav"] == str(out)
    assert data["turn_log"]["turn_id"] == data["turn_id"] and data["turn_log"]["words"] == data["words"]
    with wave.open(str(out)) as w:
        assert w.getnframes() / w.getframerate() > 1.0


def test_ask_text_human_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    out = tmp_path / "a.wav"
    assert main(["ask", "--text", "What is the capital of France?", "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "Reply (SmolLM2-135M-Instruct.Q4_1.gguf): " in shown and "Paris" in shown
    assert out.exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _bad_wavs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = demo_question().read_bytes()
    header_only = bytearray(good[:44])
    header_only[40:44] = (0).to_bytes(4, "little")
    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 32000)
    return {
        "empty": (_write(tmp_path / "empty.wav", b""), "empty"),
        "not a wav": (_write(tmp_path / "notes.wav", b"ID3\x03\x00 an mp3 really" * 10), "not a WAV"),
        "truncated header": (_write(tmp_path / "cut.wav", good[:30]), "truncated"),
        "no frames": (_write(tmp_path / "noframes.wav", bytes(header_only)), "no audio"),
        "missing": (tmp_path / "absent.wav", "no such file"),
        "silence": (silence, "no speech"),
    }


@pytest.mark.parametrize("case", ["empty", "not a wav", "truncated header", "no frames", "missing", "silence"])
def test_bad_wav_gives_one_line_error(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    path, needle = _bad_wavs(tmp_path)[case]
    code = main(["ask", "--wav", str(path), "--out", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("assistant: error:")]
    assert len(lines) == 1, err
    assert needle in lines[0].lower() or needle in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("config", "needle", "code"),
    [
        ("llm:\n  model: nothere.gguf\n", "does not exist", 3),
        ("llm:\n  model: corrupt.gguf\n", "could not load", 3),
        ("tts:\n  voice: none.onnx\n", "does not exist", 3),
        ("llm:\n  max_tokens: many\n", "llm.max_tokens", 2),
        ("speakers: {}\n", "unknown key 'speakers'", 2),
    ],
)
def test_bad_model_or_config(config: str, needle: str, code: int, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "corrupt.gguf").write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 5000)
    (tmp_path / "assistant.yaml").write_text(config)
    assert main(["ask", "--text", "hello"]) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    from assistant.errors import AudioFormatError

    with pytest.raises(AudioFormatError):
        main(["--debug", "ask", "--wav", str(tmp_path / "absent.wav")])


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
