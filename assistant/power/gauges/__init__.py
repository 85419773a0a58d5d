"""Battery gauges for UPS HATs (their emulations and the simulated pack live in ``assistant.sim``);
``open_gauge`` picks one."""

from __future__ import annotations

import logging

from assistant.power.gauges.base import Gauge, LazySMBus, PlausibilityLimits, RegisterBus
from assistant.power.gauges.detect import open_gauge, probe_i2c, simulated_pack
from assistant.power.gauges.ina219 import Ina219Gauge
from assistant.power.gauges.max1704x import Max1704xGauge
from assistant.power.gauges.pisugar import PiSugarGauge
from assistant.power.gauges.waveshare_e import UpsHatEStatus, WaveshareEGauge

_LOG = logging.getLogger(__name__)

__all__ = [
    "Gauge",
    "Ina219Gauge",
    "LazySMBus",
    "Max1704xGauge",
    "PiSugarGauge",
    "PlausibilityLimits",
    "RegisterBus",
    "UpsHatEStatus",
    "WaveshareEGauge",
    "open_gauge",
    "probe_i2c",
    "simulated_pack",
]
