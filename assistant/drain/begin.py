"""Start a drain run or resume one: the corpus, the pack, the session, meta.json and where earlier segments left off."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig
from assistant.drain.brownout import HALT_MARGIN_S, boot_id, measured_empty_point
from assistant.drain.corpus import AudioFeed, Corpus, load_corpus
from assistant.drain.facts import HASH_CACHE, HashCache, effective_config, machine_facts, model_hashes
from assistant.drain.options import DrainOptions, DrainResult, Progress
from assistant.drain.run import DrainLoop, Offsets, run_root
from assistant.drain.runlog import DrainError, RunFiles, TurnScan, read_json, read_samples, scan_turns
from assistant.drain.state import RunState, new_state, now_iso
from assistant.atomic import write_json_atomic
from assistant.errors import AssistantError, ConfigError
from assistant.messages import TurnLogEntry
from assistant.power.empty_store import save_measured
from assistant.power.governor import GovernorConfig
from assistant.power.gauges import Gauge, open_gauge
from assistant.sim.pack import SimulatedPack
from assistant.session import Session, ladder_for
from assistant.speech.engines import open_synthesizer, voice_path

_LOG = logging.getLogger(__name__)

ACTIVE = "active"
"""File under STATE_DIR/drain naming the run in progress, so a service restart can resume it."""


def active_run(cfg: AssistantConfig) -> Path | None:
    """The run directory of a drain run that was in progress (crash, power cut, Ctrl-C), if any."""
    marker = run_root(cfg) / ACTIVE
    try:
        text = marker.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Path(text) if text else None


def _set_active(cfg: AssistantConfig, run_dir: Path | None) -> None:
    marker = run_root(cfg) / ACTIVE
    try:
        if run_dir is None:
            marker.unlink(missing_ok=True)
        else:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(run_dir.resolve()) + "\n", encoding="utf-8")
    except OSError as exc:
        _LOG.warning("cannot update %s: %s", marker, exc)


def _ladder_cfg(cfg: AssistantConfig, opts: DrainOptions) -> AssistantConfig:
    """The config with the speed twin's ladder as its tiers when the run is on the twin."""
    if not opts.twin:
        return cfg
    from assistant.models.twin import twin_ladder

    return replace(cfg, tiers=twin_ladder(cfg.paths.models_dir))


def _effective(cfg: AssistantConfig, opts: DrainOptions, start_soc: float | None) -> AssistantConfig:
    """The config with the run's pack overrides (capacity, time scale, resumed state of charge) and ladder."""
    bat = cfg.battery
    sim = bat.simulated
    try:
        if opts.time_scale is not None:
            sim = replace(sim, time_scale=opts.time_scale)
        if start_soc is not None:
            sim = replace(sim, start_soc_pct=min(100.0, max(0.0, start_soc)))
        bat = replace(bat, simulated=sim)
        if opts.capacity_wh is not None:
            bat = replace(bat, capacity_wh=opts.capacity_wh)
        governor = cfg.governor if opts.target_hours is None else GovernorConfig(target_hours=opts.target_hours)
    except ValueError as exc:
        raise ConfigError(f"drain-test: {exc}") from exc
    return _ladder_cfg(replace(cfg, battery=bat, governor=governor), opts)


def _voice_key(cfg: AssistantConfig, hashes: HashCache) -> str:
    voice = voice_path(cfg)
    return f"{hashes.sha256(voice) or voice.name}|length_scale={cfg.tts.length_scale}"


def _corpus(cfg: AssistantConfig, opts: DrainOptions, hashes: HashCache) -> Corpus:
    return load_corpus(opts.prompts, cache_dir=cfg.paths.state_dir.expanduser() / "prompt-cache",
                       voice_key=_voice_key(cfg, hashes), open_synthesizer=lambda: open_synthesizer(cfg))


def _check_tier(cfg: AssistantConfig, opts: DrainOptions) -> None:
    if opts.tier is None:
        return
    tiers = ladder_for(_ladder_cfg(cfg, opts))
    tier = tiers.tier(opts.tier)
    if tier is None or tier.kind == "shutdown":
        names = ", ".join(t.name for t in tiers.ladder)
        raise ConfigError(f"--tier {opts.tier}: no such tier to pin (tiers: {names})")


def _pack_meta(cfg: AssistantConfig, session: Session) -> dict[str, Any]:
    bat, gauge, usable_j = cfg.battery, session.gauge, session.usable_energy_j
    reading = session.reading()
    out: dict[str, Any] = {"gauge": gauge.name, "simulated": reading is not None and reading.simulated,
                           "capacity_wh": bat.capacity_wh, "usable_fraction": bat.usable_fraction,
                           "usable_j": round(usable_j, 1), "cells_in_series": getattr(gauge, "cells_in_series", None)}
    if isinstance(gauge, SimulatedPack):
        out.update(time_scale=gauge.time_scale, start_soc_pct=bat.simulated.start_soc_pct, idle_w=gauge.idle_w,
                   w_per_busy_core=gauge.w_per_busy_core, boost_efficiency=gauge.boost_efficiency,
                   internal_resistance_ohm=gauge.internal_resistance_ohm)
    return out


def _open(cfg: AssistantConfig, opts: DrainOptions, files: RunFiles, gauge: Gauge | None) -> Session:
    the_gauge = gauge if gauge is not None else open_gauge(cfg.battery)
    try:
        if opts.until_brownout and isinstance(the_gauge, SimulatedPack):
            raise DrainError("--until brownout needs a real battery gauge: a simulated pack does not brown out")
        # A drain run on the simulated pack is a simulation: its readings walk the tiers down.
        session = Session(cfg, with_asr=True, gauge=the_gauge, turn_log=files.turns, pin_tier=opts.tier,
                          simulation=True)
        if opts.costs_from is not None:
            earlier = RunFiles(Path(opts.costs_from))
            session.costs.add_entries(scan_turns(earlier.turns, str(earlier.load_meta()["run_id"])).entries,
                                      asked=False)
        return session
    except BaseException:
        the_gauge.close()
        raise


def _until_pct(opts: DrainOptions, session: Session) -> float:
    """The state of charge the progress line counts down to (%)."""
    if opts.until_pct is not None:
        return opts.until_pct
    return 0.0 if opts.until_brownout else (session.empty_point.soc_pct or 0.0)


def _feed(cfg: AssistantConfig, session: Session, corpus: Corpus) -> AudioFeed:
    rate = session.transcriber.rate if session.transcriber is not None else cfg.asr.rate
    return AudioFeed(corpus, rate=rate, chunk_s=cfg.mic.block_ms / 1000)


def _drive(cfg: AssistantConfig, loop: DrainLoop, session: Session, hashes: HashCache) -> DrainResult:
    """Run the loop with the run marked active; the mark stays only where a restart should carry on."""
    _set_active(cfg, loop.files.root)
    try:
        result = loop.run()
    except AssistantError:
        _set_active(cfg, None)  # a bad model or config would fail again on every restart
        raise
    finally:
        session.close()
        hashes.save()
    if result.status in ("finished", "stopped"):
        _set_active(cfg, None)
    return result


def start_run(
    cfg: AssistantConfig,
    opts: DrainOptions,
    out: Path | None = None,
    *,
    gauge: Gauge | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> DrainResult:
    """Begin a new run in ``out`` (default STATE_DIR/drain/<run id>) and drain until its cut-off."""
    _check_tier(cfg, opts)
    hashes = HashCache(cfg.paths.state_dir.expanduser() / HASH_CACHE)
    corpus = _corpus(cfg, opts, hashes)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + opts.slug + ("-twin" if opts.twin else "")
    files = RunFiles(out if out is not None else run_root(cfg) / run_id)
    if (files.root / "meta.json").exists():
        raise DrainError(f"{files.root} already holds a drain run; continue it with --resume {files.root}")
    try:
        files.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DrainError(f"cannot create run directory {files.root}: {exc}") from exc
    cfg = _effective(cfg, opts, None)
    session = _open(cfg, opts, files, gauge)
    try:
        until = _until_pct(opts, session)
        empty = session.empty_point
        meta = {
            "schema": 1, "run_id": run_id, "created": now_iso(), "mode": opts.mode, "options": opts.to_json(),
            "until_pct": until, "until": opts.until,
            "empty_point": {"soc_pct": empty.soc_pct, "cell_voltage_v": empty.cell_voltage_v, "source": empty.source},
            "pack": _pack_meta(cfg, session),
            "asr_engine": session.transcriber.engine if session.transcriber is not None else None,
            "voice": {"path": str(voice_path(cfg)), "sha256": hashes.sha256(voice_path(cfg))},
            "models": model_hashes(session.tiers, hashes), "machine": machine_facts(),
            "corpus": {"source": corpus.source, "fingerprint": corpus.fingerprint, "texts": corpus.texts(),
                       "wavs": [str(p.wav) for p in corpus.prompts]},
            "config": effective_config(cfg, session.tiers),
        }
        write_json_atomic(files.meta, meta)
        state = RunState(files, new_state(run_id))
        state.update(segments=[{"started": now_iso(), "from_seq": 0, "boot_id": boot_id()}])
        reading = session.reading()
        if not isinstance(session.gauge, SimulatedPack) and reading is not None and (reading.soc_pct or 0) < 99:
            _LOG.warning("the run does not start from a full charge (SoC %s %%): words per charge will be an "
                         "extrapolation", reading.soc_pct)
        loop = DrainLoop(cfg, opts, files, session, _feed(cfg, session, corpus), state, run_id=run_id, until_pct=until,
                         offsets=Offsets(), segment=0, progress=progress)
    except BaseException:
        session.close()
        raise
    return _drive(cfg, loop, session, hashes)


def _offsets(files: RunFiles, saved: dict[str, Any] | None, scan: TurnScan,
             capacity_wh: float) -> tuple[Offsets, dict[str, Any] | None]:
    """Where earlier segments left the clock, the energy and the pack: the latest of state.json, the last
    battery sample and (simulated pack) the last logged turn."""
    samples, _, _ = read_samples(files.battery)
    last = samples[-1] if samples else None
    pack: dict[str, Any] | None
    if saved is not None and (last is None or float(saved.get("t_s") or 0) >= float(last.get("t_s") or 0)):
        t_s, e_j, pack = float(saved.get("t_s") or 0.0), float(saved.get("e_j") or 0.0), saved.get("pack")
    elif last is not None:
        t_s, e_j, pack = float(last.get("t_s") or 0.0), float(last.get("e_j") or 0.0), None
        if last.get("pack_soc_pct") is not None:
            pack = {"kind": "simulated", "soc_pct": last["pack_soc_pct"], "drawn_j": last.get("pack_drawn_j") or 0.0,
                    "sim_time_s": last.get("pack_sim_s") or 0.0}
    else:
        return Offsets(), None
    if not isinstance(pack, dict) or pack.get("kind") != "simulated":
        return Offsets(t_s=t_s, e_j=e_j), pack if isinstance(pack, dict) else None
    if scan.entries:
        pack = _catch_up(pack, scan.entries[-1], capacity_wh)
    return Offsets(t_s=t_s, e_j=e_j, pack_drawn_j=float(pack.get("drawn_j") or 0.0),
                   pack_sim_s=float(pack.get("sim_time_s") or 0.0)), pack


def _catch_up(pack: dict[str, Any], last_turn: TurnLogEntry, capacity_wh: float) -> dict[str, Any]:
    """The simulated pack as the last logged turn left it, when that turn ended after the last saved sample.

    A simulated pack only discharges, so the lower state of charge is the later one; the energy
    drawn in between (SoC step x capacity) is added, so none is lost across the crash.
    """
    after = last_turn.battery_after.soc_pct if last_turn.battery_after is not None else None
    if after is None or after >= float(pack["soc_pct"]):
        return pack
    extra_j = (float(pack["soc_pct"]) - after) / 100.0 * capacity_wh * 3600.0
    return dict(pack, soc_pct=float(after), drawn_j=float(pack.get("drawn_j") or 0.0) + extra_j)


def _browned_out(saved: dict[str, Any] | None) -> bool:
    """The run was cut by the machine going down (not a kill: the boot id changed) while it ran."""
    if saved is None or saved.get("status") not in ("running", "starting"):
        return False
    segments = saved.get("segments") or []
    was = segments[-1].get("boot_id") if segments and isinstance(segments[-1], dict) else None
    now = boot_id()
    return was is not None and now is not None and was != now


def _finish_brownout(cfg: AssistantConfig, files: RunFiles, meta: dict[str, Any], saved: dict[str, Any]) -> DrainResult:
    """Measure the empty point from where the pack gave out, store it for this gauge, end the run."""
    run_id = str(meta["run_id"])
    samples, _, _ = read_samples(files.battery)
    point, evidence = measured_empty_point(samples, lead_s=cfg.shutdown.hold_s + HALT_MARGIN_S, run_id=run_id)
    gauge = str((meta.get("pack") or {}).get("gauge") or "")
    stored = save_measured(cfg.paths.state_dir, point, gauge=gauge, evidence=evidence)
    reason = f"the pack browned out; its empty point is now {point.describe()} (stored in {stored})"
    state = RunState(files, dict(saved))
    state.update(status="finished", reason=reason, measured_empty_point={
        "soc_pct": point.soc_pct, "cell_voltage_v": point.cell_voltage_v, "file": str(stored)})
    state.save()
    _set_active(cfg, None)
    _LOG.warning("drain run %s: %s", run_id, reason)
    return DrainResult(run_dir=files.root, run_id=run_id, status="finished", reason=reason,
                       turns=int(saved.get("turns") or 0), words=int(saved.get("words") or 0), simulated=False,
                       empty_point_measured=True)


def resume_run(
    cfg: AssistantConfig,
    run_dir: Path,
    *,
    max_turns: int | None = None,
    gauge: Gauge | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> DrainResult:
    """Carry on a run after a crash, kill or power cut: no turn counted twice, none lost, torn lines skipped.

    The turn log is the record of truth: the next turn is the one after the last logged sequence
    number (a turn cut short by the crash runs again under its own id). The simulated pack restarts
    at the state of charge it had reached, with the energy drawn so far carried over.
    """
    files = RunFiles(run_dir)
    meta = files.load_meta()
    run_id = str(meta["run_id"])
    saved = read_json(files.state)
    if saved is not None and saved.get("status") == "finished":
        raise DrainError(f"run {run_dir} already finished ({saved.get('reason')}); make its report with "
                         f"`assistant report {run_dir}`")
    opts = DrainOptions.from_json(meta.get("options") or {}, str(files.meta))
    if max_turns is not None:
        opts = replace(opts, max_turns=max_turns)
    if opts.until_brownout and _browned_out(saved):
        return _finish_brownout(cfg, files, meta, saved or {})
    scan = scan_turns(files.turns, run_id)
    if scan.torn_lines:
        _LOG.warning("%s: a torn last line (cut by the crash) is skipped; that turn runs again", files.turns)
    if scan.duplicates or scan.missing:
        _LOG.warning("%s: duplicate turns %s and missing turns %s (ignored)", files.turns, scan.duplicates, scan.missing)
    offsets, pack = _offsets(files, saved, scan, float((meta.get("pack") or {}).get("capacity_wh") or 0.0))
    sim_soc = float(pack["soc_pct"]) if pack is not None and pack.get("kind") == "simulated" else None
    hashes = HashCache(cfg.paths.state_dir.expanduser() / HASH_CACHE)
    corpus = _corpus(cfg, opts, hashes)
    if corpus.fingerprint != (meta.get("corpus") or {}).get("fingerprint"):
        raise DrainError(f"the prompts of run {run_dir} changed since it began ({corpus.source}); a resumed run "
                         "must ask the same questions")
    cfg = _effective(cfg, opts, sim_soc)
    session = _open(cfg, opts, files, gauge)
    try:
        state = RunState(files, new_state(run_id))  # counters rebuilt from the turn log
        for seq, entry in zip(scan.seqs, scan.entries):
            state.add_turn(entry, seq)
        segments = list((saved or {}).get("segments") or [])
        segments.append({"started": now_iso(), "from_seq": scan.next_seq, "boot_id": boot_id(),
                         "torn_lines": scan.torn_lines,
                         "bad_lines": scan.bad_lines, "duplicates": scan.duplicates, "missing": scan.missing,
                         "t_s": offsets.t_s, "e_j": offsets.e_j, "soc_pct": (pack or {}).get("soc_pct")})
        state.update(segments=segments, next_seq=scan.next_seq, t_s=offsets.t_s, e_j=offsets.e_j, pack=pack)
        _LOG.info("run %s resumes at turn %d, SoC %s %%, %.1f J drawn", run_id, scan.next_seq,
                  (pack or {}).get("soc_pct"), offsets.pack_drawn_j or offsets.e_j)
        for name, info in model_hashes(session.tiers, hashes).items():
            was = ((meta.get("models") or {}).get(name) or {}).get("sha256")
            if was is not None and info.get("sha256") != was:
                _LOG.warning("tier %s: model %s changed since the run began", name, info.get("model"))
        loop = DrainLoop(cfg, opts, files, session, _feed(cfg, session, corpus), state, run_id=run_id,
                         until_pct=_until_pct(opts, session),
                         offsets=offsets, segment=len(segments) - 1, progress=progress)
    except BaseException:
        session.close()
        raise
    result = _drive(cfg, loop, session, hashes)
    return replace(result, torn_lines=scan.torn_lines)
