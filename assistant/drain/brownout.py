"""A drain run to the brown-out: where this device's pack really gives out, turned into its empty point."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from assistant.drain.runlog import DrainError
from assistant.power.cutoff import EmptyPoint

_LOG = logging.getLogger(__name__)

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

HALT_MARGIN_S = 60.0
"""Beyond ``shutdown.hold_s``: time to say so, flush and halt before the pack gives out (s)."""


def boot_id(path: Path = BOOT_ID) -> str | None:
    """This boot's id (a power cut or a reboot changes it); None where the kernel does not say."""
    try:
        return path.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def measured_empty_point(samples: list[dict[str, Any]], *, lead_s: float, run_id: str) -> tuple[EmptyPoint, dict[str, Any]]:
    """The empty point from a run's battery samples that end where the pack browned out: the pack's
    state ``lead_s`` seconds before its last sample on battery. DrainError when the samples cannot
    show a brown-out (none on battery, too short, no cell voltage)."""
    usable = [s for s in samples if s.get("source") == "battery" and isinstance(s.get("t_s"), (int, float))]
    if not usable:
        raise DrainError(f"run {run_id}: no battery sample on battery power, so no brown-out to measure "
                         "(was the device on external power when it went off?)")
    last = usable[-1]
    end = float(last["t_s"])
    if end - float(usable[0]["t_s"]) < lead_s:
        raise DrainError(f"run {run_id}: the battery samples on battery cover less than {lead_s:.0f} s: too short "
                         "to put the empty point that far ahead of the brown-out")
    before = [s for s in usable if float(s["t_s"]) <= end - lead_s]
    at = before[-1]
    cell = at.get("cell_voltage_v")
    soc = at.get("soc_pct")
    if not isinstance(cell, (int, float)):
        raise DrainError(f"run {run_id}: the samples have no cell voltage, so no empty point can be measured")
    point = EmptyPoint(
        soc_pct=round(float(soc), 1) if isinstance(soc, (int, float)) and soc < 100 else None,
        cell_voltage_v=round(float(cell), 3),
        source=f"measured by drain run {run_id}: {lead_s:.0f} s before the pack gave out at "
               f"{float(last.get('cell_voltage_v') or 0):.3f} V per cell",
    )
    evidence = {"run_id": run_id, "lead_s": lead_s, "last_sample": last, "sample_used": at}
    return point, evidence
