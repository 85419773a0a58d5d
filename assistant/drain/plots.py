"""PNG plots of drain runs (matplotlib, Agg backend): SoC and voltage with tier bands, and per-tier bars."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from assistant.power.battery_config import REFERENCE_PACK_WH
from assistant.drain.analysis import RunData, TierRow

_LOG = logging.getLogger(__name__)

COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _tier_colors(names: list[str]) -> dict[str, str]:
    return {n: COLORS[i % len(COLORS)] for i, n in enumerate(names)}


def _bands(samples: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
    """Spans (start min, end min, tier) over which each tier was the current one."""
    spans: list[tuple[float, float, str]] = []
    for s in samples:
        t, tier = float(s.get("t_s") or 0.0) / 60.0, str(s.get("tier") or "(loading)")
        if spans and spans[-1][2] == tier:
            spans[-1] = (spans[-1][0], t, tier)
        else:
            start = spans[-1][1] if spans else t
            spans.append((start, t, tier))
    return spans


def soc_voltage(run: RunData, path: Path) -> Path:
    """SoC (top) and pack voltage (bottom) over running time, tier bands behind, resumes marked."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    s = run.samples
    t = [float(x.get("t_s") or 0.0) / 60.0 for x in s]
    ax1.plot(t, [x.get("soc_pct") for x in s], color="black", lw=1.5)
    ax2.plot(t, [x.get("voltage_v") for x in s], color="black", lw=1.2)
    colors = _tier_colors([r.tier for r in run.rows] + ["(loading)"])
    labelled: set[str] = set()
    for a, b, tier in _bands(s):
        for ax in (ax1, ax2):
            ax.axvspan(a, max(b, a + 1e-3), color=colors.get(tier, "#dddddd"), alpha=0.25, lw=0,
                       label=tier if ax is ax1 and tier not in labelled else None)
        labelled.add(tier)
    for seg in run.segments[1:]:
        for ax in (ax1, ax2):
            ax.axvline(float(seg.get("t_s") or 0.0) / 60.0, color="red", ls="--", lw=1)
    until = run.meta.get("until_pct")
    if until is not None:
        ax1.axhline(float(until), color="grey", ls=":", lw=1)
    ax1.set_ylabel("state of charge (%)")
    ax2.set_ylabel("pack voltage (V)")
    ax2.set_xlabel("running time (min)" + (f"; simulated pack at time scale {run.time_scale:g}" if run.simulated else ""))
    ax1.legend(loc="upper right", fontsize=8, title="tier")
    kind = "SIMULATED pack" if run.simulated else f"gauge {run.meta.get('pack', {}).get('gauge')}"
    ax1.set_title(f"{run.run_id} ({run.meta.get('mode')}): {kind}" + (", red = resumed" if len(run.segments) > 1 else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, labels: list[str], values: list[float | None], color: str, fmt: str) -> None:
    xs = list(range(len(labels)))
    ax.bar(xs, [v or 0.0 for v in values], color=color)
    for x, v in zip(xs, values):
        ax.annotate("n/a" if v is None else format(v, fmt), (x, v or 0.0), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=20, fontsize=8)


def wbl(run: RunData, path: Path) -> Path:
    """Words per charge per tier on the reference pack, each bar saying how much of a charge it rests on."""
    plt = _plt()
    rows = run.rows
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = [f"{r.tier}\n" + ("full drain" if r.full_drain else f"extrapolated from\n{100 * r.pack_share:.0f} % of pack")
              for r in rows]
    _bars(ax, labels, [r.wbl_ref for r in rows], "#4c72b0", ",.0f")
    ax.set_ylabel(f"words per charge (2x18650, {REFERENCE_PACK_WH} Wh)")
    ax.set_title(f"W/BL per tier, energy {run.energy_kind.upper()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rates(run: RunData, path: Path) -> Path:
    """TPS, TPJ and measured words per token of the LLM tiers."""
    plt = _plt()
    rows = [r for r in run.rows if r.kind == "llm"]
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    labels = [f"{r.tier}\n{r.quant}" for r in rows]
    _bars(axes[0], labels, [r.stats.tps_mean for r in rows], "#55a868", ".1f")
    axes[0].set_title("tokens per second")
    _bars(axes[1], labels, [r.stats.tpj for r in rows], "#dd8452", ".2f")
    axes[1].set_title(f"tokens per joule ({run.energy_kind})")
    _bars(axes[2], labels, [r.stats.words_per_token for r in rows], "#8172b3", ".2f")
    axes[2].set_title("words per token (measured)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency(run: RunData, path: Path) -> Path:
    """p50 and p95 of first audio and of the whole turn, per tier."""
    plt = _plt()
    rows: list[TierRow] = run.rows
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.2
    series = [("first audio p50", "first_audio_s", 0), ("first audio p95", "first_audio_s", 1),
              ("total p50", "total_s", 0), ("total p95", "total_s", 1)]
    for i, (label, key, q) in enumerate(series):
        xs = [x + (i - 1.5) * width for x in range(len(rows))]
        ax.bar(xs, [r.latency[key][q] or 0.0 for r in rows], width, label=label, color=COLORS[i])
    ax.set_xticks(list(range(len(rows))))
    ax.set_xticklabels([r.tier for r in rows])
    ax.set_ylabel("seconds after the end of the question")
    ax.legend(fontsize=8)
    ax.set_title("latency per tier")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare(runs: list[RunData], path: Path) -> Path:
    """TPJ and W/BL (reference pack) of every LLM tier of every run, side by side."""
    plt = _plt()
    labels: list[str] = []
    tpj: list[float | None] = []
    wbls: list[float | None] = []
    for run in runs:
        for r in run.rows:
            if r.kind == "llm":
                labels.append(f"{run.meta.get('mode')}\n{r.tier}")
                tpj.append(r.stats.tpj)
                wbls.append(r.wbl_ref)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(8, 1.1 * len(labels)), 7))
    _bars(a1, labels, tpj, "#dd8452", ".2f")
    a1.set_ylabel("tokens per joule")
    _bars(a2, labels, wbls, "#4c72b0", ",.0f")
    a2.set_ylabel("words per charge (2x18650)")
    kinds = sorted({r.energy_kind for r in runs})
    a1.set_title(f"runs side by side; energy {', '.join(k.upper() for k in kinds)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
