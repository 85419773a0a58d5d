"""The soak test: the appliance on simulated hardware for many turns, with faults injected, and what it must survive."""

from __future__ import annotations

import logging

from assistant.soak.runner import SoakFailed, SoakReport, run_soak, summary

_LOG = logging.getLogger(__name__)

__all__ = ["SoakFailed", "SoakReport", "run_soak", "summary"]
