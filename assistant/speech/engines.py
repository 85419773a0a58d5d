"""Load the speech engines named by the configuration, with the embedded models as defaults."""

from __future__ import annotations

import logging
from pathlib import Path

from assistant.config import AssistantConfig
from assistant.models import embedded
from assistant.speech.asr import Transcriber
from assistant.speech.llm import LlamaResponder
from assistant.speech.tts import PiperSynthesizer

_LOG = logging.getLogger(__name__)


def llm_path(cfg: AssistantConfig) -> Path:
    """The GGUF the configuration asks for, or the embedded SmolLM2."""
    return cfg.llm.model if cfg.llm.model is not None else embedded.smollm2_gguf()


def voice_path(cfg: AssistantConfig) -> Path:
    """The Piper voice the configuration asks for, or the embedded joe voice."""
    return cfg.tts.voice if cfg.tts.voice is not None else embedded.joe_voice()


def open_responder(cfg: AssistantConfig, model: Path | None = None) -> LlamaResponder:
    """Load the LLM (``model`` overrides the configured one)."""
    c = cfg.llm
    return LlamaResponder(
        model or llm_path(cfg),
        n_ctx=c.n_ctx,
        threads=c.threads,
        max_tokens=c.max_tokens,
        temperature=c.temperature,
        seed=c.seed,
        system_prompt=c.system_prompt,
        history_turns=c.history_turns,
    )


def open_synthesizer(cfg: AssistantConfig) -> PiperSynthesizer:
    """Load the Piper voice."""
    return PiperSynthesizer(voice_path(cfg), length_scale=cfg.tts.length_scale, threads=cfg.tts.threads)


def open_asr(cfg: AssistantConfig) -> Transcriber:
    """Load the ASR: Vosk when a model is installed or configured, else the labelled pocketsphinx fallback."""
    from assistant.speech.asr_select import open_transcriber

    return open_transcriber(cfg.asr, cfg.paths.models_dir.expanduser(), state_dir=cfg.paths.state_dir.expanduser(),
                            device=cfg.mic.device)

