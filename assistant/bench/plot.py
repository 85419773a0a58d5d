"""The four panels of the study's figures (TPS, TPJ, W/BL, quality per tier) as one PNG, ours beside the study's."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from assistant.bench.published import COMPARE_MODEL
from assistant.errors import AssistantError

_LOG = logging.getLogger(__name__)


class PlotError(AssistantError):
    """The figure could not be drawn or written."""


def _bars(ax: Any, names: list[str], ours: list[float | None], theirs: list[float | None], title: str,
          ylabel: str) -> None:
    import numpy as np

    x = np.arange(len(names))
    w = 0.4
    ours_v = [v or 0.0 for v in ours]
    theirs_v = [v or 0.0 for v in theirs]
    b1 = ax.bar(x - w / 2, ours_v, w, label="this machine (ours)", color="#3b75af")
    b2 = ax.bar(x + w / 2, theirs_v, w, label=f"LLMPi {COMPARE_MODEL}, Pi 5 (published)", color="#ef8636")
    for bars, values in ((b1, ours), (b2, theirs)):
        for bar, v in zip(bars, values):
            if v is not None:
                ax.annotate(f"{v:.3g}" if v < 1000 else f"{v:.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=7)
    ax.set_xticks(x, names)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.3 * max([*ours_v, *theirs_v, 1e-9]))  # room for the legend above the bars
    ax.legend(fontsize=7, loc="upper center", ncol=2)


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Draw TPS, TPJ, W/BL and quality per tier (richest first) into ``path`` (PNG, matplotlib Agg)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotError(f"matplotlib is needed for --plot ({exc}); install the 'plots' extra") from exc
    tiers = [t for t in result["tiers"] if "error" not in t]
    if not tiers:
        raise PlotError("no tier was measured: nothing to plot")
    names = [f"{t['name']}\n{t['bits_per_weight']:.2f} bpw" for t in tiers]
    pub = [t.get("published") or {} for t in tiers]
    energy_label = "power model" if not tiers[0]["energy"]["measured"] else "measured"
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    _bars(axes[0][0], names, [t["gen_tps"] for t in tiers], [p.get("tps") for p in pub],
          "Generation speed (TPS)", "tokens / s")
    _bars(axes[0][1], names, [t["energy"]["gen_tpj"] for t in tiers], [p.get("tpj") for p in pub],
          f"Tokens per joule while generating (TPJ; ours: {energy_label})", "tokens / J")
    _bars(axes[1][0], names, [_k(t["energy"]["wbl"]) for t in tiers], [p.get("wbl_k") for p in pub],
          f"Words per battery life (W/BL; ours: {energy_label}, own pack)", "thousand words")
    ax = axes[1][1]
    import numpy as np

    x = np.arange(len(tiers))
    ppl = [t["quality"]["perplexity_rel"] or 0.0 for t in tiers]
    qa = [t["quality"]["qa_share"] or 0.0 for t in tiers]
    ax.bar(x - 0.2, qa, 0.4, label="factual questions right (share)", color="#3b75af")
    ax.bar(x + 0.2, [1.0 / p if p else 0.0 for p in ppl], 0.4, label="1 / perplexity relative to top tier",
           color="#5ca05c")
    ax.plot(x, [p.get("nubia") or np.nan for p in pub], "o--", color="#ef8636",
            label=f"NUBIA, LLMPi {COMPARE_MODEL} (published)")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.45)
    ax.set_title(f"Quality per tier (relative to {tiers[0]['name']})", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    m = result["machine"]
    fig.suptitle(f"assistant bench ({result['settings']['name']}) on {m['machine']}, {m['cores']} cores: ours "
                 "measured here; the study's figures are from a Raspberry Pi 5", fontsize=11)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise PlotError(f"cannot write the plot {path}: {exc}") from exc
    finally:
        plt.close(fig)
    _LOG.info("plot written to %s", path)


def _k(x: float | None) -> float | None:
    return None if x is None else x / 1000.0
