"""A fresh process for one LLM measurement (``python -m assistant.bench.worker``), so its memory and CPU are its own."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from assistant.bench.llm_bench import TierJob, measure_overhead, measure_tier
from assistant.bench.settings import BenchSettings
from assistant.config import AssistantConfig, build
from assistant.errors import AssistantError, ModelError

_LOG = logging.getLogger(__name__)

RESULT = "BENCH-RESULT "
"""Prefix of the one stdout line that carries the job's result (native libraries may print other lines)."""


def config_to_mapping(cfg: AssistantConfig) -> dict[str, Any]:
    """The configuration as plain JSON types (paths as strings), as ``config.build`` reads it back."""
    data = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    data.pop("source", None)
    return dict(data)


def config_from_mapping(data: dict[str, Any]) -> AssistantConfig:
    """The configuration a job carries."""
    cfg: AssistantConfig = build(AssistantConfig, data, "<bench job>", "")
    return cfg


def tier_to_mapping(job: TierJob) -> dict[str, Any]:
    """A tier job as plain JSON types."""
    return {**dataclasses.asdict(job), "model": str(job.model)}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Do one job in this process: ``tier`` (``measure_tier``) or ``overhead`` (``measure_overhead``).

    The job arrives as one JSON line on stdin (``spawn`` writes it) and the result leaves as the
    stdout line starting with ``RESULT``.
    """
    cfg = config_from_mapping(job["config"])
    kind = job.get("kind")
    settings = BenchSettings(**job["settings"])
    tier = job["tier"]
    tj = TierJob(name=tier["name"], model=Path(tier["model"]), quant=tier["quant"], n_ctx=int(tier["n_ctx"]),
                 threads=int(tier["threads"]))
    if kind == "tier":
        return measure_tier(tj, cfg, settings)
    if kind == "overhead":
        return measure_overhead(tj, cfg, settings)
    raise ValueError(f"unknown bench job kind {kind!r}")


def spawn(job: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
    """Run ``job`` in a fresh worker process and return its result; ModelError when it fails."""
    what = f"bench worker ({job.get('kind')} {job.get('tier', {}).get('name', '')})".replace(" )", ")")
    try:
        proc = subprocess.run([sys.executable, "-m", "assistant.bench.worker"], input=json.dumps(job) + "\n",
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelError(f"{what} did not finish within {timeout_s:.0f} s") from exc
    for line in proc.stderr.splitlines():
        _LOG.debug("%s: %s", what, line)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise ModelError(f"{what} failed (exit {proc.returncode}): {tail or 'no output'}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT) :])
    if "error" in result:
        raise ModelError(f"{what}: {result['error']}")
    return result


def main() -> int:
    """Entry point of the worker process."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        job = json.loads(sys.stdin.readline())
        result = run_job(job)
    except AssistantError as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(RESULT + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
