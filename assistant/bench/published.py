"""Published Raspberry Pi figures to set beside ours: the LLMPi study's per-model, per-quantization results
(the bench's tables and the drain report both read them from here)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from assistant.models.quant_types import FLOAT_TYPES, TERNARY_TYPES

_LOG = logging.getLogger(__name__)

LLMPI_SOURCE = ("LLMPi study: Raspberry Pi 5, llama.cpp, 50 generated tokens, mean of 10 runs; read from the TPS, "
                "TPJ and W/BL bar charts and the NUBIA scatter its authors published with the paper")
"""Where the figures below come from."""
LLMPI_WHERE = "Raspberry Pi 5 (LLMPi study, published)"
"""How a report labels where the study's figures were measured."""
LLMPI_METHOD = ("llama.cpp on a Raspberry Pi 5, 50 generated tokens, mean of 10 runs; values read from the "
                "figure files its authors published (TPS, TPJ and W/BL bar charts, NUBIA scatter), so approximate. "
                "FP is the unquantized model.")
"""The study's method, as a sentence for a report."""


@dataclass(frozen=True)
class PublishedRow:
    """One model at one quantization, as the study reports it."""

    model: str
    quant: str
    """``FP`` (unquantized), ``Q8``, ``Q6``, ``Q4``, ``Q2`` or ``ternary``."""
    tps: float
    """Generated tokens per second."""
    tpj: float
    """Generated tokens per joule."""
    wbl_k: float
    """Words per battery life, thousands (the study's own battery energy)."""
    nubia: float
    """NUBIA quality score, read off a scatter plot (about)."""

    @property
    def wbl(self) -> float:
        """Words per battery life (the study's own battery energy)."""
        return self.wbl_k * 1000.0


_QUANTS = ("FP", "Q8", "Q6", "Q4", "Q2")
_TABLE: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    "Llama-3.2-1B": ((3.81, 7.43, 9.35, 11.68, 14.78), (1.21, 2.44, 3.10, 4.21, 5.18), (7.1, 14, 18, 23, 29),
                     (0.23, 0.28, 0.29, 0.24, 0.14)),
    "Gemma-2-2B": ((1.95, 3.59, 4.33, 5.61, 6.67), (0.53, 1.13, 1.37, 1.83, 2.11), (3.4, 6.6, 8.0, 11, 12),
                   (0.32, 0.30, 0.29, 0.26, 0.27)),
    "Llama-3.2-3B": ((1.47, 2.75, 3.40, 4.96, 5.09), (0.51, 0.85, 1.08, 1.52, 1.48), (2.8, 5.0, 6.3, 9.0, 9.0),
                     (0.33, 0.34, 0.36, 0.30, 0.19)),
    "Phi-3-3.8B": ((0.10, 2.25, 2.73, 4.12, 4.20), (0.03, 0.71, 0.81, 1.27, 1.24), (0.18, 4.2, 4.9, 7.5, 7.5),
                   (0.46, 0.46, 0.48, 0.45, 0.16)),
    "Llama-3-8B": ((0.03, 0.12, 1.38, 2.14, 2.12), (0.01, 0.03, 0.41, 0.64, 0.57), (0.06, 0.2, 2.5, 3.8, 3.6),
                   (0.37, 0.31, 0.36, 0.28, 0.17)),
}

LLMPI: tuple[PublishedRow, ...] = tuple(
    PublishedRow(model, q, tps[i], tpj[i], wbl[i], nubia[i])
    for model, (tps, tpj, wbl, nubia) in _TABLE.items()
    for i, q in enumerate(_QUANTS)
) + (
    PublishedRow("BitNet b1.58 0.7B", "ternary", 19.23, 4.66, 31, 0.36),
    PublishedRow("BitNet Llama-8B", "ternary", 1.96, 0.55, 3.4, 0.36),
)
"""Every row of the study's figures."""

COMPARE_MODEL = "Llama-3.2-1B"
"""The study's smallest conventional model: the one our tiers are set beside."""

PI_FIGURES: dict[str, str] = {
    "pi5_idle_w": "about 2.8 W at the wall, idle (Raspberry Pi 5)",
    "pi5_full_load_w": "about 9.7 W at the wall, all four cores busy (Raspberry Pi 5)",
    "pi5_decode_tps": "about 6 to 15 tok/s llama.cpp decode for 1 to 3B models at 4 bit (Raspberry Pi 5)",
    "pi4_decode_tps": "about 1.6 to 5 tok/s for the same (Raspberry Pi 4)",
    "pi4_whisper_command_s": "5 to 8 s for Whisper to transcribe a voice command (Raspberry Pi 4)",
    "pack": "2 x 18650 (3.7 V, 2600 mAh) = 19.24 Wh = 69.3 kJ nominal; 80 to 90 % usable",
    "real_time_tps": "a spoken reply needs generation at least as fast as speech: about 3 to 4 tok/s",
}
"""Published board and speed figures (see the project's reference notes)."""


def study_quant(quant: str) -> str | None:
    """The study's quantization level matching one of ours: ``Q4_K_M`` -> ``Q4``, ``F16`` -> ``FP``."""
    q = quant.upper()
    if q in FLOAT_TYPES:
        return "FP"
    for level in ("Q8", "Q6", "Q5", "Q4", "Q3", "Q2"):
        if q.startswith(level):
            return level if level in _QUANTS else None
    if q in TERNARY_TYPES:
        return "ternary"
    return None


def study_row(quant: str, model: str = COMPARE_MODEL) -> PublishedRow | None:
    """The study's row for ``model`` at the level matching ``quant``."""
    level = study_quant(quant)
    return next((r for r in LLMPI if r.model == model and r.quant == level), None)


def published_json() -> dict[str, Any]:
    """Everything above as JSON, labelled."""
    return {"llmpi": {"source": LLMPI_SOURCE, "rows": [asdict(r) for r in LLMPI]}, "pi": PI_FIGURES,
            "label": "published figures measured on Raspberry Pi boards by others, not on this machine"}
