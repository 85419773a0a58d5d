"""The no-LLM tier's fixed phrases."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest

from assistant.messages import BatteryReading
from assistant.power.fixed_replies import FALLBACK, FixedResponder, match_intent, say_time
from assistant.power.tiers import Tier
from assistant.speech.llm import Responder


def battery(soc: float | None, *, charging: bool = False, v: float = 7.1) -> BatteryReading:
    return BatteryReading(t_monotonic=0.0, voltage_v=v, current_a=-0.4, power_w=-2.8, soc_pct=soc,
                          charging=charging, external_power=charging, source="test")


FIXED = Tier(name="fixed", kind="fixed", enter_soc_pct=5)


def responder(reading: BatteryReading | None = None, tier: Tier | None = FIXED,
              now: datetime = datetime(2025, 3, 4, 15, 41, 12)) -> FixedResponder:
    return FixedResponder(battery=lambda: reading, tier=lambda: tier, now=lambda: now)


@pytest.mark.parametrize("text,intent", [
    ("What time is it?", "time"),
    ("what's the time", "time"),
    ("WHAT TIME IS IT", "time"),
    ("tell me the time please", "time"),
    ("is it five o'clock yet", "time"),
    ("how much battery is left", "battery"),
    ("What's the battery level?", "battery"),
    ("batery", "battery"),  # misspelt / misheard
    ("how charged are you", "battery"),
    ("baby percent", "battery"),  # pocketsphinx's rendering of "eighty percent"
    ("which mode are you in", "tier"),
    ("what model are you using", "tier"),
    ("are you in power saving mode", "tier"),
    ("what is the capital of france", None),
    ("tell me a joke", None),
    ("", None),
    ("  ,,, ?! ", None),
])
def test_intents(text: str, intent: str | None) -> None:
    assert match_intent(text) == intent


@pytest.mark.parametrize("when,spoken", [
    (datetime(2025, 1, 1, 15, 41), "It is 3:41 pm."),
    (datetime(2025, 1, 1, 0, 5), "It is 12:05 am."),
    (datetime(2025, 1, 1, 12, 0), "It is 12:00 pm."),
    (datetime(2025, 1, 1, 9, 7), "It is 9:07 am."),
    (datetime(2025, 1, 1, 23, 59), "It is 11:59 pm."),
])
def test_time_phrase(when: datetime, spoken: str) -> None:
    assert say_time(when) == spoken


def test_answers() -> None:
    r = responder(battery(12.4))
    assert "".join(r.respond("what time is it")) == "It is 3:41 pm."
    assert "".join(r.respond("battery level")) == "The battery is at 12 percent."
    assert "".join(r.respond("which mode are you in")).startswith("I am in power saving mode")
    assert "".join(r.respond("what is the capital of france")) == FALLBACK
    assert FALLBACK == "The battery is low, so I can only tell you the time and the battery level."


def test_battery_variants() -> None:
    assert responder(battery(55.6, charging=True)).answer("battery") == "The battery is at 56 percent and charging."
    assert responder(battery(None, v=7.05)).answer("battery") == "The battery reads 7.0 volts."
    assert responder(None).answer("battery") == "I cannot read the battery right now."


def test_tier_variants() -> None:
    llm_tier = Tier(name="q4_k_m", model=Path("m.gguf"), quant="Q4_K_M", enter_soc_pct=40)
    assert responder(tier=llm_tier).answer("what mode") == "I am in the q4_k_m tier, using the Q4_K_M model."
    assert responder(tier=None).answer("what mode") == "I do not know which power mode is active."


def test_it_is_a_responder_with_generation_counts() -> None:
    r: Responder = responder(battery(30))
    pieces = list(r.respond("what time is it"))
    assert pieces == ["It is 3:41 pm."]
    assert r.model_name == "fixed-phrases"
    assert r.last.tokens == 0 and r.last.stop == "eos" and r.last.text == "It is 3:41 pm."
    assert r.last.first_token_s is not None and r.last.first_token_s >= 0
    r.reset()
    r.close()


def test_cancelled_before_start_yields_nothing() -> None:
    r = responder(battery(30))
    cancel = threading.Event()
    cancel.set()
    assert list(r.respond("what time is it", cancel)) == []
    assert r.last.stop == "cancelled"


def test_reads_the_state_at_answer_time() -> None:
    state = {"soc": 40.0}
    r = FixedResponder(battery=lambda: battery(state["soc"]), tier=lambda: FIXED)
    assert r.answer("battery") == "The battery is at 40 percent."
    state["soc"] = 7.0
    assert r.answer("battery") == "The battery is at 7 percent."
