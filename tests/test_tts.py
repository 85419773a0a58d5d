"""The Piper synthesizer on the real embedded voice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import ModelError, ModelNotFound
from assistant.models import embedded
from assistant.speech.tts import PiperSynthesizer


def test_one_clip_per_sentence_with_real_audio(synthesizer: PiperSynthesizer) -> None:
    clips = list(synthesizer.synthesize("Hello there. How are you today?"))
    assert len(clips) == 2
    for clip in clips:
        assert clip.rate == synthesizer.rate == 22050
        assert clip.channels == 1
        samples = np.frombuffer(clip.pcm, dtype="<i2").astype(np.float64)
        assert 0.5 < clip.seconds < 4.0
        assert np.sqrt(np.mean(samples**2)) > 300  # speech, not silence


def test_missing_voice(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist"):
        PiperSynthesizer(tmp_path / "none.onnx")


def test_missing_config_beside_voice(tmp_path: Path) -> None:
    onnx = tmp_path / "v.onnx"
    shutil.copy(embedded.joe_voice(), onnx)
    with pytest.raises(ModelNotFound, match="must sit beside"):
        PiperSynthesizer(onnx)


def test_corrupt_voice(tmp_path: Path) -> None:
    src = embedded.joe_voice()
    onnx = tmp_path / "v.onnx"
    onnx.write_bytes(src.read_bytes()[:100_000])
    shutil.copy(src.with_name(src.name + ".json"), tmp_path / "v.onnx.json")
    with pytest.raises(ModelError, match="could not load"):
        PiperSynthesizer(onnx)


def test_corrupt_config(tmp_path: Path) -> None:
    onnx = tmp_path / "v.onnx"
    onnx.symlink_to(embedded.joe_voice())
    (tmp_path / "v.onnx.json").write_text(json.dumps({"audio": {}}))
    with pytest.raises(ModelError, match="not valid"):
        PiperSynthesizer(onnx)
