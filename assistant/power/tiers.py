"""The quantization tier ladder and the pure policy that picks a tier from a battery reading.

Nothing here touches a file: which model files make the ladder, and whether they load, is
``models/tier_ladder.py``."""

from __future__ import annotations

import logging
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from assistant.messages import BatteryReading
from assistant.power.cutoff import EmptyPoint, is_empty, power_source

_LOG = logging.getLogger(__name__)

TierKind = Literal["llm", "fixed", "shutdown"]


@dataclass(frozen=True)
class Tier:
    """One rung of the ladder: which model answers, and how long a reply may be, at this battery level."""

    name: str
    """Short label used in logs and the turn log, e.g. ``q8_0`` or ``fixed``."""
    model: Path | None = None
    """GGUF file of an ``llm`` tier; None for the ``fixed`` and ``shutdown`` tiers."""
    quant: str = "none"
    """Quantization label of the model, e.g. ``Q8_0`` (``none`` without a model)."""
    enter_soc_pct: float = 0.0
    """The tier is used while the state of charge is at or above this (%)."""
    enter_voltage_v: float | None = None
    """Same as ``enter_soc_pct`` for gauges that report only a voltage (V); set on every tier or on none."""
    n_ctx: int = 1024
    """Context window (tokens)."""
    max_tokens: int = 64
    """Longest reply (generated tokens)."""
    threads: int = 0
    """CPU threads for generation; 0 means all cores."""
    reply_words: int | None = None
    """Spoken length the system prompt asks for ("Answer in at most N words"); None: no limit asked."""
    kind: TierKind = "llm"
    """``llm``: a language model answers; ``fixed``: fixed phrases only; ``shutdown``: halt the appliance."""

    def __post_init__(self) -> None:
        where = f"tier '{self.name}'"
        if not self.name:
            raise ValueError("every tier needs a non-empty name")
        if self.kind == "llm" and self.model is None:
            raise ValueError(f"{where}: kind 'llm' needs a model file")
        if self.kind != "llm" and self.model is not None:
            raise ValueError(f"{where}: kind '{self.kind}' takes no model (got {self.model})")
        if not 0.0 <= self.enter_soc_pct <= 100.0:
            raise ValueError(f"{where}: enter_soc_pct {self.enter_soc_pct} is outside 0..100")
        if self.enter_voltage_v is not None and self.enter_voltage_v <= 0:
            raise ValueError(f"{where}: enter_voltage_v must be positive, got {self.enter_voltage_v}")
        if self.n_ctx <= 0 or self.max_tokens <= 0 or self.threads < 0:
            raise ValueError(f"{where}: n_ctx and max_tokens must be positive and threads not negative")
        if self.reply_words is not None and self.reply_words <= 0:
            raise ValueError(f"{where}: reply_words must be positive, got {self.reply_words}")


SHUTDOWN = Tier(name="shutdown", kind="shutdown")
"""The tier returned at the empty point when the configuration lists none."""

EMERGENCY_FIXED = Tier(name="fixed", kind="fixed")
"""Returned when no configured tier is available at all: fixed phrases need no model."""


@dataclass(frozen=True)
class TierConfig:
    """The ladder, richest tier first, and the thresholds around it."""

    tiers: list[Tier]
    """Tiers in order, richest first; ``enter_soc_pct`` strictly decreasing; an optional ``shutdown`` tier last."""
    hysteresis_pct: float = 3.0
    """Moving up to a richer tier needs this much state of charge above its threshold (%-points)."""
    hysteresis_v: float = 0.05
    """The same margin for voltage-only readings (V)."""
    default_tier: str | None = None
    """Tier used when no battery reading is available; None means the richest available tier."""

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("tiers: list at least one tier")
        seen: set[str] = set()
        for i, tier in enumerate(self.tiers):
            if tier.name in seen:
                raise ValueError(f"tiers[{i}].name '{tier.name}' is used twice; tier names must be unique")
            seen.add(tier.name)
            if tier.kind == "shutdown" and i != len(self.tiers) - 1:
                raise ValueError(f"tiers[{i}] '{tier.name}' is a shutdown tier; it must be the last one")
            if i and tier.enter_soc_pct >= self.tiers[i - 1].enter_soc_pct:
                raise ValueError(
                    f"tiers[{i}].enter_soc_pct {tier.enter_soc_pct:g} must be below tiers[{i - 1}].enter_soc_pct "
                    f"{self.tiers[i - 1].enter_soc_pct:g} (richest tier first, thresholds strictly decreasing)"
                )
        ladder = self.ladder
        if not ladder:
            raise ValueError("tiers: list at least one llm or fixed tier")
        with_v = [t for t in ladder if t.enter_voltage_v is not None]
        if with_v and len(with_v) != len(ladder):
            raise ValueError("tiers[].enter_voltage_v must be set on every llm/fixed tier or on none")
        for i in range(1, len(with_v)):
            if (with_v[i].enter_voltage_v or 0.0) >= (with_v[i - 1].enter_voltage_v or 0.0):
                raise ValueError(f"tiers[{i}].enter_voltage_v must be below tiers[{i - 1}].enter_voltage_v")
        if self.hysteresis_pct < 0 or self.hysteresis_v < 0:
            raise ValueError("hysteresis_pct and hysteresis_v must not be negative")
        if self.default_tier is not None and self.default_tier not in seen:
            raise ValueError(f"default_tier '{self.default_tier}' is not the name of a tier ({', '.join(seen)})")

    @property
    def ladder(self) -> list[Tier]:
        """The llm and fixed tiers, richest first (everything but the shutdown tier)."""
        return [t for t in self.tiers if t.kind != "shutdown"]

    @property
    def shutdown(self) -> Tier:
        """The configured shutdown tier, or the built-in one."""
        last = self.tiers[-1]
        return last if last.kind == "shutdown" else SHUTDOWN

    def tier(self, name: str) -> Tier | None:
        """The tier called ``name``, if any."""
        return next((t for t in self.tiers if t.name == name), None)


def length_instruction(tier: Tier) -> str:
    """The sentence added to the system prompt so the spoken reply fits the tier ("" without a limit)."""
    if tier.reply_words is None:
        return ""
    return f"Answer in at most {tier.reply_words} words."


def _resolve(index: int, ladder: list[Tier], unavailable: Set[str]) -> Tier:
    """The tier at ``index``, or the next lower available one, or else the nearest richer one."""
    for i in range(index, len(ladder)):
        if ladder[i].name not in unavailable:
            return ladder[i]
    for i in range(min(index, len(ladder)) - 1, -1, -1):
        if ladder[i].name not in unavailable:
            return ladder[i]
    _LOG.warning("no configured tier is available; answering with fixed phrases")
    return EMERGENCY_FIXED


def _pick(x: float, thresholds: list[float], hyst: float, c: int | None, ladder: list[Tier],
          unavailable: Set[str]) -> Tier:
    """Hysteresis on one scale (SoC or volts): down as soon as x < current threshold, up only with margin."""
    n = len(ladder)
    target = next((i for i in range(n) if x >= thresholds[i]), n - 1)
    if c is None:
        return _resolve(target, ladder, unavailable)
    if c < n and x < thresholds[c]:
        return _resolve(max(target, c), ladder, unavailable)
    up = next((i for i in range(min(c, n)) if ladder[i].name not in unavailable and x >= thresholds[i] + hyst), None)
    if up is not None:
        return ladder[up]
    return _resolve(min(c, n - 1), ladder, unavailable)


def choose_tier(
    reading: BatteryReading | None,
    tiers: TierConfig,
    current: Tier | None,
    *,
    empty: EmptyPoint,
    unavailable: Set[str] = frozenset(),
) -> Tier:
    """Pick the tier for the next turn; pure (no I/O), so the same inputs always give the same tier.

    Rules, in order:

    1. No reading (no gauge, a silent one, or a simulated reading outside a simulation): keep
       ``current`` (or the next lower available tier if it became unavailable); with no current
       tier, ``default_tier``, else the richest available tier.
    2. External power (``cutoff.power_source``: a measured discharge means battery whatever the
       flags say): the richest available tier.
    3. Shutdown: the reading is at or below the pack's ``empty`` point (``cutoff.is_empty``; with
       the power source unknown every figure must be). Leaving shutdown again needs the reading
       above the empty point plus its margins (``EmptyPoint.raised``).
    4. Otherwise the richest tier whose threshold the state of charge meets, with hysteresis: moving
       down happens as soon as SoC < the current tier's threshold; moving up to a richer tier needs
       SoC >= its threshold + ``hysteresis_pct``. So a SoC wandering around a threshold switches once.
       Above the empty point, the lowest tier catches everything below its own threshold.
    5. Without a SoC (voltage-only gauge), the same is done on ``enter_voltage_v`` when configured;
       otherwise the current (or default) tier is kept.
    6. Tiers in ``unavailable`` (model file missing or corrupt) are skipped to the next lower
       available tier (or, if none is lower, the nearest richer one).
    """
    ladder = tiers.ladder
    if current is not None and current.kind != "shutdown" and current.name not in {t.name for t in ladder}:
        current = None  # the configuration changed under us: choose afresh
    c: int | None = None
    if current is not None:
        c = len(ladder) if current.kind == "shutdown" else [t.name for t in ladder].index(current.name)

    def keep() -> Tier:
        if c is not None and c < len(ladder):
            return _resolve(c, ladder, unavailable)
        start = 0
        if tiers.default_tier is not None:
            start = [t.name for t in tiers.tiers].index(tiers.default_tier)
            if start >= len(ladder):  # the default is the shutdown tier itself
                return tiers.shutdown
        return _resolve(start, ladder, unavailable)

    if reading is None:
        return current if current is not None and current.kind == "shutdown" else keep()
    source = power_source(reading)
    if source == "external":
        return _resolve(0, ladder, unavailable)

    in_shutdown = c == len(ladder)
    point = empty.raised() if in_shutdown else empty
    if is_empty(reading, point, strict=source == "unknown")[0]:
        return tiers.shutdown
    if in_shutdown:
        c = None  # back above the empty point with its margin: choose afresh
    soc = reading.soc_pct
    if soc is not None:
        thresholds = [t.enter_soc_pct for t in ladder]
        return _pick(soc, thresholds, tiers.hysteresis_pct, c, ladder, unavailable)
    if ladder[0].enter_voltage_v is not None:
        volts = [t.enter_voltage_v or 0.0 for t in ladder]  # validated: set on every tier or on none
        return _pick(reading.voltage_v, volts, tiers.hysteresis_v, c, ladder, unavailable)
    return keep()
