"""The working set behind every turn: engines, battery gauge and meter, tier policy and turn log."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig, ensure_dir
from assistant.errors import BatteryReadError, ConfigError, ModelError, ModelNotFound
from assistant.messages import BatteryReading, TurnRecord
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


class Session:
    """Loads the engines once, keeps one LLM resident for the current tier and logs every turn.

    The tier is chosen between turns from the latest battery reading; when it changes, the old
    model is closed before the new one is loaded. A tier whose model fails to load is marked
    unavailable (logged) and the policy is asked again, so a bad model file never ends a turn.
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
    ) -> None:
        self.cfg = cfg
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
        self.simulated = self.gauge.name.startswith("simulated")
        """The gauge is the simulated pack: energy figures come from its power model."""
        self.meter = EnergyMeter(self.gauge, usable_energy_j=self.usable_energy_j)
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

    def reading(self) -> BatteryReading | None:
        """The latest battery reading (the meter's, or a fresh one); None when the gauge fails."""
        last = self.meter.last_reading()
        if last is not None:
            return last
        try:
            return self.gauge.read()
        except BatteryReadError as exc:
            _LOG.warning("battery reading failed: %s", exc)
            return None

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
            tier = choose_tier(self.reading(), self.tiers, self.tier, unavailable=self.unavailable)
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
            tier_llm = replace(llm, n_ctx=tier.n_ctx, max_tokens=tier.max_tokens,
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
        tier = self.select_tier()
        assert self.responder is not None and self.synthesizer is not None
        before = self.reading()
        start = self.meter.mark()
        pipeline = Pipeline(self.transcriber, self.responder, self.synthesizer, speaker,
                            first_clause_words=self.cfg.tts.first_clause_words)
        record: TurnRecord | None = None
        try:
            record = pipeline.run_turn(audio=audio, text=text, cancel=cancel, turn_id=turn_id)
            if play_out and not record.cancelled:
                while not speaker.wait(0.05):
                    if cancel is not None and cancel.is_set():
                        record.cancelled = True
                        break
            return record
        except Exception as exc:  # logged whatever failed (an engine may raise its own types), then raised
            record = TurnRecord(turn_id=turn_id or "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if record is not None:
                self.meter.poll()
                span = self.meter.record_turn(start, self.meter.mark())
                if self.simulated:  # a power model, not a measurement: never call it measured
                    span = replace(span, measured=False)
                after = self.reading()
                written = self.turn_log.written
                entry = self.turn_log.write_turn(record, tier=tier, before=before, after=after, energy=span,
                                                 usable_energy_j=self.usable_energy_j)
                if self.turn_log.written > written:
                    _LOG.info("[%s] turn record on disk: %s", record.turn_id, self.turn_log.path)
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
                             Tier(name="shutdown", kind="shutdown", enter_soc_pct=0.0)], shutdown_soc_pct=5.0)


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

