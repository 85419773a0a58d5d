"""The working set behind every turn: engines, battery gauge and meter, tier policy and turn log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from assistant.config import AssistantConfig, ensure_dir
from assistant.errors import BatteryReadError, ConfigError, ModelError, ModelNotFound
from assistant.messages import BatteryReading, TurnLogEntry, TurnRecord
from assistant.power.cutoff import EmptyPoint, power_source
from assistant.power.empty_store import empty_point_for
from assistant.power.energy import EnergyMark, EnergyMeter
from assistant.power.fixed_replies import FixedResponder
from assistant.power.gauges import Gauge, open_gauge
from assistant.power.governor import Costs, Outlook, Plan, TierCost, energy_per_pct, plan, remaining_energy_j
from assistant.models.gguf_info import read_gguf_info
from assistant.models.quant_types import quant_of
from assistant.models.tier_ladder import default_ladder, unavailable_tiers
from assistant.power.tiers import Tier, TierConfig, choose_tier, length_instruction
from assistant.speech.asr import Transcriber
from assistant.speech.engines import open_asr, open_responder, open_synthesizer
from assistant.models.gguf_info import check_gguf
from assistant.speech.llm import Memory, Responder
from assistant.speech.pipeline import Pipeline, TurnEvents
from assistant.speech.speaker import Speaker
from assistant.speech.tts import PiperSynthesizer
from assistant.turnlog import TurnLog, last_turn_number, numbered_turn_id, read_turns

_LOG = logging.getLogger(__name__)

TURN_LOG = "turns.jsonl"

STALE_S = 10.0
"""A battery reading older than this is no evidence (s): it is neither shown nor acted on."""


class Session:
    """Loads the engines once, keeps one LLM resident for the current tier and logs every turn.

    The tier is chosen between turns from the latest battery reading; when it changes, the old
    model is closed before the new one is loaded. A tier whose model fails to load is marked
    unavailable (logged) and the policy is asked again, so a bad model file never ends a turn.

    Only a fresh reading (``STALE_S``) is used; a simulated reading decides a tier only in a
    ``simulation`` (``run --sim``, a drain test or soak on the simulated pack): anywhere else it is
    as if there were no gauge, and the appliance runs at the richest tier as on external power.
    """

    def __init__(
        self,
        cfg: AssistantConfig,
        *,
        with_asr: bool = True,
        gauge: Gauge | None = None,
        turn_log: Path | None = None,
        start_meter: bool = True,
        pin_tier: str | None = None,
        simulation: bool = False,
    ) -> None:
        self.cfg = cfg
        self.simulation = simulation
        """Simulated readings may drive the tier (and, in the appliance, the shutdown) policy."""
        self.models_dir = cfg.paths.models_dir.expanduser()
        self.tiers: TierConfig = ladder_for(cfg)
        self.unavailable: set[str] = unavailable_tiers(self.tiers)
        self._bad_files = {name: _file_key(self.tiers.tier(name)) for name in self.unavailable}
        """The model file of each unavailable tier as it was when it failed: a changed file is tried again."""
        self.pinned: Tier | None = None
        """A tier forced for every turn (drain tests per quantization); shutdown still applies."""
        if pin_tier is not None:
            self.pinned = self.tiers.tier(pin_tier)
            names = ", ".join(t.name for t in self.tiers.tiers)
            if self.pinned is None:
                raise ConfigError(f"no tier named '{pin_tier}' (tiers: {names})")
            if pin_tier in self.unavailable:
                raise ModelNotFound(f"tier '{pin_tier}' cannot be pinned: its model {self.pinned.model} is missing "
                                    "or corrupt (see `assistant models build-ladder`)")
        self.gauge: Gauge = gauge or open_gauge(cfg.battery)
        self.usable_energy_j = cfg.battery.usable_wh * 3600.0
        self._empty: tuple[str, EmptyPoint] | None = None
        self.meter = EnergyMeter(self.gauge, usable_energy_j=self.usable_energy_j,
                                 period_s=self.gauge.poll_period_s)
        self.meter.poll()
        if start_meter:
            self.meter.start()
        self.turn_log = TurnLog(turn_log or ensure_dir(cfg.paths.state_dir) / TURN_LOG)
        self._turn_number = last_turn_number(self.turn_log.path)
        self._number_lock = threading.Lock()
        self.started_unix = time.time()
        """When the session began: the governor's ``target_hours`` count from here."""
        self.costs = Costs(rate_window_s=cfg.governor.rate_window_min * 60.0)
        """What each tier has cost per answer, for the governor and the battery outlook."""
        if cfg.governor.active:
            self.costs.add_entries(read_turns(self.turn_log.path).entries)
        self.plan: Plan | None = None
        """The governor's last plan (None without a target)."""
        self._soc_mark: tuple[float, float] | None = None
        """(state of charge %, meter energy J) when the pack was first seen on battery (again after charging):
        what the pack has given per percent since then is what the governor counts on for the rest."""
        self.last_entry: TurnLogEntry | None = None
        """The turn log entry of the last turn (also of a failed one)."""
        self._idle_from: EnergyMark | None = None
        """The meter's mark at the end of the last turn: the gap from it to the next turn is idle draw."""
        self.tier: Tier | None = None
        self.responder: Responder | None = None
        self._conversation: tuple[str, list[tuple[str, str]]] | None = None
        """The conversation memory of the last LLM tier and its model's family (``GgufInfo.family``): carried to
        the next tier of the same model (another quantization), dropped when the model changes."""
        self.transcriber: Transcriber | None = None
        self.synthesizer: PiperSynthesizer | None = None
        try:
            self.transcriber = open_asr(cfg) if with_asr else None
            self.synthesizer = open_synthesizer(cfg)
        except BaseException:
            self.close()
            raise

    # -- battery and tiers ----------------------------------------------------------------------

    @property
    def empty_point(self) -> EmptyPoint:
        """Where the pack counts as empty: the configuration's, this gauge's measured one, or its board's
        (looked up again when the gauge changes, e.g. a HAT found after the start)."""
        name = self.gauge.name
        if self._empty is None or self._empty[0] != name:
            point = empty_point_for(self.cfg.battery, self.gauge.empty_point, gauge=name,
                                    state_dir=self.cfg.paths.state_dir, config_file=self.cfg.source)
            self._empty = (name, point)
        return self._empty[1]

    def reading(self) -> BatteryReading | None:
        """The latest battery reading if it is fresh (``STALE_S``), taken now when the meter has none yet;
        None when the gauge is missing, failing or silent."""
        last = self.meter.last_reading()
        if last is not None:
            age = self.meter.reading_age_s()
            return last if age is not None and age <= STALE_S else None
        try:
            return self.gauge.read()
        except BatteryReadError as exc:
            _LOG.debug("battery reading failed: %s", exc)  # the appliance raises the alarm; the meter logs it
            return None

    def policy_reading(self) -> BatteryReading | None:
        """``reading()``, unless it is simulated outside a simulation: then None (no gauge to act on)."""
        reading = self.reading()
        if reading is not None and reading.simulated and not self.simulation:
            return None
        return reading

    def _recheck(self) -> None:
        """Give an unavailable tier another chance once its model file has changed (reinstalled, built)."""
        for name in list(self.unavailable):
            key = _file_key(self.tiers.tier(name))
            if key is not None and key != self._bad_files.get(name):
                _LOG.info("tier '%s': its model file changed; trying it again", name)
                self.unavailable.discard(name)
                self._bad_files.pop(name, None)

    def select_tier(self) -> Tier:
        """Choose the tier for the next turn and make its responder resident."""
        self._recheck()
        while True:
            reading = self.policy_reading()
            tier = choose_tier(reading, self.tiers, self.tier, empty=self.empty_point, unavailable=self.unavailable)
            if self.pinned is not None and tier.kind != "shutdown":
                tier = self.pinned
            elif tier.kind != "shutdown" and reading is not None and power_source(reading) != "external":
                self.plan = self.governor_plan(reading)
                if self.plan is not None and self.plan.tier is not None:
                    tier = self.tiers.tier(self.plan.tier) or tier
            if tier == self.tier and self.responder is not None:
                return tier
            try:
                self._switch(tier)
                return tier
            except (ModelError, ModelNotFound) as exc:
                named = self.cfg.tiers is None and self.cfg.llm.model is not None
                if tier.kind != "llm" or self.pinned is not None or named:
                    raise  # the one model the user named (or pinned) must work
                _LOG.error("tier '%s' cannot be used and is skipped: %s", tier.name, exc)
                self.unavailable.add(tier.name)
                self._bad_files[tier.name] = _file_key(tier)

    # -- the governor ------------------------------------------------------------------------

    def _time_scale(self) -> float:
        """Simulated seconds per real one (a simulated pack can run its clock faster); 1 on a real gauge."""
        return float(getattr(self.gauge, "time_scale", 1.0))

    def _idle_w(self, reading: BatteryReading) -> float:
        """The draw between turns (W), as measured over the gaps between turns; until enough of them, the
        latest reading (taken as a question arrives, so a busy one: the projection errs short)."""
        measured = self.costs.idle_w()
        if measured is not None:
            return measured
        if reading.power_w is not None and reading.power_w < 0:
            return -reading.power_w
        return 0.0

    def outlooks(self, reading: BatteryReading | None) -> tuple[Plan | None, list[Outlook]]:
        """The governor's plan (None without a target) and, per available tier, how far the pack goes."""
        if reading is None or reading.soc_pct is None:
            return None, []
        gov, scale, now = self.cfg.governor, self._time_scale(), time.time()
        hours_left: float | None = None
        if gov.target_hours is not None:
            hours_left = max(0.0, gov.target_hours - (now - self.started_unix) * scale / 3600.0)
        elif gov.until is not None:
            target = gov.target_unix(self.started_unix)
            hours_left = max(0.0, ((target or now) - now) / 3600.0)
        per_hour = self.costs.per_hour(now)
        costs = {t: TierCost(c.joules * scale, c.seconds * scale, c.answers) for t, c in self.costs.costs().items()}
        ladder = [t.name for t in self.tiers.ladder if t.name not in self.unavailable]
        remaining = remaining_energy_j(reading.soc_pct, self.empty_point.soc_pct or 0.0, self.usable_energy_j,
                                       j_per_pct=self._j_per_pct(reading.soc_pct, power_source(reading), scale))
        p = plan(ladder, costs, remaining_j=remaining,
                 idle_w=self._idle_w(reading), per_hour=None if per_hour is None else per_hour / scale,
                 hours_left=hours_left, current=self.tier.name if self.tier is not None else None,
                 rate_known=per_hour is not None,
                 answering=frozenset(t.name for t in self.tiers.ladder if t.kind == "llm"))
        return (p if gov.active else None), list(p.outlooks)

    def _j_per_pct(self, soc: float, source: str, scale: float) -> float | None:
        """Joules the pack has given per percent of state of charge since it was first seen on battery (the
        meter's energy x the time scale); None until it has given ``governor.MIN_SOC_DROP_PCT``."""
        mark = self._soc_mark
        if mark is None or source == "external" or soc > mark[0] + 1.0:  # new, on the charger, or charged
            self._soc_mark = None if source == "external" else (soc, self.meter.total_j)
            return None
        return energy_per_pct((self.meter.total_j - mark[1]) * scale, mark[0], soc)

    def governor_plan(self, reading: BatteryReading) -> Plan | None:
        """The governor's plan for the next turn; None without a target."""
        return self.outlooks(reading)[0]

    def outlook_words(self) -> str:
        """``About 120 more answers at this tier, 400 at the lowest.`` (and whether the target is met)."""
        reading = self.reading()
        p, looks = self.outlooks(reading)
        known = {o.tier: o for o in looks if o.answers is not None}
        current = known.get(self.tier.name) if self.tier is not None else None
        lowest = next((known[t] for t in reversed([o.tier for o in looks]) if t in known), None)
        if current is None and lowest is None:
            return ""
        parts = []
        if current is not None:
            parts.append(f"about {current.answers} more answers at this tier")
        if lowest is not None and lowest is not current:
            parts.append(f"{lowest.answers} at the lowest")
        text = ", ".join(parts).capitalize() + "."
        if p is not None and p.target_hours_left is not None:
            meets = current.meets_target if current is not None else None
            text += (" That lasts to the target." if meets else " The target will not be met at this tier."
                     if meets is False else "")
        return text

    def _switch(self, tier: Tier) -> None:
        """Make ``tier``'s responder resident. Its model's chat template and tokenizer come with it; the
        conversation memory carries over from the last LLM tier only when that was the same model (another
        quantization of it), through fixed-phrase tiers too; another model starts a new conversation."""
        old = self.tier
        if self.responder is not None:
            memory = getattr(self.responder, "memory", None)
            if isinstance(memory, Memory) and self._conversation is not None:
                self._conversation = (self._conversation[0], list(memory.turns))
            self.responder.close()
            self.responder = None
        if tier.kind == "llm" and tier.model is not None:
            llm = self.cfg.llm
            prompt = llm.system_prompt
            if tier.reply_words:
                prompt = f"{prompt} {length_instruction(tier)}"
            tier_llm = replace(llm, n_ctx=min(tier.n_ctx, llm.n_ctx), max_tokens=min(tier.max_tokens, llm.max_tokens),
                               threads=tier.threads or llm.threads, system_prompt=prompt)
            self.responder = open_responder(replace(self.cfg, llm=tier_llm), tier.model)
            self._carry_memory(tier)
        else:
            self.responder = FixedResponder(battery=self.reading, tier=lambda: self.tier, outlook=self.outlook_words)
        self.tier = tier
        _LOG.info("tier %s -> %s (%s)", old.name if old else "none", tier.name, tier.quant)

    def _carry_memory(self, tier: Tier) -> None:
        """Give the new responder the conversation so far when it is the same model as the last LLM tier."""
        assert tier.model is not None and self.responder is not None
        try:
            family = read_gguf_info(tier.model).family
        except (ModelError, ModelNotFound) as exc:  # it loaded, so this is unlikely; a new conversation is safe
            _LOG.warning("tier '%s': cannot tell which model %s is (%s); its conversation starts afresh",
                         tier.name, tier.model.name, exc)
            family = ""
        before = self._conversation
        self._conversation = (family, [])
        memory = getattr(self.responder, "memory", None)
        if before is None or not before[1] or not isinstance(memory, Memory):
            return
        if family and before[0] == family:
            for question, answer in before[1]:
                memory.add(question, answer)
            _LOG.debug("tier '%s' goes on with the conversation (%d turns)", tier.name, len(memory.turns))
        else:
            _LOG.info("tier '%s' is another model (%s): its conversation starts afresh (%d earlier turns not "
                      "carried over)", tier.name, tier.model.name, len(before[1]))
        self._conversation = (family, list(memory.turns))

    # -- turns --------------------------------------------------------------------------------

    def new_turn_id(self) -> str:
        """The id of the next turn: one above the last number in the turn log (``turnlog.numbered_turn_id``)."""
        with self._number_lock:
            self._turn_number += 1
            return numbered_turn_id(self._turn_number)

    def run_turn(
        self,
        speaker: Speaker,
        *,
        audio: Iterable[bytes] | None = None,
        text: str | None = None,
        cancel: threading.Event | None = None,
        turn_id: str | None = None,
        play_out: bool = False,
        events: TurnEvents | None = None,
    ) -> TurnRecord:
        """One turn on the current tier, its energy measured and its record logged (also on failure).

        With ``play_out`` the turn lasts until the speaker has played the answer (or ``cancel`` is
        set during playback, which marks the turn cancelled): the record then covers what was heard.
        """
        record = TurnRecord(turn_id=turn_id or self.new_turn_id())
        started = time.time()
        before = self.reading()
        start = self.meter.mark()
        if self._idle_from is not None and before is not None and power_source(before) != "external":
            # the gap since the last turn, on battery: what idling costs
            gap = self.meter.between(self._idle_from, start)
            self.costs.add_idle(gap.joules, gap.seconds)
        tier: Tier | None = None
        try:
            tier = self.select_tier()  # inside: a tier that fails to load is a failed turn, logged
            assert self.responder is not None and self.synthesizer is not None
            pipeline = Pipeline(self.transcriber, self.responder, self.synthesizer, speaker,
                                first_clause_words=self.cfg.tts.first_clause_words)
            pipeline.run_turn(audio=audio, text=text, cancel=cancel, record=record, events=events)
            if play_out and not record.cancelled:
                while not speaker.wait(0.05):
                    if cancel is not None and cancel.is_set():
                        record.cancelled = True
                        break
            return record
        except Exception as exc:  # logged whatever failed (an engine may raise its own types), then raised
            record.error = f"{type(exc).__name__}: {exc}"  # with what the turn did until then
            record.cancelled = record.cancelled or (cancel is not None and cancel.is_set())
            raise
        finally:
            self.meter.poll()
            end = self.meter.mark()
            span = self.meter.record_turn(start, end)
            self._idle_from = end
            after = self.reading()
            written = self.turn_log.written
            self.last_entry = self.turn_log.write_turn(record, tier=tier, before=before, after=after, energy=span,
                                                       usable_energy_j=self.usable_energy_j, plan=self.plan)
            if self.turn_log.written > written:
                _LOG.info("[%s] turn record on disk: %s", record.turn_id, self.turn_log.path)
            if tier is not None and not record.error and not record.cancelled:
                self.costs.add_turn(tier.name, span.joules, span.seconds, started)

    def close(self) -> None:
        """Stop the meter and free every engine."""
        self.meter.stop()
        for thing in (self.responder, self.transcriber, self.synthesizer):
            if thing is not None:
                thing.close()
        self.responder = self.transcriber = self.synthesizer = None
        self.gauge.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ladder_for(cfg: AssistantConfig) -> TierConfig:
    """The configured ladder; else one tier on ``llm.model`` when that is set; else the built-in ladder.

    A model named in ``llm.model`` must load: it is checked here, so a wrong path is an error at
    start rather than a silent fall to fixed phrases.
    """
    if cfg.tiers is not None:
        return cfg.tiers
    if cfg.llm.model is None:
        return default_ladder(cfg.paths.models_dir.expanduser())
    check_gguf(cfg.llm.model)
    single = Tier(name="configured", model=cfg.llm.model, quant=quant_of(cfg.llm.model), enter_soc_pct=10.0,
                  n_ctx=cfg.llm.n_ctx, max_tokens=cfg.llm.max_tokens, threads=cfg.llm.threads)
    return TierConfig(tiers=[single, Tier(name="fixed", kind="fixed", enter_soc_pct=5.0),
                             Tier(name="shutdown", kind="shutdown", enter_soc_pct=0.0)])


def _file_key(tier: Tier | None) -> tuple[int, int] | None:
    """(mtime in ns, size) of a tier's model file; None when it has none or it cannot be read."""
    if tier is None or tier.model is None:
        return None
    try:
        st = tier.model.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
