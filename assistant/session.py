"""The working set behind every turn: engines, battery gauge and meter, tier policy and turn log."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig, ensure_dir
from assistant.errors import BatteryReadError, ConfigError, ModelError, ModelNotFound
from assistant.messages import BatteryReading, TurnRecord
from assistant.power.cutoff import EmptyPoint
from assistant.power.empty_store import empty_point_for
from assistant.power.energy import EnergyMeter
from assistant.power.fixed_replies import FixedResponder
from assistant.power.gauges import Gauge, open_gauge
from assistant.power.tiers import Tier, TierConfig, choose_tier, default_ladder, length_instruction, unavailable_tiers
from assistant.power.turnlog import TurnLog
from assistant.speech.asr import Transcriber
from assistant.speech.engines import open_asr, open_responder, open_synthesizer
from assistant.speech.llm import Responder, check_gguf
from assistant.speech.pipeline import Pipeline
from assistant.speech.speaker import Speaker
from assistant.speech.tts import PiperSynthesizer

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
        self.tier: Tier | None = None
        self.responder: Responder | None = None
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
            tier = choose_tier(self.policy_reading(), self.tiers, self.tier, empty=self.empty_point,
                               unavailable=self.unavailable)
            if self.pinned is not None and tier.kind != "shutdown":
                tier = self.pinned
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

    def _switch(self, tier: Tier) -> None:
        old = self.tier
        if self.responder is not None:
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
        else:
            self.responder = FixedResponder(battery=self.reading, tier=lambda: self.tier)
        self.tier = tier
        _LOG.info("tier %s -> %s (%s)", old.name if old else "none", tier.name, tier.quant)

    # -- turns --------------------------------------------------------------------------------

    def run_turn(
        self,
        speaker: Speaker,
        *,
        audio: Iterable[bytes] | None = None,
        text: str | None = None,
        cancel: threading.Event | None = None,
        turn_id: str | None = None,
        play_out: bool = False,
    ) -> TurnRecord:
        """One turn on the current tier, its energy measured and its record logged (also on failure).

        With ``play_out`` the turn lasts until the speaker has played the answer (or ``cancel`` is
        set during playback, which marks the turn cancelled): the record then covers what was heard.
        """
        record = TurnRecord(turn_id=turn_id or uuid.uuid4().hex[:12])
        before = self.reading()
        start = self.meter.mark()
        tier: Tier | None = None
        try:
            tier = self.select_tier()  # inside: a tier that fails to load is a failed turn, logged
            assert self.responder is not None and self.synthesizer is not None
            pipeline = Pipeline(self.transcriber, self.responder, self.synthesizer, speaker,
                                first_clause_words=self.cfg.tts.first_clause_words)
            pipeline.run_turn(audio=audio, text=text, cancel=cancel, record=record)
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
            span = self.meter.record_turn(start, self.meter.mark())
            after = self.reading()
            entry = self.turn_log.write_turn(record, tier=tier, before=before, after=after, energy=span,
                                             usable_energy_j=self.usable_energy_j)
            record.extra.update(_extra(entry))

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
    single = Tier(name="configured", model=cfg.llm.model, quant=_quant_of(cfg.llm.model), enter_soc_pct=10.0,
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


def _quant_of(path: Path) -> str:
    stem = path.name.upper()
    for q in ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1", "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1",
              "Q3_K_M", "Q3_K_S", "Q2_K", "TQ1_0", "TQ2_0", "F16", "BF16"):
        if q in stem:
            return q
    return "unknown"


def _extra(entry: dict[str, Any]) -> dict[str, Any]:
    battery = entry.get("battery_before") or {}
    return {
        "tier": entry.get("tier"),
        "quant": entry.get("quant"),
        "battery_pct": battery.get("soc_pct"),
        "battery_source": battery.get("source"),
        "energy_j": entry.get("energy_j"),
        "energy_measured": entry.get("energy_measured"),
        "tpj": entry.get("tpj"),
        "wbl": entry.get("wbl"),
    }

