"""The LLMPi study's published Raspberry Pi 5 figures, to set beside the figures a drain run measures."""

from __future__ import annotations

import logging
from dataclasses import dataclass

_LOG = logging.getLogger(__name__)

STUDY_WHERE = "Raspberry Pi 5 (LLMPi study, published)"
STUDY_METHOD = ("llama.cpp on a Raspberry Pi 5, 50 generated tokens, mean of 10 runs; values read from the "
                "figure files its authors published (TPS, TPJ and W/BL bar charts, NUBIA scatter), so approximate. "
                "FP is the unquantized model.")


@dataclass(frozen=True)
class StudyRow:
    """One model and quantization as the study reports it."""

    model: str
    quant: str
    tps: float
    """Generated tokens per second."""
    tpj: float
    """Generated tokens per joule."""
    wbl: float
    """Words per battery life (the study's fixed battery)."""
    nubia: float
    """NUBIA quality score (about; higher is better)."""


def _rows(model: str, tps: str, tpj: str, wbl: str, nubia: str) -> list[StudyRow]:
    quants = ("FP", "Q8", "Q6", "Q4", "Q2")
    cols = [[float(x) for x in s.split("/")] for s in (tps, tpj, wbl, nubia)]
    return [StudyRow(model, q, cols[0][i], cols[1][i], cols[2][i] * 1000.0, cols[3][i]) for i, q in enumerate(quants)]


STUDY: tuple[StudyRow, ...] = (
    *_rows("Llama-3.2-1B", "3.81/7.43/9.35/11.68/14.78", "1.21/2.44/3.10/4.21/5.18", "7.1/14/18/23/29",
           "0.23/0.28/0.29/0.24/0.14"),
    *_rows("Gemma-2-2B", "1.95/3.59/4.33/5.61/6.67", "0.53/1.13/1.37/1.83/2.11", "3.4/6.6/8.0/11/12",
           "0.32/0.30/0.29/0.26/0.27"),
    *_rows("Llama-3.2-3B", "1.47/2.75/3.40/4.96/5.09", "0.51/0.85/1.08/1.52/1.48", "2.8/5.0/6.3/9.0/9.0",
           "0.33/0.34/0.36/0.30/0.19"),
    *_rows("Phi-3-3.8B", "0.10/2.25/2.73/4.12/4.20", "0.03/0.71/0.81/1.27/1.24", "0.18/4.2/4.9/7.5/7.5",
           "0.46/0.46/0.48/0.45/0.16"),
    *_rows("Llama-3-8B", "0.03/0.12/1.38/2.14/2.12", "0.01/0.03/0.41/0.64/0.57", "0.06/0.2/2.5/3.8/3.6",
           "0.37/0.31/0.36/0.28/0.17"),
    StudyRow("BitNet b1.58 0.7B", "ternary", 19.23, 4.66, 31000.0, 0.36),
    StudyRow("BitNet Llama-8B", "ternary", 1.96, 0.55, 3400.0, 0.36),
)
"""The study's table (hardware research notes, models-and-deps.md)."""
