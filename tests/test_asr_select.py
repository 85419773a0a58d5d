"""Choosing the recogniser: configured Vosk model, installed model (per the manifest), or the fallback."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from asr_korean import korean_model_dir

from assistant.config import AsrConfig
from assistant.errors import InstallError, ModelNotFound
from assistant.speech.asr_select import FALLBACK_WARNING, open_transcriber
from assistant.speech.sphinx_asr import SphinxTranscriber
from assistant.speech.vosk_asr import VoskTranscriber


def write_manifest(models_dir: Path, name: str, rel_path: str, kind: str = "vosk", language: str = "en") -> None:
    """A manifest in the installer's format, recording one model at ``models_dir/rel_path``."""
    models_dir.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "kind": kind, "path": rel_path, "sha256": "0" * 64, "size": 1,
              "installed_at": "2026-01-01T00:00:00+00:00", "source": "test", "language": language, "files": {}}
    (models_dir / "manifest.json").write_text(json.dumps({"version": 1, "models": {name: record}}))


def test_auto_without_a_vosk_model_falls_back_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        t = open_transcriber(AsrConfig(), tmp_path / "models")
    try:
        assert isinstance(t, SphinxTranscriber) and t.engine == "pocketsphinx (fallback)"
        assert FALLBACK_WARNING in caplog.messages
    finally:
        t.close()


def test_engine_pocketsphinx_needs_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        t = open_transcriber(AsrConfig(engine="pocketsphinx"), tmp_path)
    assert isinstance(t, SphinxTranscriber)
    assert FALLBACK_WARNING not in caplog.messages
    t.close()


def test_engine_vosk_without_a_model_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="assistant models install vosk-en"):
        open_transcriber(AsrConfig(engine="vosk"), tmp_path / "models")


def test_configured_model_that_is_missing_is_an_error_even_in_auto(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist"):
        open_transcriber(AsrConfig(vosk_model=tmp_path / "gone"), tmp_path)


def test_configured_model_is_used(tmp_path: Path) -> None:
    t = open_transcriber(AsrConfig(vosk_model=korean_model_dir()), tmp_path)
    assert isinstance(t, VoskTranscriber) and t.model_dir == korean_model_dir()
    t.close()


def test_installed_model_from_the_manifest_is_used(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    os.symlink(korean_model_dir(), models / "vosk-model")
    write_manifest(models, "vosk-en", "vosk-model")
    for engine in ("auto", "vosk"):
        t = open_transcriber(AsrConfig(engine=engine), models)  # type: ignore[arg-type]
        assert isinstance(t, VoskTranscriber) and t.engine == "vosk"
        assert t.model_dir.resolve() == korean_model_dir().resolve()
        t.close()


def test_manifest_entry_whose_folder_is_gone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_manifest(tmp_path, "vosk-en", "vosk-model-small-en-us-0.15")
    with caplog.at_level(logging.WARNING):
        t = open_transcriber(AsrConfig(), tmp_path)
    assert isinstance(t, SphinxTranscriber)
    assert any("is missing" in m for m in caplog.messages) and FALLBACK_WARNING in caplog.messages
    t.close()
    with pytest.raises(ModelNotFound, match="does not exist"):
        open_transcriber(AsrConfig(engine="vosk"), tmp_path)


def test_other_languages_are_not_taken_for_english(tmp_path: Path) -> None:
    os.symlink(korean_model_dir(), tmp_path / "ko")
    write_manifest(tmp_path, "vosk-ko", "ko", language="ko")
    t = open_transcriber(AsrConfig(), tmp_path)
    assert isinstance(t, SphinxTranscriber)
    t.close()


def test_damaged_manifest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        t = open_transcriber(AsrConfig(), tmp_path)
    assert isinstance(t, SphinxTranscriber)
    t.close()
    with pytest.raises(InstallError, match="manifest.json cannot be read"):
        open_transcriber(AsrConfig(engine="vosk"), tmp_path)
