"""Tests of the battery configuration section, loaded through the appliance's config builder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assistant.config import build
from assistant.errors import ConfigError
from assistant.power.battery_config import BatteryConfig, PlausibilityLimits, SimulatedPackConfig


def _load(text: str) -> BatteryConfig:
    data = yaml.safe_load(text) or {}
    return build(BatteryConfig, data, "/etc/assistant/config.yaml", "battery.")  # type: ignore[no-any-return]


def test_defaults() -> None:
    cfg = _load("")
    assert cfg.kind == "auto" and cfg.board == "default" and cfg.i2c_bus == 1 and cfg.address is None
    assert cfg.capacity_wh == 19.24 and cfg.usable_fraction == 0.85
    assert cfg.usable_wh == pytest.approx(19.24 * 0.85)
    assert cfg.simulated == SimulatedPackConfig() and cfg.limits == PlausibilityLimits()
    assert cfg.pld_pin == 6


def test_full_section_with_hex_address_and_nested_sections() -> None:
    cfg = _load(
        """
kind: ina219
board: waveshare_cd
address: 0x43
shunt_ohms: 0.01
cells_in_series: 1
pisugar_socket: run/pisugar.sock
capacity_wh: 18.5
usable_fraction: 0.8
retries: 5
limits:
  min_cell_v: 2.8
  max_current_a: 6
simulated:
  start_soc_pct: 75
  time_scale: 60
  w_per_busy_core: 1.5
pld_pin:
"""
    )
    assert cfg.kind == "ina219" and cfg.board == "waveshare_cd" and cfg.address == 0x43
    assert cfg.pisugar_socket == Path("/etc/assistant/run/pisugar.sock")
    assert cfg.limits.min_cell_v == 2.8 and cfg.limits.max_current_a == 6.0
    assert cfg.simulated.time_scale == 60.0 and cfg.simulated.start_soc_pct == 75.0
    assert cfg.pld_pin is None
    assert cfg.retries == 5


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("kindd: auto", "battery.kindd"),
        ("simulated:\n  speed: 2", "battery.simulated.speed"),
        ("limits:\n  max_volts: 9", "battery.limits.max_volts"),
    ],
)
def test_unknown_key_is_named(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown key '{named}'"):
        _load(text)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("kind: ups_hat", "'battery.kind'"),
        ("capacity_wh: lots", "'battery.capacity_wh'"),
        ("address: forty-two", "'battery.address'"),
        ("retries: 2.5", "'battery.retries'"),
        ("simulated:\n  time_scale: fast", "'battery.simulated.time_scale'"),
        ("usable_fraction: 1.5", "usable_fraction"),
        ("address: 0x90", "address"),
        ("kind: ina219\nboard: x728", "board 'x728' does not fit kind 'ina219'"),
        ("simulated:\n  time_scale: 0", "time_scale"),
        ("limits:\n  min_cell_v: 5", "min_cell_v"),
        ("cells_in_series: 0", "cells_in_series"),
    ],
)
def test_bad_value_is_named(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(text)
    assert named in str(info.value)
    assert "/etc/assistant/config.yaml" in str(info.value)
