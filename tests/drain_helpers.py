"""Test helpers for drain runs: a config file with a small ladder, a tiny simulated pack and a few questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

QUESTIONS = [
    "What is the capital of France?",
    "Why is the sky blue?",
    "How many legs does a spider have?",
    "What is the largest ocean on earth?",
    "How do I make a cup of tea?",
]
"""A handful of questions: a drain test speaks them once, then loops over them."""


def write_prompts(tmp_path: Path) -> Path:
    """The questions as a prompts file."""
    path = tmp_path / "questions.txt"
    path.write_text("# test questions\n" + "\n".join(QUESTIONS) + "\n", encoding="utf-8")
    return path


def tier(name: str, model: Path | None, quant: str, soc: float, max_tokens: int = 12, kind: str = "llm") -> dict[str, Any]:
    """One tier of the YAML ``tiers`` section; one thread, so other work on the machine slows it evenly."""
    row: dict[str, Any] = {"name": name, "kind": kind, "quant": quant, "enter_soc_pct": soc}
    if model is not None:
        row.update(model=str(model), n_ctx=512, max_tokens=max_tokens, threads=1, reply_words=10)
    return row


def write_config(
    tmp_path: Path,
    files: dict[str, Path],
    *,
    capacity_wh: float,
    time_scale: float = 1.0,
    rungs: list[dict[str, Any]] | None = None,
    empty_soc_pct: float = 20.0,
    idle_w: float | None = None,
    w_per_busy_core: float | None = None,
) -> Path:
    """A config file: state under ``tmp_path``, the simulated pack, a ladder over the test's GGUF files.

    ``idle_w`` and ``w_per_busy_core`` override the pack's Pi 5 figures: a draw that is mostly CPU work
    (counted in this process's CPU time) and little idle draw (counted in wall time) makes the energy of a
    turn nearly independent of other work slowing the machine."""
    ladder = rungs if rungs is not None else [
        tier("q8_0", files["Q8_0"], "Q8_0", 70.0, max_tokens=16),
        tier("q2_k", files["Q2_K"], "Q2_K", 40.0, max_tokens=12),
        tier("fixed", None, "none", 25.0, kind="fixed"),
    ]
    data = {
        "paths": {"state_dir": str(tmp_path / "state"), "models_dir": str(tmp_path / "models")},
        "asr": {"engine": "pocketsphinx"},
        "battery": {"kind": "simulated", "capacity_wh": capacity_wh, "simulated": {"time_scale": time_scale, **({} if idle_w is None else {"idle_w": idle_w}),
                                                                          **({} if w_per_busy_core is None else
                                                                             {"w_per_busy_core": w_per_busy_core})},
                    "empty_soc_pct": empty_soc_pct},
        "tiers": {"tiers": ladder + [{"name": "shutdown", "kind": "shutdown", "enter_soc_pct": 0.0}],
                  "hysteresis_pct": 3.0},
    }
    path = tmp_path / "assistant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
