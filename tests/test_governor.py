"""The governor's planning, pure: a table of cases, and the arithmetic behind each outlook."""

from __future__ import annotations

import time

import pytest

from assistant.messages import TurnLogEntry
from assistant.power.governor import UP_ANSWERS, Costs, TierCost, average_power_w, outlook, plan, remaining_energy_j

LADDER = ["q8_0", "q4_k_m", "q2_k", "fixed"]
COSTS = {  # J and seconds per answer, as a Pi 5 on a 1B model might give (Q8 costs twice Q2)
    "q8_0": TierCost(40.0, 8.0, 10), "q4_k_m": TierCost(26.0, 5.5, 10), "q2_k": TierCost(20.0, 4.5, 10),
    "fixed": TierCost(4.0, 1.5, 10),
}
PACK_J = 60_000.0  # a 2x 18650 pack, usable


# (remaining J, idle W, questions per hour, hours to the target, known tiers, expected tier)
# A tier lasts when the pack holds what the time left needs on it: the idle draw (+2 %) and, for every
# question the rate brings, what its answer costs over idling (+15 %). At 240 questions an hour q4_k_m lasts
# a 60 kJ pack 4.4 h, q2_k 4.68 h, fixed phrases 5.45 h. The richest tier answers this question when, after
# this answer on it, the pack still holds what the rest of the time needs on the tier that lasts.
CASES = [
    (PACK_J, 3.0, 240.0, None, LADDER, None),  # no target: the threshold ladder decides
    (PACK_J, 3.0, 240.0, 4.0, [], None),  # nothing measured yet
    (PACK_J, 3.0, 240.0, 3.5, LADDER, "q8_0"),  # plenty: the richest lasts on its own
    (PACK_J, 3.0, 240.0, 4.0, LADDER, "q8_0"),  # q4_k_m lasts, and has enough to spare for this answer on q8_0
    (PACK_J, 3.0, 240.0, 4.0, ["q8_0"], "q4_k_m"),  # ... q4_k_m not measured yet: used, to be measured
    (PACK_J, 3.0, 240.0, 5.0, LADDER, "q8_0"),  # only fixed phrases last; what they spare answers on q8_0
    (PACK_J, 3.0, 240.0, 6.0, LADDER, "fixed"),  # nothing reaches it: the leanest
    (PACK_J / 10, 3.0, 240.0, 0.35, LADDER, "q8_0"),  # an emptier pack, a nearer target
    (PACK_J, 3.0, None, 3.2, LADDER, "q8_0"),  # back to back (a drain)
    (PACK_J, 3.0, 30.0, 5.0, LADDER, "q8_0"),  # 30 questions an hour: idle draw dominates, every tier lasts
    # a nearly empty pack, a question every 15 s: one answer is a share of what is left
    (1000.0, 3.0, 240.0, 0.0730, LADDER, "q4_k_m"),  # q4_k_m lasts, with nothing to spare for q8_0
    (1000.0, 3.0, 240.0, 0.0750, LADDER, "q8_0"),  # q2_k lasts, and spares enough for q8_0
    (1000.0, 3.0, 240.0, 0.0775, LADDER, "q4_k_m"),  # ... for q4_k_m, not q8_0
    # q2_k lasts 280.4 s: 858.2 J idle + 18.7 answers x 6.5 J x 1.15 = 997.9 J; this answer on q4_k_m
    # (56.8 J over its 15 s) and the rest on q2_k (944.5 J) take 1001.4 J: more than the 1000 J left
    (1000.0, 3.0, 240.0, 0.0779, LADDER, "q2_k"),
]


@pytest.mark.parametrize("remaining,idle,per_hour,hours_left,known,expected", CASES)
def test_plan_table(remaining: float, idle: float, per_hour: float | None, hours_left: float | None,
                    known: list[str], expected: str | None) -> None:
    costs = {t: COSTS[t] for t in known}
    p = plan(LADDER, costs, remaining_j=remaining, idle_w=idle, per_hour=per_hour, hours_left=hours_left)
    assert p.tier == expected, p.reason


def test_outlook_arithmetic() -> None:
    # 30 answers an hour of 8 s and 40 J each, 3 W between them: 3 + 30/3600 x (40 - 24) = 3.133 W
    assert average_power_w(COSTS["q8_0"], 3.0, 30.0) == pytest.approx(3.0 + 30 / 3600 * 16)
    assert average_power_w(COSTS["q8_0"], 3.0, None) == pytest.approx(5.0)  # back to back: 40 J / 8 s
    look = outlook("q8_0", COSTS["q8_0"], remaining_j=PACK_J, idle_w=3.0, per_hour=30.0, hours_left=5.0)
    assert look.hours == pytest.approx(PACK_J / (3.0 + 30 / 3600 * 16) / 3600)
    assert look.answers == int(look.hours * 30) and look.meets_target is True
    assert outlook("q8_0", COSTS["q8_0"], remaining_j=PACK_J, idle_w=3.0, per_hour=None, hours_left=None).answers == 1500
    assert outlook("x", TierCost(40.0, 8.0, 2), remaining_j=PACK_J, idle_w=3.0, per_hour=None,
                   hours_left=1.0).hours is None  # two answers are not enough to believe


def test_remaining_energy_to_the_empty_point() -> None:
    assert remaining_energy_j(100.0, 5.0, 60_000.0) == pytest.approx(60_000.0)
    assert remaining_energy_j(52.5, 5.0, 60_000.0) == pytest.approx(30_000.0)
    assert remaining_energy_j(4.0, 5.0, 60_000.0) == 0.0


def test_costs_from_the_turn_log() -> None:
    costs = Costs(window=3)
    entries = [{"tier": "q8_0", "energy_j": j, "energy_s": 8.0, "unix": 1000.0 + 60 * i}
               for i, j in enumerate((30.0, 40.0, 50.0, 60.0))]
    entries += [{"tier": "q8_0", "energy_j": 999.0, "energy_s": 8.0, "unix": 1300.0, "error": "boom"},
                {"tier": "q2_k", "energy_j": 10.0, "energy_s": 4.0, "unix": 1360.0, "cancelled": True},
                {"tier": "q2_k", "energy_j": None, "energy_s": 4.0, "unix": 1400.0}]
    costs.add_entries(TurnLogEntry.from_json({"schema": 1, "turn_id": f"t{i}", **e}) for i, e in enumerate(entries))
    c = costs.cost("q8_0")
    assert c is not None and c.joules == pytest.approx(50.0) and c.answers == 3  # the last three only
    assert costs.cost("q2_k") is None  # failed, cancelled or unmeasured turns teach nothing
    assert costs.per_hour(1180.0) == pytest.approx(4 / 180 * 3600)  # four questions in three minutes
    assert Costs().per_hour(0.0) is None


def test_the_session_follows_the_governor_and_logs_its_plan(tmp_path, ladder_files) -> None:  # type: ignore[no-untyped-def]
    """At 60 % the threshold ladder would answer on q4_1. With a target that only fixed phrases reach, what
    they spare pays for answers on q8_0; with a nearer one q2_k lasts and spares enough too; the turn log
    keeps the plan."""
    from dataclasses import replace

    from assistant.sim.pack import SimulatedPack
    from assistant.power.governor import GovernorConfig
    from assistant.turnlog import read_turns
    from assistant.session import Session
    from assistant.speech.speaker import NullSpeaker
    from test_session import config

    base = config(tmp_path, ladder_files)
    cfg = replace(base, governor=GovernorConfig(target_hours=2.0), battery=replace(base.battery, capacity_wh=1.0))
    pack = SimulatedPack(capacity_wh=1.0, start_soc_pct=60.0, power_profile=lambda t: 0.0, cpu_time_fn=lambda: 0.0)
    with Session(cfg, with_asr=False, gauge=pack, start_meter=False, simulation=True) as s:
        assert s.select_tier().name == "q4_1"  # nothing measured: the threshold ladder
        for name, joules in (("q8_0", 3.0), ("q4_1", 2.5), ("q2_k", 0.4)):
            for i in range(3):
                s.costs.add_turn(name, joules, 1.0, at=time.time())
        # 1 Wh x 0.85 usable, 55 of 95 %-points left: 1740 J; back to back q2_k draws 0.4 W: 1.2 h ... too
        # short for 2 h, but the leanest LLM tier beats the others and the fixed tier is not measured
        assert s.select_tier().name == "fixed"  # unknown cost below every tier short of the target: measured
        for i in range(3):
            s.costs.add_turn("fixed", 0.1, 1.0, at=time.time())
        # fixed phrases last (back to back, no idle draw: 7200 answers x 0.1 J x 1.15 = 828 J of the 1740 J);
        # one answer on q8_0 (3 J x 1.15) and the rest on them fit
        assert s.select_tier().name == "q8_0" and s.plan is not None and "rest on fixed" in s.plan.reason
        s.costs = type(s.costs)()
        for name, joules in (("q8_0", 3.0), ("q4_1", 2.5), ("q2_k", 0.4), ("fixed", 0.1)):
            for i in range(3):
                s.costs.add_turn(name, joules, 1.0, at=time.time())
        s.cfg = replace(s.cfg, governor=GovernorConfig(target_hours=1.0))
        # q2_k lasts 1 h (3600 answers x 0.4 J x 1.15 = 1656 J), q4_1 does not (10,350 J); this answer on q8_0
        # (3.45 J) and the rest on q2_k fit in the 1740 J left
        assert s.select_tier().name == "q8_0" and s.plan is not None and "rest on q2_k" in s.plan.reason
        s.run_turn(NullSpeaker(), text="Hello.", turn_id="gov")
        (entry,) = read_turns(s.turn_log.path).entries
    assert entry.tier == "q8_0" and entry.governor is not None and entry.governor.tier == "q8_0"
    assert entry.governor.hours["q2_k"] == pytest.approx(1740.0 / 0.4 / 3600, rel=0.05)


def test_the_spoken_battery_answer_says_how_many_answers_are_left() -> None:
    from assistant.messages import BatteryReading
    from assistant.power.fixed_replies import FixedResponder

    reading = BatteryReading(0.0, 7.6, -0.5, -3.8, 42.0, False, False, "test")
    responder = FixedResponder(battery=lambda: reading, tier=lambda: None,
                               outlook=lambda: "About 120 more answers at this tier, 400 at the lowest.")
    assert responder.answer("how much battery is left") == (
        "The battery is at 42 percent. About 120 more answers at this tier, 400 at the lowest.")


# (J drawn, SoC from, SoC to, expected J per %): a drop under 3 %-points says too little to count on
PER_PCT = [
    (3600.0, 100.0, 90.0, 360.0),
    (3600.0, 60.0, 50.0, 360.0),
    (500.0, 100.0, 97.5, None),
    (0.0, 100.0, 90.0, None),
    (1000.0, 90.0, 92.0, None),  # charged meanwhile
]


@pytest.mark.parametrize("drawn,soc_from,soc_to,expected", PER_PCT)
def test_energy_per_percent_as_measured(drawn: float, soc_from: float, soc_to: float, expected: float | None) -> None:
    from assistant.power.governor import energy_per_pct

    got = energy_per_pct(drawn, soc_from, soc_to)
    assert got == (None if expected is None else pytest.approx(expected))


def test_remaining_energy_counts_on_the_measured_energy_per_percent() -> None:
    # the configuration says 60 kJ from full to 5 %; the pack has given 700 J per percent: 47.5 x 700 J left
    assert remaining_energy_j(52.5, 5.0, 60_000.0, j_per_pct=700.0) == pytest.approx(33_250.0)
    assert remaining_energy_j(52.5, 5.0, 60_000.0, j_per_pct=None) == pytest.approx(30_000.0)
    assert remaining_energy_j(3.0, 5.0, 60_000.0, j_per_pct=700.0) == 0.0


def test_the_session_measures_what_a_percent_of_the_pack_holds(tmp_path, ladder_files) -> None:  # type: ignore[no-untyped-def]
    """A 1 Wh simulated pack gives 36 J per percent (its state of charge counts the nominal energy), where the
    configuration's usable fraction would say 34: once the pack has given 3 %, the governor counts on 36."""
    from dataclasses import replace

    from assistant.sim.pack import SimulatedPack
    from assistant.session import Session
    from test_session import TickingClock, config

    clock = TickingClock(1.0)
    base = config(tmp_path, ladder_files)
    cfg = replace(base, battery=replace(base.battery, capacity_wh=1.0))
    pack = SimulatedPack(capacity_wh=1.0, start_soc_pct=80.0, power_profile=lambda t: 9.0, clock=clock,
                         cpu_time_fn=lambda: 0.0)
    with Session(cfg, with_asr=False, gauge=pack, start_meter=False, simulation=True) as s:
        s.meter.clock = clock
        s.meter.poll()
        first = s.reading()
        assert first is not None and first.soc_pct is not None
        assert s._j_per_pct(first.soc_pct, "battery", 1.0) is None  # the mark
        while (r := s.reading()) is not None and r.soc_pct is not None and r.soc_pct > first.soc_pct - 5.0:
            s.meter.poll()
        assert r is not None and r.soc_pct is not None
        measured = s._j_per_pct(r.soc_pct, "battery", 1.0)
        assert measured == pytest.approx(36.0, rel=0.03)
        assert s._j_per_pct(r.soc_pct, "external", 1.0) is None and s._soc_mark is None  # on the charger: no mark


# (hours to the target, the tier in use, expected) on a nearly empty pack (1000 J), a question every 15 s:
# spending on a tier richer than the one in use needs the pack to pay for five answers on it, not one.
HYSTERESIS = [
    (0.0750, None, "q8_0"),  # no tier in use yet: one answer's worth will do
    (0.0735, "q2_k", "q8_0"),  # enough for five on q8_0
    (0.0750, "q2_k", "q4_k_m"),  # five on q8_0 do not fit, five on q4_k_m do
    (0.0760, "q2_k", "q4_k_m"),
    (0.0760, None, "q8_0"),
    (0.0770, "q2_k", "q2_k"),  # not even five on q4_k_m: it stays
    (0.0770, "q4_k_m", "q4_k_m"),  # staying on q4_k_m needs one answer's worth; q8_0 would need five
    (0.0770, "q8_0", "q8_0"),  # ... and staying on q8_0 too
]


@pytest.mark.parametrize("hours_left,current,expected", HYSTERESIS)
def test_moving_up_needs_a_run_of_answers_worth(hours_left: float, current: str | None, expected: str) -> None:
    p = plan(LADDER, COSTS, remaining_j=1000.0, idle_w=3.0, per_hour=240.0, hours_left=hours_left, current=current)
    assert p.tier == expected, (p.reason, [(o.tier, o.hours) for o in p.outlooks])


def test_costs_from_another_run_say_nothing_about_the_rate_of_questions() -> None:
    entries = [TurnLogEntry.from_json({"schema": 1, "time": "", "unix": 1000.0 + 60 * i, "turn_id": f"t{i}",
                                       "tier": "q8_0", "kind": "llm", "energy_j": 40.0, "energy_s": 8.0})
               for i in range(4)]
    seeded = Costs()
    seeded.add_entries(entries, asked=False)
    assert seeded.cost("q8_0") == TierCost(40.0, 8.0, 4) and seeded.per_hour(1200.0) is None
    both = Costs()
    both.add_entries(entries)
    assert both.cost("q8_0") == TierCost(40.0, 8.0, 4) and both.per_hour(1200.0) == pytest.approx(4 / 200 * 3600)


def test_known_costs_but_no_rate_of_questions_yet_leave_it_to_the_threshold_ladder() -> None:
    """At the start of a day the costs come from earlier days' turn log but no question has come yet:
    projected back to back, every tier would fall short and fixed phrases would answer the first question."""
    p = plan(LADDER, COSTS, remaining_j=PACK_J, idle_w=3.0, per_hour=None, hours_left=8.0, rate_known=False)
    assert p.tier is None and "how often" in p.reason and p.outlooks[0].hours is not None
    assert plan(LADDER, COSTS, remaining_j=PACK_J, idle_w=3.0, per_hour=None, hours_left=8.0).tier == "fixed"


def test_leaving_fixed_phrases_for_an_answering_tier_needs_one_answers_worth() -> None:
    """On fixed phrases, an LLM tier the pack can pay one answer for is taken at once: otherwise the run of
    answers a move up needs keeps the appliance answering with fixed phrases while it could answer."""
    llm = frozenset({"q8_0", "q4_k_m", "q2_k"})
    # 5.444 h away only fixed phrases last (5.45 h): what they spare pays for one answer on q8_0, not for five
    # answers on any answering tier
    p = plan(LADDER, COSTS, remaining_j=PACK_J, idle_w=3.0, per_hour=240.0, hours_left=5.444, current="fixed",
             answering=llm)
    assert p.tier == "q8_0", p.reason
    assert plan(LADDER, COSTS, remaining_j=PACK_J, idle_w=3.0, per_hour=240.0, hours_left=5.444,
                current="fixed").tier == "fixed"  # without knowing which tiers answer: five answers' worth


def test_a_day_on_the_plan_spends_the_slack_and_reaches_the_target() -> None:
    """A question every 15 s for 4.3 h on the costs above, each answer re-planned: q4_k_m lasts and q8_0 does
    not. What q4_k_m spares goes to q8_0 answers, the first ones first; the headroom, a share of what is
    still to come, is spent as the target nears, in runs of answers rather than one at a time; the pack
    reaches the target with nearly nothing left."""
    import itertools

    hours, gap, idle = 4.3, 15.0, 3.0
    energy, t, current, used = PACK_J, 0.0, None, []
    while t < hours * 3600.0:
        p = plan(LADDER, COSTS, remaining_j=energy, idle_w=idle, per_hour=3600.0 / gap,
                 hours_left=hours - t / 3600.0, current=current)
        assert p.tier is not None
        cost = COSTS[p.tier]
        energy -= cost.joules + idle * (gap - cost.seconds)
        t += gap
        current = p.tier
        used.append(p.tier)
    assert 0 < energy < 0.01 * PACK_J  # the target is reached, and the pack was not hoarded
    # 1032 questions; the idle draw (46,440 J) and 1032 answers on q4_k_m (9.5 J each over idling: 9,804 J)
    # leave 3,756 J of the pack: 577 answers on q8_0 (6.5 J more each)
    assert len(used) == 1032 and set(used) == {"q8_0", "q4_k_m"}
    assert used.count("q8_0") == pytest.approx(577, abs=10)
    runs = [(tier, len(list(group))) for tier, group in itertools.groupby(used)]
    assert runs[0][0] == "q8_0" and runs[0][1] > 250  # the first answers are the richest
    assert all(n >= UP_ANSWERS for tier, n in runs[1:-1] if tier == "q8_0")  # back up: a run of answers


def test_the_idle_draw_is_measured_between_turns_not_read_as_a_question_arrives(tmp_path, ladder_files) -> None:  # type: ignore[no-untyped-def]
    """The reading the governor gets as a question arrives finds the appliance busy: taken for the draw
    between answers, it made every projection short (10 W for what idles at 2). The session measures the
    gaps between turns instead, and counts on that once it has enough of them."""
    from dataclasses import replace

    from assistant.sim.pack import SimulatedPack
    from assistant.session import Session
    from assistant.speech.speaker import NullSpeaker
    from test_session import TickingClock, config

    clock = TickingClock(0.5)
    board_w = {"now": 2.0}
    base = config(tmp_path, ladder_files)
    cfg = replace(base, battery=replace(base.battery, capacity_wh=10.0))
    pack = SimulatedPack(capacity_wh=10.0, start_soc_pct=90.0, power_profile=lambda t: board_w["now"], clock=clock,
                         cpu_time_fn=lambda: 0.0)
    with Session(cfg, with_asr=False, gauge=pack, start_meter=False, simulation=True) as s:
        s.meter.clock = clock
        s.run_turn(NullSpeaker(), text="Hello.", turn_id="a")
        for _ in range(200):  # 100 s between the turns, idling at 2 W (2.2 W from the pack through the boost)
            s.meter.poll()
        assert s.costs.idle_w() is None  # no gap measured yet
        board_w["now"] = 10.0  # the question arrives: busy
        s.meter.poll()
        busy = s.reading()
        assert busy is not None and busy.power_w is not None and busy.power_w < -10.0
        s.run_turn(NullSpeaker(), text="Hello again.", turn_id="b")
        idle = s.costs.idle_w()  # the gap ends with the few busy seconds before the turn's first mark
        assert idle == pytest.approx(2.0 / pack.boost_efficiency, rel=0.1)
        assert s._idle_w(busy) == idle


def test_the_battery_command_counts_on_the_idle_draw_the_appliance_measured(tmp_path, ladder_files) -> None:  # type: ignore[no-untyped-def]
    """`assistant battery` reads the gauge once, perhaps while the appliance answers: the draw between answers
    it projects with is the one the appliance last measured (kept in the turn log's plan), not that reading."""
    import json

    from assistant.commands.power import _outlook
    from assistant.messages import BatteryReading
    from assistant.session import TURN_LOG
    from test_session import config

    cfg = config(tmp_path, ladder_files)
    log = cfg.paths.state_dir / TURN_LOG
    log.parent.mkdir(parents=True)
    lines = [{"schema": 1, "time": "", "unix": time.time() - 600 + 60 * i, "turn_id": f"t{i}", "tier": "q2_k",
              "kind": "llm", "energy_j": 40.0, "energy_s": 8.0,
              "governor": {"tier": "q2_k", "reason": "", "target_hours_left": 2.0, "hours": {}, "idle_w": 2.0}}
             for i in range(4)]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    busy = BatteryReading(0.0, 7.6, -1.3, -10.0, 60.0, False, False, "test")
    got = {o.tier: o for o in _outlook(cfg, cfg.tiers, set(), busy, 10.0).outlooks}["q2_k"]
    cost = TierCost(40.0, 8.0, 4)
    remaining = remaining_energy_j(60.0, 10.0, cfg.battery.usable_wh * 3600.0)
    per_hour = Costs()
    per_hour.add_entries(TurnLogEntry.from_json(line) for line in lines)
    expected = outlook("q2_k", cost, remaining_j=remaining, idle_w=2.0, per_hour=per_hour.per_hour(time.time()),
                       hours_left=None)
    assert got.hours == pytest.approx(expected.hours, rel=0.02)
    at_10_w = outlook("q2_k", cost, remaining_j=remaining, idle_w=10.0, per_hour=per_hour.per_hour(time.time()),
                      hours_left=None)
    assert at_10_w.hours is not None and got.hours is not None and got.hours > 2 * at_10_w.hours


def test_one_busy_gap_does_not_move_the_idle_draw() -> None:
    costs = Costs()
    assert costs.idle_w() is None
    costs.add_idle(6.0, 2.0)  # too short a time to believe
    assert costs.idle_w() is None
    for joules in (93.0, 95.0, 94.0, 94.5):
        costs.add_idle(joules, 30.0)  # 3.1 to 3.17 W
    costs.add_idle(300.0, 30.0)  # something else ran: 10 W
    assert costs.idle_w() == pytest.approx(3.13, abs=0.05)
