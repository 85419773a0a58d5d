"""Speech synthesis: a Synthesizer interface and its Piper adapter (one audio chunk per sentence)."""

from __future__ import annotations

import json
import os
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import ModelError, ModelNotFound
from assistant.messages import AudioClip

_LOG = logging.getLogger(__name__)


class Synthesizer(Protocol):
    """Turns text into audio, one clip per sentence."""

    voice_name: str
    rate: int

    def synthesize(self, text: str) -> Iterator[AudioClip]:
        """Yield the audio for ``text``."""
        ...

    def close(self) -> None:
        """Free the voice."""
        ...


class PiperSynthesizer:
    """Piper voice from an ``.onnx`` file with its ``.onnx.json`` config beside it."""

    def __init__(self, voice_path: Path, *, length_scale: float = 1.0, threads: int = 1) -> None:
        self.voice_path = voice_path
        self.voice_name = voice_path.name.removesuffix(".onnx")
        config_path = voice_path.with_name(voice_path.name + ".json")
        if not voice_path.is_file():
            raise ModelNotFound(f"Piper voice {voice_path} does not exist")
        if not config_path.is_file():
            raise ModelNotFound(f"Piper voice config {config_path} does not exist (it must sit beside the .onnx)")
        try:
            meta = json.loads(config_path.read_text(encoding="utf-8"))
            self.rate = int(meta["audio"]["sample_rate"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"Piper voice config {config_path} is not valid: {exc}") from exc
        # onnxruntime otherwise records telemetry (device id, OS, CPU, errors) under $HOME for upload.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        try:
            import onnxruntime
            from piper import PiperConfig, PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise ModelError(f"piper-tts is not installed ({exc}); install the 'engines' extra") from exc
        t0 = time.perf_counter()
        options = onnxruntime.SessionOptions()
        # Synthesis runs beside the LLM: a fixed thread count that does not spin keeps the two
        # from starving each other on a small CPU.
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(str(voice_path), sess_options=options,
                                                   providers=["CPUExecutionProvider"])
            self._voice: Any = PiperVoice(session=session, config=PiperConfig.from_dict(meta))
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ModelError(f"Piper could not load voice {voice_path}: {exc}") from exc
        self._syn_config = SynthesisConfig(length_scale=length_scale)
        self.load_s = time.perf_counter() - t0
        _LOG.info("Piper voice %s loaded in %.2f s (%d Hz)", self.voice_name, self.load_s, self.rate)

    def synthesize(self, text: str) -> Iterator[AudioClip]:
        for chunk in self._voice.synthesize(text, syn_config=self._syn_config):
            yield AudioClip(chunk.audio_int16_bytes, chunk.sample_rate, chunk.sample_channels)

    def close(self) -> None:
        self._voice = None
