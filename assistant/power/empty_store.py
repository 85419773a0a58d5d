"""The pack's empty point as this device uses it: the configuration's, the one a drain run measured, or the board's."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from assistant.atomic import write_json_atomic
from assistant.power.battery_config import BatteryConfig
from assistant.power.cutoff import EmptyPoint, merge

_LOG = logging.getLogger(__name__)

MEASURED_FILE = "empty-point.json"
"""In the state directory: the empty point a drain run to the brown-out measured for this device."""


def save_measured(state_dir: Path, point: EmptyPoint, *, gauge: str, evidence: dict[str, Any]) -> Path:
    """Store a measured empty point for the gauge called ``gauge``; returns the file written."""
    path = state_dir.expanduser() / MEASURED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"schema": 1, "gauge": gauge, "soc_pct": point.soc_pct,
                             "cell_voltage_v": point.cell_voltage_v, "source": point.source, "evidence": evidence})
    _LOG.warning("measured empty point stored in %s: %s", path, point.describe())
    return path


def load_measured(state_dir: Path, gauge: str) -> EmptyPoint | None:
    """The stored point for this gauge; None (with a warning) when missing, unreadable, implausible or
    measured on another gauge."""
    path = state_dir.expanduser() / MEASURED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _LOG.warning("%s cannot be read (%s): the board's empty point is used", path, exc)
        return None
    if not isinstance(data, dict) or data.get("schema") != 1:
        _LOG.warning("%s is not a stored empty point: the board's empty point is used", path)
        return None
    if data.get("gauge") != gauge:
        _LOG.warning("%s was measured on %r, not on this gauge %r: the board's empty point is used",
                     path, data.get("gauge"), gauge)
        return None
    soc, cell = data.get("soc_pct"), data.get("cell_voltage_v")
    try:
        for value in (soc, cell):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ValueError(f"{value!r} is not a number")
        return EmptyPoint(soc_pct=soc, cell_voltage_v=cell, source=str(data.get("source") or path))
    except ValueError as exc:
        _LOG.warning("%s holds an implausible empty point (%s): the board's empty point is used", path, exc)
        return None


def empty_point_for(cfg: BatteryConfig, board: EmptyPoint, *, gauge: str, state_dir: Path,
                    config_file: Path | None = None) -> EmptyPoint:
    """The point every decision uses: ``battery.empty_soc_pct`` / ``empty_cell_v`` where set, else the
    measured point of this gauge, else the board's."""
    base = load_measured(state_dir, gauge) or board
    where = f"battery.empty_* in {config_file}" if config_file is not None else "battery.empty_*"
    point = merge(base, soc_pct=cfg.empty_soc_pct, cell_voltage_v=cfg.empty_cell_v, where=where)
    _LOG.info("the pack counts as empty at %s", point.describe())
    return point
