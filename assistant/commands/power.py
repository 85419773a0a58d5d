"""`assistant battery` (one reading and the tier it selects) and `assistant stats` (per-tier totals)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig
from assistant.power.cutoff import power_source
from assistant.power.empty_store import empty_point_for
from assistant.power.gauges import open_gauge
from assistant.power.governor import Costs, Plan, plan, remaining_energy_j
from assistant.messages import BatteryReading
from assistant.models.tier_ladder import default_ladder, unavailable_tiers
from assistant.power.tiers import TierConfig, choose_tier
from assistant.session import TURN_LOG
from assistant.turnlog import read_turns, summarize


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bat = sub.add_parser("battery", help="read the battery gauge once and show the tier it selects")
    bat.add_argument("--json", action="store_true", help="print one JSON object")
    bat.set_defaults(func=run_battery)
    st = sub.add_parser("stats", help="per-tier turns, words, energy, TPS, TPJ, W/BL and latency from the turn log")
    st.add_argument("--log", type=Path, help=f"turn log (default: STATE_DIR/{TURN_LOG})")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=run_stats)


def run_battery(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    gauge = open_gauge(cfg.battery, when_missing="raise")
    try:
        reading = gauge.read()
    finally:
        gauge.close()
    empty = empty_point_for(cfg.battery, gauge.empty_point, gauge=gauge.name, state_dir=cfg.paths.state_dir,
                            config_file=cfg.source)
    tiers = cfg.tiers or default_ladder(cfg.paths.models_dir.expanduser())
    missing = unavailable_tiers(tiers)
    tier = choose_tier(reading, tiers, None, empty=empty, unavailable=missing)
    outlook = _outlook(cfg, tiers, missing, reading, empty.soc_pct)
    data: dict[str, Any] = {"reading": dataclasses.asdict(reading), "gauge": gauge.name, "tier": tier.name,
                            "quant": tier.quant, "kind": tier.kind, "model": str(tier.model) if tier.model else None,
                            "unavailable_tiers": sorted(missing), "usable_wh": cfg.battery.usable_wh,
                            "power_source": power_source(reading),
                            "empty_point": dataclasses.asdict(empty), "simulated": reading.simulated,
                            "outlook": [dataclasses.asdict(o) for o in outlook.outlooks],
                            "target_hours_left": outlook.target_hours_left}
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    r = reading

    def opt(v: float | None, fmt: str, unit: str) -> str:
        return "unknown" if v is None else f"{v:{fmt}} {unit}"

    print(f"Gauge: {gauge.name} ({r.source})" + (": a SIMULATION, nothing here is measured" if r.simulated else ""))
    print(f"  voltage {r.voltage_v:.3f} V, current {opt(r.current_a, '+.3f', 'A')}, power {opt(r.power_w, '+.2f', 'W')}"
          + (" (estimated)" if r.power_estimated else ""))
    print(f"  charge {opt(r.soc_pct, '.1f', '%')}" + (" (from the voltage curve)" if r.soc_estimated else "")
          + f", charging {r.charging}, external power {r.external_power}")
    cell = "" if r.cell_voltage_v is None else f", weakest cell {r.cell_voltage_v:.3f} V"
    print(f"  power source: {power_source(r)}{cell}; empty at {empty.describe()}")
    print(f"Tier: {tier.name} ({tier.kind}, {tier.quant})" + (f" -> {tier.model}" if tier.model else ""))
    if missing:
        print(f"  unavailable tiers (model missing or corrupt): {', '.join(sorted(missing))}")
    known = [o for o in outlook.outlooks if o.hours is not None]
    if known:
        print("Until the empty point, at the recent rate of questions (from the turn log):")
        for o in known:
            meets = "" if o.meets_target is None else ("  reaches the target" if o.meets_target else "  short of the target")
            print(f"  {o.tier:<10} about {o.answers} more answers, {o.hours:.1f} h{meets}")
    else:
        print("Answers left per tier: not known yet (the turn log holds too few answers of each tier)")
    return 0


def _outlook(cfg: AssistantConfig, tiers: TierConfig, missing: set[str], reading: BatteryReading,
             empty_soc_pct: float | None) -> Plan:
    """How far the pack goes on each available tier, from the costs the turn log has measured."""
    costs = Costs(rate_window_s=cfg.governor.rate_window_min * 60.0)
    entries = read_turns(cfg.paths.state_dir.expanduser() / TURN_LOG).entries
    costs.add_entries(entries)
    # the draw between answers as the appliance last measured it (the governor's plan keeps it), else this reading
    logged = next((e.governor.idle_w for e in reversed(entries) if e.governor is not None
                   and e.governor.idle_w is not None), None)
    now = time.time()
    target = cfg.governor.target_unix(now) if cfg.governor.until is not None else None
    remaining = remaining_energy_j(reading.soc_pct or 0.0, empty_soc_pct or 0.0, cfg.battery.usable_wh * 3600.0)
    return plan([t.name for t in tiers.ladder if t.name not in missing], costs.costs(), remaining_j=remaining,
                idle_w=logged if logged is not None else max(0.0, -(reading.power_w or 0.0)),
                per_hour=costs.per_hour(now),
                hours_left=None if target is None else (target - now) / 3600.0)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def run_stats(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    path = args.log or cfg.paths.state_dir.expanduser() / TURN_LOG
    log = read_turns(path)
    stats = summarize(log.entries)
    if args.json:
        print(json.dumps({"log": str(path), "turns": len(log.entries), "torn_lines": log.torn_lines,
                          "bad_lines": log.bad_lines,
                          "tiers": {k: dataclasses.asdict(v) for k, v in stats.items()}}, indent=2))
        return 0
    print(f"Turn log {path}: {len(log.entries)} turns"
          + (f", {log.torn_lines} torn line skipped" if log.torn_lines else "")
          + (f", bad lines skipped at {log.bad_lines}" if log.bad_lines else ""))
    if not stats:
        return 0
    head = f"{'tier':<10}{'turns':>6}{'words':>7}{'energy J':>10}{'TPS':>7}{'TPJ':>7}{'W/BL':>9}{'w/tok':>7}" \
           f"{'1st audio p50/p95 s':>21}{'total p50/p95 s':>17}"
    print(head)
    for name, s in stats.items():
        print(f"{name:<10}{s.turns:>6}{s.words:>7}{s.energy_j:>10.1f}{_fmt(s.tps_mean, '.1f'):>7}"
              f"{_fmt(s.tpj, '.3f'):>7}{_fmt(s.wbl, ',.0f'):>9}{_fmt(s.words_per_token, '.2f'):>7}"
              f"{_fmt(s.first_audio_p50_s, '.2f') + '/' + _fmt(s.first_audio_p95_s, '.2f'):>21}"
              f"{_fmt(s.total_p50_s, '.2f') + '/' + _fmt(s.total_p95_s, '.2f'):>17}")
    measured = sum(s.measured_turns for s in stats.values())
    with_e = sum(s.energy_turns for s in stats.values())
    print(f"energy measured by the gauge in {measured} of {with_e} turns with an energy figure")
    return 0
