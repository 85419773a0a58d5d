"""The drain loop: spoken questions back to back through the real pipeline until the pack reaches its cut-off."""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig
from assistant.drain.corpus import AudioFeed
from assistant.drain.options import DrainOptions, DrainResult, Progress, Status
from assistant.drain.runlog import DrainError, RunFiles, turn_id
from assistant.drain.state import SCHEMA, BatterySampler, RunClock, RunState
from assistant.errors import AssistantError, NoSpeech
from assistant.messages import BatteryReading, TurnLogEntry
from assistant.power.cutoff import is_empty, power_source
from assistant.sim.pack import SimulatedPack
from assistant.jsonl import JsonlLog
from assistant.turnlog import last_turn
from assistant.session import Session
from assistant.speech.speaker import NullSpeaker, Speaker, WavSpeaker

_LOG = logging.getLogger(__name__)

NO_READING_S = 60.0
"""A run whose gauge has not answered for this long stops: it could no longer see the cut-off (s)."""


@dataclass
class Offsets:
    """Where earlier segments of the run left the counters that restart at zero in a new process."""

    t_s: float = 0.0
    """Running time (s)."""
    e_j: float = 0.0
    """Discharge energy integrated by the meter (J)."""
    pack_drawn_j: float = 0.0
    """Simulated pack: energy taken out of it (J)."""
    pack_sim_s: float = 0.0
    """Simulated pack: simulated seconds."""


class DrainLoop:
    """Runs the turns of one segment of a drain run (a fresh start or a resume) and logs everything."""

    def __init__(
        self,
        cfg: AssistantConfig,
        opts: DrainOptions,
        files: RunFiles,
        session: Session,
        feed: AudioFeed,
        state: RunState,
        *,
        run_id: str,
        until_pct: float,
        offsets: Offsets,
        segment: int,
        progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.opts = opts
        self.files = files
        self.session = session
        self.feed = feed
        self.state = state
        self.run_id = run_id
        self.until_pct = until_pct
        self.offsets = offsets
        self.segment = segment
        self.progress = progress
        self.clock = RunClock(offsets.t_s)
        session.started_unix = time.time() - offsets.t_s  # the governor's target counts from the run's start
        self.pack = session.gauge if isinstance(session.gauge, SimulatedPack) else None
        self.empty = session.empty_point
        """Where the run stops (unless ``--until`` says otherwise): where the appliance would power off."""
        self.dialogue = JsonlLog(files.dialogue, "dialogue log")
        """What each turn asked, heard and answered (the turn log keeps counts and timings only)."""
        self.sampler = BatterySampler(JsonlLog(files.battery, "battery log"), state, self._sample, period_s=opts.sample_period_s)
        self._soc_window: deque[tuple[float, float]] = deque(maxlen=40)
        self._speaker: Speaker | None = None

    # -- battery stream ---------------------------------------------------------------------------

    def pack_state(self, reading: BatteryReading | None) -> dict[str, Any] | None:
        """What a resume needs to put the pack back where it was (simulated), or what the gauge read."""
        if self.pack is not None:
            return {"kind": "simulated", "soc_pct": round(self.pack.soc_pct, 5),
                    "drawn_j": round(self.offsets.pack_drawn_j + self.pack.energy_drawn_wh * 3600.0, 3),
                    "sim_time_s": round(self.offsets.pack_sim_s + self.pack.sim_time_s, 3)}
        if reading is None:
            return None
        return {"kind": self.session.gauge.name, "soc_pct": reading.soc_pct, "voltage_v": reading.voltage_v}

    def _sample(self) -> dict[str, Any]:
        reading = self.session.meter.last_reading()
        t_s = round(self.clock.now(), 3)
        e_j = round(self.offsets.e_j + self.session.meter.total_j, 3)
        tier = self.session.tier.name if self.session.tier is not None else None
        pack = self.pack_state(reading)
        self.state.update(t_s=t_s, e_j=e_j, pack=pack, tier=tier)
        record: dict[str, Any] = {
            "schema": SCHEMA, "t_s": t_s, "unix": round(time.time(), 3), "segment": self.segment,
            "soc_pct": None, "voltage_v": None, "current_a": None, "power_w": None, "e_j": e_j, "tier": tier,
            "turns": self.state.get("turns"), "words": self.state.get("words"), "load_1m": _load(),
        }
        if reading is not None:
            record.update(soc_pct=_r(reading.soc_pct, 4), voltage_v=_r(reading.voltage_v, 4),
                          cell_voltage_v=_r(reading.cell_voltage_v, 4), source=power_source(reading),
                          current_a=_r(reading.current_a, 4), power_w=_r(reading.power_w, 4),
                          reading_age_s=_r(self.session.meter.reading_age_s(), 3))
        if self.pack is not None and pack is not None:
            record.update(pack_soc_pct=pack["soc_pct"], pack_drawn_j=pack["drawn_j"], pack_sim_s=pack["sim_time_s"])
        return record

    # -- the cut-off ------------------------------------------------------------------------------

    def cutoff(self, reading: BatteryReading | None) -> str | None:
        """Why the run must stop now, or None to carry on."""
        if reading is None:
            age = self.session.meter.reading_age_s()
            if age is None or age > NO_READING_S:
                return f"the battery gauge {self.session.gauge.name} has not answered for {NO_READING_S:.0f} s"
            return None
        soc = reading.soc_pct
        if soc is not None and soc <= 0.0:
            return f"the gauge reads the pack empty (SoC {soc:.1f} %)"
        if self.opts.until_brownout:
            return None  # on until the power goes: the resume measures where that was
        if self.opts.until_pct is not None:
            if soc is not None and soc <= self.opts.until_pct:
                return f"state of charge {soc:.1f} % reached --until {self.opts.until_pct:g} %"
            return None
        source = power_source(reading)
        if source == "external":
            return None
        empty, evidence = is_empty(reading, self.empty, strict=source == "unknown")
        if empty:
            return f"the pack reached its empty point ({evidence}; {self.empty.source})"
        return None

    # -- turns ------------------------------------------------------------------------------------

    def _speaker_for(self, seq: int) -> Speaker:
        if self.opts.speaker == "files":
            answers = self.files.root / "answers"
            answers.mkdir(exist_ok=True)
            return WavSpeaker(answers / f"{seq:06d}.wav")
        if self._speaker is None:
            if self.opts.speaker == "device":
                from assistant.speech.speaker import SoundDeviceSpeaker

                self._speaker = SoundDeviceSpeaker(device=self.cfg.speaker.device)
            else:
                self._speaker = NullSpeaker()
        return self._speaker

    def one_turn(self, seq: int) -> TurnLogEntry:
        """Ask question ``seq`` by audio; return its record as the turn log holds it."""
        tid = turn_id(self.run_id, seq)
        speaker = self._speaker_for(seq)
        heard = reply = ""
        estimate: str | None = None
        try:
            record = self.session.run_turn(speaker, audio=self.feed.chunks(seq), turn_id=tid, play_out=True)
            heard, reply, estimate = record.transcript, record.reply, record.words_estimate
        except NoSpeech as exc:
            _LOG.warning("turn %s: %s (logged as a failed turn)", tid, exc)
        finally:
            speaker.wait()
            if self.opts.speaker == "files":
                speaker.close()
        entry = last_turn(self.files.turns)
        if entry is None or entry.turn_id != tid:
            raise DrainError(f"turn {tid} did not reach the turn log {self.files.turns}; a drain run without its "
                             "log is worthless, so it stops here (resume it once the disk is writable)")
        self.dialogue.append({"schema": SCHEMA, "turn_id": tid, "seq": seq, "prompt": seq % len(self.feed.corpus),
                              "reference": self.feed.corpus.prompt_for(seq).text, "heard": heard, "reply": reply,
                              "reply_is_stand_in": estimate})
        return entry

    def _report(self, reading: BatteryReading | None) -> None:
        soc = reading.soc_pct if reading is not None else None
        t = self.clock.now()
        eta = None
        if soc is not None:
            self._soc_window.append((t, soc))
            (t0, s0), (t1, s1) = self._soc_window[0], self._soc_window[-1]
            if t1 > t0 and s0 > s1:
                eta = max(0.0, (s1 - self.until_pct) / ((s0 - s1) / (t1 - t0)))
        if self.progress is not None:
            snap = self.state.snapshot()
            self.progress(Progress(turns=snap["turns"], words=snap["words"], soc_pct=soc,
                                   voltage_v=reading.voltage_v if reading is not None else None,
                                   tier=snap["tier"], elapsed_s=t, eta_s=eta, until_pct=self.until_pct))

    def run(self) -> DrainResult:
        """Turns until the cut-off, ``max_turns``, Ctrl-C or an error; the state is saved whatever happens."""
        status: Status = "failed"
        reason = "stopped by an unexpected error"
        self.state.update(status="running", reason="")
        self.sampler.sample_now()
        self.sampler.start()
        try:
            status, reason = self._turns()
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted (Ctrl-C or SIGTERM); resume with --resume"
        except AssistantError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.sampler.stop()
            self.state.update(status=status, reason=reason)
            self.sampler.sample_now()
            if self._speaker is not None:
                self._speaker.close()
            _LOG.info("drain run %s: %s (%s)", self.run_id, status, reason)
        snap = self.state.snapshot()
        last = self.session.meter.last_reading()
        simulated = self.pack is not None or (last is not None and last.simulated)  # never powers off a simulation
        return DrainResult(run_dir=self.files.root, run_id=self.run_id, status=status, reason=reason,
                           turns=snap["turns"], words=snap["words"], simulated=simulated)

    def _turns(self) -> tuple[Status, str]:
        while True:
            seq = int(self.state.get("next_seq"))
            if self.opts.max_turns is not None and seq >= self.opts.max_turns:
                return "stopped", f"--max-turns {self.opts.max_turns} reached"
            reading = self.session.reading()
            why = self.cutoff(reading)
            if why is not None:
                return "finished", why
            tier = self.session.select_tier()
            if tier.kind == "shutdown" and not self.opts.until_brownout:
                soc = reading.soc_pct if reading is not None else None
                return "finished", f"the tier policy chose shutdown (SoC {soc if soc is None else round(soc, 1)} %)"
            entry = self.one_turn(seq)
            self.state.add_turn(entry, seq)
            self.state.update(tier=entry.tier)
            self.sampler.sample_now()  # a sample at every turn's end: the pack's state is never older than a turn
            self._report(self.session.reading())


def _load() -> float | None:
    """The 1-minute load average: other work on the machine slows the turns and shows up here."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def run_root(cfg: AssistantConfig) -> Path:
    """Where runs go when ``--out`` is not given."""
    return cfg.paths.state_dir.expanduser() / "drain"
