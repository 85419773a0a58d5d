"""The no-LLM tier: a Responder that answers the time, the battery level and the tier with fixed phrases."""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from assistant.messages import BatteryReading
from assistant.power.tiers import Tier
from assistant.speech.llm import Generation
from assistant.speech.words import words

_LOG = logging.getLogger(__name__)

FALLBACK = "The battery is low, so I can only tell you the time and the battery level."

_KEYWORDS: dict[str, tuple[str, ...]] = {
    "battery": ("battery", "batteries", "charge", "charged", "charging", "percent", "percentage", "power", "juice"),
    "time": ("time", "clock", "oclock", "hour", "hours", "minute", "minutes"),
    "tier": ("tier", "tiers", "mode", "model", "quantization", "level", "saving"),
}
"""Intent keywords; the ASR may drop punctuation or mishear a word, so near misses count too."""

_PHRASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "time": (("what", "time"), ("whats", "the", "time"), ("time", "is", "it")),
    "battery": (("how", "much", "battery"), ("battery", "level"), ("battery", "left")),
    "tier": (("which", "mode"), ("what", "mode"), ("which", "model"), ("what", "model"), ("power", "saving")),
}
"""Word combinations that settle an intent outright (all words present, in any order)."""


def _near(word: str, vocabulary: tuple[str, ...]) -> bool:
    if word in vocabulary:
        return True
    return len(word) >= 4 and bool(difflib.get_close_matches(word, vocabulary, n=1, cutoff=0.8))


def match_intent(text: str) -> str | None:
    """``time``, ``battery``, ``tier`` or None, from keywords that tolerate ASR noise."""
    said = words(text)
    if not said:
        return None
    present = set(said)
    for intent, combos in _PHRASES.items():
        if any(set(combo) <= present for combo in combos):
            return intent
    scores = {intent: sum(1 for w in said if _near(w, vocab)) for intent, vocab in _KEYWORDS.items()}
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        return None
    ties = [k for k, v in scores.items() if v == scores[best]]
    for preferred in ("battery", "time", "tier"):  # the battery matters most on this tier
        if preferred in ties:
            return preferred
    return best


def say_time(now: datetime) -> str:
    """``It is 3:41 pm.``"""
    hour = now.hour % 12 or 12
    return f"It is {hour}:{now.minute:02d} {'am' if now.hour < 12 else 'pm'}."


def say_battery(reading: BatteryReading | None) -> str:
    """``The battery is at 12 percent.``, with charging and voltage-only variants."""
    if reading is None:
        return "I cannot read the battery right now."
    if reading.soc_pct is None:
        return f"The battery reads {reading.voltage_v:.1f} volts."
    text = f"The battery is at {round(reading.soc_pct)} percent"
    if reading.charging:
        text += " and charging"
    elif reading.external_power:
        text += " and on external power"
    return text + "."


def say_tier(tier: Tier | None) -> str:
    """Which tier is active, in words."""
    if tier is None:
        return "I do not know which power mode is active."
    if tier.kind == "fixed":
        return "I am in power saving mode without a language model. I can tell you the time and the battery level."
    if tier.kind == "shutdown":
        return "The battery is nearly empty, so I am about to shut down."
    return f"I am in the {tier.name} tier, using the {tier.quant} model."


class FixedResponder:
    """Answers with fixed phrases, for the tier where the battery is too low to run a language model.

    It knows the time, the battery level (``battery()`` gives the latest reading, ``outlook()`` how
    many answers it still holds) and the active tier (``tier()``); anything else gets a short
    explanation. Implements the Responder protocol.
    """

    model_name = "fixed-phrases"

    def __init__(
        self,
        *,
        battery: Callable[[], BatteryReading | None],
        tier: Callable[[], Tier | None],
        now: Callable[[], datetime] = datetime.now,
        outlook: Callable[[], str] = lambda: "",
    ) -> None:
        self.battery = battery
        self.tier = tier
        self.outlook = outlook
        self.now = now
        self.last = Generation()

    def answer(self, question: str) -> str:
        """The phrase for ``question``."""
        intent = match_intent(question)
        _LOG.debug("fixed reply: intent %s for %r", intent, question)
        if intent == "time":
            return say_time(self.now())
        if intent == "battery":
            return " ".join(part for part in (say_battery(self.battery()), self.outlook()) if part)
        if intent == "tier":
            return say_tier(self.tier())
        return FALLBACK

    def respond(self, question: str, cancel: threading.Event | None = None) -> Iterator[str]:
        t0 = time.perf_counter()
        gen = Generation(stop="eos")
        self.last = gen
        if cancel is not None and cancel.is_set():
            gen.stop = "cancelled"
            return
        text = self.answer(question)
        gen.text = text
        gen.first_token_s = gen.gen_s = time.perf_counter() - t0
        yield text

    def reset(self) -> None:
        """Nothing to forget: fixed phrases keep no conversation."""

    def close(self) -> None:
        """Nothing to free."""
