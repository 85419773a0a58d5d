"""llama.cpp's quantization types: how a file name carries one, and how many bits per weight each has."""

from __future__ import annotations

import re
from pathlib import Path

QUANT = r"(?:F32|F16|BF16|TQ\d_\d|I?Q\d\w*)"
"""A llama.cpp type name as it appears in a GGUF file name (``Q4_K_M``, ``IQ4_XS``, ``BF16``, ``TQ2_0``)."""
_WHOLE = re.compile(rf"{QUANT}", re.IGNORECASE)
_SUFFIX = re.compile(rf"[.-]({QUANT})$", re.IGNORECASE)
_GGUF = re.compile(r"\.gguf$", re.IGNORECASE)

NOMINAL_BPW: dict[str, float] = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_1": 6.0, "Q5_K_M": 5.69,
    "Q5_K_S": 5.54, "Q5_0": 5.5, "Q4_1": 5.0, "Q4_K_M": 4.85, "Q4_K_S": 4.58, "Q4_0": 4.5, "IQ4_NL": 4.5,
    "IQ4_XS": 4.25, "Q3_K_L": 4.27, "Q3_K_M": 3.91, "Q3_K_S": 3.5, "Q2_K": 2.96, "TQ2_0": 2.06, "TQ1_0": 1.69,
}
"""Bits per weight a file of each type has on a model whose widths suit its blocks (llama.cpp's figures):
estimates before building, and the test of a re-quantization that would go up."""
FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})
TERNARY_TYPES = frozenset({"TQ1_0", "TQ2_0"})
"""Ternary types: only meaningful for models trained ternary (BitNet b1.58); garbage otherwise."""


def is_quant(name: str) -> bool:
    """``name`` is a type name (any case)."""
    return _WHOLE.fullmatch(name) is not None


def split_name(file_name: str) -> tuple[str, str | None]:
    """(model, type) from a GGUF file name: ``SmolLM2-135M-Instruct.Q4_1.gguf`` -> (``SmolLM2-135M-Instruct``,
    ``Q4_1``), ``m-bf16.gguf`` -> (``m``, ``BF16``); the type is None when the name carries none."""
    stem = _GGUF.sub("", Path(file_name).name)
    match = _SUFFIX.search(stem)
    if match is None:
        return stem, None
    return stem[: match.start()], match.group(1).upper()


def quant_of(path: Path | str) -> str:
    """The type a file's name carries, or ``unknown``."""
    return split_name(str(path))[1] or "unknown"


def model_name(path: Path | str) -> str:
    """The model a file's name carries without its type: ``SmolLM2-135M-Instruct``."""
    return split_name(str(path))[0]
