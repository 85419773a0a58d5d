"""The governor: answer on the richest tiers the charge can pay for and still reach the user's target.

The threshold ladder answers "which tier for this state of charge?"; the governor answers "will it
last until the end of the day?". From the energy each tier has measurably cost per answer, the
draw between answers and the recent rate of questions, it finds the richest tier the rest of the time
can run on, and spends what that tier spares on richer answers, first questions first (``plan``).
Pure: the session feeds it what it measured (``Costs``) and asks it between turns; it does no I/O.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from assistant.messages import TurnLogEntry

_LOG = logging.getLogger(__name__)

@dataclass(frozen=True)
class GovernorConfig:
    """The battery governor (YAML section ``governor``): how long a charge must last."""

    target_hours: float | None = None
    """Keep serving at least this many hours from the start (h): the richest tier whose projected
    life reaches it is used. Empty (and no ``until``): the threshold ladder alone decides."""
    until: str | None = None
    """... or until this local clock time, ``HH:MM`` (the next such time after the start)."""
    rate_window_min: float = 60.0
    """The rate of questions is measured over this many minutes (min)."""

    def __post_init__(self) -> None:
        if self.target_hours is not None and self.until is not None:
            raise ValueError("set target_hours or until, not both")
        if self.target_hours is not None and not 0 < self.target_hours <= 24 * 14:
            raise ValueError(f"target_hours must be within (0, 336], got {self.target_hours}")
        if self.until is not None:
            clock_minutes(self.until)
        if self.rate_window_min <= 0:
            raise ValueError(f"rate_window_min must be positive, got {self.rate_window_min}")

    @property
    def active(self) -> bool:
        return self.target_hours is not None or self.until is not None

    def target_unix(self, start_unix: float) -> float | None:
        """When the charge must last until (Unix time), for an appliance started at ``start_unix``."""
        if self.target_hours is not None:
            return start_unix + self.target_hours * 3600.0
        if self.until is None:
            return None
        start = time.localtime(start_unix)
        minutes = clock_minutes(self.until)
        today = time.mktime((start.tm_year, start.tm_mon, start.tm_mday, minutes // 60, minutes % 60, 0, 0, 0, -1))
        return today if today > start_unix else today + 24 * 3600.0


def clock_minutes(text: str) -> int:
    """Minutes after midnight of ``HH:MM``; ValueError naming the text when it is not one."""
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and int(hours) < 24
            and int(minutes) < 60):
        raise ValueError(f"until must be a clock time HH:MM (24 h), got {text!r}")
    return int(hours) * 60 + int(minutes)


MIN_ANSWERS = 3
"""Answers measured on a tier before its cost is believed."""
IDLE_MARGIN = 0.02
"""Headroom on the draw between answers (share): it is measured over every gap between turns and drifts
little; a margin on the whole draw would, where idling is most of it (a Pi 5 idles at about 2.8 W), hold
back a third of what the answers have."""
ANSWER_MARGIN = 0.15
"""Headroom on what the answers still to come cost over idling (share): an answer's cost varies with its
length, the conversation and the machine's other work."""
UP_ANSWERS = 5
"""Moving up to a tier richer than the one in use needs the pack to pay for this many answers on it (or the
questions left, when fewer): every change of tier loads another model file and evaluates the conversation
again, worth it for a run of answers, not for one that the next question takes back."""
TARGET_WITHIN = 0.05
"""A charge that lasted within this share of the target either way met it (short: missed; longer: the
richer tiers it passed over were affordable)."""


@dataclass(frozen=True)
class TierCost:
    """What one tier has cost per answer, as measured."""

    joules: float
    """Mean energy of an answer on this tier, the whole turn (J)."""
    seconds: float
    """Mean length of an answer, the whole turn (s)."""
    answers: int
    """How many answers the means are over."""


@dataclass(frozen=True)
class Outlook:
    """How far the pack goes on one tier, at the recent rate of questions."""

    tier: str
    hours: float | None
    """Hours until the empty point; None when the tier's cost is not known yet."""
    answers: int | None
    """Answers until the empty point; None when not known."""
    meets_target: bool | None
    """The tier reaches the target; None without a target or a known cost."""


@dataclass(frozen=True)
class Plan:
    """The governor's choice and the outlook behind it."""

    tier: str | None
    """The tier to use; None: too little data, so the threshold ladder decides."""
    reason: str
    outlooks: tuple[Outlook, ...]
    target_hours_left: float | None
    """Hours from now to the target; None without one."""
    idle_w: float | None = None
    """The draw between answers the projections counted on (W)."""


def average_power_w(cost: TierCost, idle_w: float, per_hour: float | None) -> float:
    """Mean draw (W) while answering ``per_hour`` questions an hour on this tier and idling between them.
    Without a rate, answers come back to back."""
    answers = answers_in(cost, per_hour, 3600.0)
    if answers * cost.seconds >= 3600.0:  # back to back: no idling between answers
        return cost.joules / max(cost.seconds, 1e-9)
    return idle_w + answers / 3600.0 * max(0.0, cost.joules - idle_w * cost.seconds)


def answers_in(cost: TierCost, per_hour: float | None, seconds: float) -> float:
    """Questions ``seconds`` of service bring on this tier: at the recent rate, never more than back to back
    (without a rate, back to back)."""
    back_to_back = max(0.0, seconds) / max(cost.seconds, 1e-9)
    return back_to_back if per_hour is None else min(per_hour * max(0.0, seconds) / 3600.0, back_to_back)


def energy_needed_j(cost: TierCost, idle_w: float, per_hour: float | None, seconds: float) -> float:
    """Energy (J) ``seconds`` of service take on this tier, with headroom: the draw between answers all along
    (plus ``IDLE_MARGIN``), and for every question the rate brings what its answer costs over idling as long
    (plus ``ANSWER_MARGIN``)."""
    over_idle = max(0.0, cost.joules - idle_w * cost.seconds)
    answers = answers_in(cost, per_hour, seconds)
    return idle_w * max(0.0, seconds) * (1.0 + IDLE_MARGIN) + answers * over_idle * (1.0 + ANSWER_MARGIN)


def outlook(tier: str, cost: TierCost | None, *, remaining_j: float, idle_w: float, per_hour: float | None,
            hours_left: float | None) -> Outlook:
    """Hours and answers the pack gives on ``tier`` (pure); it meets the target when the energy the time left
    needs on it, with headroom (``energy_needed_j``), is in the pack."""
    if cost is None or cost.answers < MIN_ANSWERS or cost.joules <= 0:
        return Outlook(tier, None, None, None)
    power = average_power_w(cost, idle_w, per_hour)
    hours = remaining_j / power / 3600.0 if power > 0 else math.inf
    answers = int(answers_in(cost, per_hour, hours * 3600.0)) if math.isfinite(hours) else 0
    meets = None if hours_left is None else \
        remaining_j >= energy_needed_j(cost, idle_w, per_hour, hours_left * 3600.0)
    return Outlook(tier, hours, answers, meets)


def plan(ladder: Sequence[str], costs: dict[str, TierCost], *, remaining_j: float, idle_w: float,
         per_hour: float | None, hours_left: float | None, current: str | None = None,
         rate_known: bool = True, answering: frozenset[str] | None = None) -> Plan:
    """The tier for the next answer, from ``ladder`` (richest first, available tiers only), so that the pack
    reaches ``hours_left``.

    First the tier that lasts: walking down the ladder, the first tier with a known cost whose energy for the
    time left, with headroom (``energy_needed_j``), is in the pack; one whose cost is not known yet is chosen
    to be measured (the ladder below a measured tier is only learnt by using it). With every known tier short
    of the target, the leanest is chosen.

    Then the spending: the richest tier (above the one that lasts) answers this question when the pack, after
    this answer on it, still holds what the rest of the time needs on the tier that lasts. What the tier that
    lasts would leave over thus goes to the richest answers, the first questions first, rather than being kept
    to the end; the headroom, a share of what is still to come, shrinks as the target nears and is spent then.
    Fixed phrases (the leanest rung) thus answer only the questions no answering tier can pay for.

    Without a target, or before any tier has ``MIN_ANSWERS`` measured answers, the governor has no choice
    to make (``tier`` None): the threshold ladder decides. ``rate_known`` False (fewer than two questions in
    the rate window, as at the start of a day whose costs come from earlier days' turn log) leaves the
    choice to the threshold ladder too: ``per_hour`` None then means "not known", not "back to back".

    Spending on a tier richer than ``current`` (the tier in use) needs the pack to pay for ``UP_ANSWERS``
    answers on it, not one: every change of tier loads another model file and evaluates the conversation
    again, so the plan does not move up for one answer and back down for the next. Leaving a tier that does
    not answer (fixed phrases: not in ``answering``, when given) for one that does needs one answer's worth:
    an answer is worth a model load.
    """
    looks = tuple(outlook(t, costs.get(t), remaining_j=remaining_j, idle_w=idle_w, per_hour=per_hour,
                          hours_left=hours_left) for t in ladder)
    if hours_left is None:
        return Plan(None, "no target set", looks, None, idle_w)
    if not any(o.hours is not None for o in looks):
        return Plan(None, "too little measured yet: the threshold ladder decides", looks, hours_left, idle_w)
    if not rate_known:  # costs from earlier days, no question yet today: projecting back to back would pick the leanest
        return Plan(None, "too few questions yet to know how often they come: the threshold ladder decides",
                    looks, hours_left, idle_w)
    answers_now = answering is None or current in answering
    at = list(ladder).index(current) if current is not None and current in ladder and answers_now else None
    seconds = hours_left * 3600.0

    lasting: int | None = None
    for i, o in enumerate(looks):
        if o.hours is None:
            return Plan(o.tier, f"measuring what tier {o.tier} costs per answer", looks, hours_left, idle_w)
        if o.meets_target:
            lasting = i
            break
    if lasting is None:
        lean = looks[-1]
        return Plan(lean.tier, f"no tier reaches the target {hours_left:.1f} h away; the leanest lasts "
                    f"{lean.hours or 0:.1f} h", looks, hours_left, idle_w)
    keep = looks[lasting]
    rest = costs[keep.tier]
    questions = answers_in(rest, per_hour, seconds)
    for i in range(lasting):
        rich = costs[ladder[i]]
        runs = 1 if at is None or i >= at else max(1, min(UP_ANSWERS, math.floor(questions)))
        gap = rich.seconds if per_hour is None else max(rich.seconds, 3600.0 / per_hour)
        spend_s = min(seconds, runs * gap)  # the next ``runs`` questions on it, the rest on the tier that lasts
        if remaining_j >= energy_needed_j(rich, idle_w, per_hour, spend_s) + \
                energy_needed_j(rest, idle_w, per_hour, seconds - spend_s):
            what = "this answer" if runs == 1 else f"the next {runs} answers"
            return Plan(ladder[i], f"tier {keep.tier} lasts {keep.hours:.1f} h, the target is {hours_left:.1f} h "
                        f"away: {what} on {ladder[i]} leave{'s' if runs == 1 else ''} enough for the rest on "
                        f"{keep.tier}", looks, hours_left, idle_w)
    return Plan(keep.tier, f"tier {keep.tier} lasts {keep.hours:.1f} h, the target is {hours_left:.1f} h away",
                looks, hours_left, idle_w)


MIN_IDLE_S = 10.0
"""Seconds between turns measured before their draw is believed as the idle draw (s): a reading taken as a
question arrives finds the appliance already busy, so the gaps between turns are what idle costs."""

MIN_SOC_DROP_PCT = 3.0
"""State of charge the pack must have given up before the energy that took is believed over the configured
usable energy (%): gauges report whole or tenth percents, and a small drop says little."""


def energy_per_pct(drawn_j: float, soc_from: float, soc_to: float) -> float | None:
    """Joules per percent of state of charge, as measured: ``drawn_j`` taken from the pack while its state of
    charge fell from ``soc_from`` to ``soc_to``; None under ``MIN_SOC_DROP_PCT`` or without energy."""
    drop = soc_from - soc_to
    if drop < MIN_SOC_DROP_PCT or drawn_j <= 0:
        return None
    return drawn_j / drop


def remaining_energy_j(soc_pct: float, empty_soc_pct: float, usable_j: float, *,
                       j_per_pct: float | None = None) -> float:
    """Energy left until the empty point (J): from the measured joules per percent of state of charge when
    known (``energy_per_pct``), else the usable energy being what a full pack gives down to the empty point
    (``battery.capacity_wh`` x ``usable_fraction``: the configuration's word, which an aged or a simulated
    pack need not keep)."""
    left = max(0.0, soc_pct - empty_soc_pct)
    if j_per_pct is not None:
        return left * j_per_pct
    span = 100.0 - empty_soc_pct
    return left / span * usable_j if span > 0 else 0.0


class Costs:
    """Running record of what each tier costs per answer, the idle draw, and when questions came."""

    def __init__(self, *, window: int = 20, rate_window_s: float = 3600.0) -> None:
        self.window = window
        self.rate_window_s = rate_window_s
        self._turns: dict[str, deque[tuple[float, float]]] = {}
        self._asked: deque[float] = deque(maxlen=200)
        self._idle: deque[tuple[float, float]] = deque(maxlen=window)

    def add_idle(self, joules: float, seconds: float) -> None:
        """The energy (J) drawn over ``seconds`` between two turns."""
        if joules >= 0 and seconds > 0:
            self._idle.append((joules, seconds))

    def idle_w(self) -> float | None:
        """The draw between turns (W): the median of the last ``window`` gaps' draws, so that a gap in which
        something else ran (a gauge re-probed, a log rotated) does not move it; None before ``MIN_IDLE_S``."""
        if sum(s for _, s in self._idle) < MIN_IDLE_S:
            return None
        return statistics.median(j / s for j, s in self._idle)

    def add_turn(self, tier: str, joules: float, seconds: float, at: float) -> None:
        """One answered turn: its tier, energy (J), length (s) and when it began (s, any clock)."""
        if joules > 0 and seconds > 0:
            self._turns.setdefault(tier, deque(maxlen=self.window)).append((joules, seconds))
        self._asked.append(at)

    def add_entries(self, entries: Iterable[TurnLogEntry], *, asked: bool = True) -> None:
        """Turn-log entries (earlier runs count too): every answered turn with an energy figure. With
        ``asked`` False only what each turn cost is taken, not when it was asked (another run's turns say
        nothing about the rate of questions now)."""
        for e in entries:
            if e.tier is not None and not e.error and not e.cancelled and e.energy_j is not None \
                    and e.energy_s is not None and e.unix:
                if asked:
                    self.add_turn(e.tier, e.energy_j, e.energy_s, e.unix)
                elif e.energy_j > 0 and e.energy_s > 0:
                    self._turns.setdefault(e.tier, deque(maxlen=self.window)).append((e.energy_j, e.energy_s))

    def cost(self, tier: str) -> TierCost | None:
        turns = self._turns.get(tier)
        if not turns:
            return None
        return TierCost(sum(j for j, _ in turns) / len(turns), sum(s for _, s in turns) / len(turns), len(turns))

    def costs(self) -> dict[str, TierCost]:
        return {t: c for t in self._turns if (c := self.cost(t)) is not None}

    def per_hour(self, now: float) -> float | None:
        """Questions an hour over the rate window before ``now`` (same clock as ``add_turn``); None under two."""
        recent = [t for t in self._asked if now - self.rate_window_s <= t <= now]
        if len(recent) < 2:
            return None
        span = max(now - recent[0], 1e-9)
        return len(recent) / span * 3600.0
