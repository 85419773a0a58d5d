"""Quantization type names in file names: one parser for the catalogue, the ladder, the session and reports."""

from __future__ import annotations

import pytest

from assistant.models.quant_types import is_quant, model_name, quant_of, split_name


@pytest.mark.parametrize(("name", "model", "quant"), [
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct", "Q4_1"),
    ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Llama-3.2-1B-Instruct", "Q4_K_M"),
    ("qwen2.5-1.5b-instruct-q8_0.gguf", "qwen2.5-1.5b-instruct", "Q8_0"),
    ("Llama-3.2-1B-Instruct-bf16.gguf", "Llama-3.2-1B-Instruct", "BF16"),  # was read as F16
    ("model.F16.gguf", "model", "F16"),
    ("bitnet_b1_58-large-TQ2_0.gguf", "bitnet_b1_58-large", "TQ2_0"),
    ("/models/x/m.IQ4_XS.GGUF", "m", "IQ4_XS"),
    ("plain.gguf", "plain", None),
])
def test_names(name: str, model: str, quant: str | None) -> None:
    assert split_name(name) == (model, quant)
    assert model_name(name) == model and quant_of(name) == (quant or "unknown")


def test_type_names() -> None:
    assert all(is_quant(q) for q in ("q4_k_m", "BF16", "F32", "TQ1_0", "IQ4_NL"))
    assert not any(is_quant(q) for q in ("", "fp16", "int8", "Q", "source"))
