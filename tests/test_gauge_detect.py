"""Tests of gauge selection: auto-probing an emulated bus holding one chip at a time, and configured kinds."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from assistant.errors import BatteryReadError
from assistant.power.battery_config import BatteryConfig, SimulatedPackConfig
from assistant.power.gauges import (
    Gauge,
    Ina219Gauge,
    Max1704xGauge,
    PiSugarGauge,
    WaveshareEGauge,
    open_gauge,
    probe_i2c,
)
from assistant.sim.chips.bus import EmulatedBus
from assistant.sim.chips.ina219 import EmulatedIna219
from assistant.sim.chips.max1704x import EmulatedMax1704x
from assistant.sim.chips.pisugar import PiSugarServerEmulator
from assistant.sim.chips.waveshare_e import EmulatedUpsHatE
from assistant.sim.pack import SimulatedPack


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.reset()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cfg(**kw: object) -> BatteryConfig:
    kw.setdefault("pisugar_port", _free_port())  # nothing listens there
    kw.setdefault("retry_backoff_s", 0.0)
    return BatteryConfig(**kw)  # type: ignore[arg-type]


def test_auto_finds_ups_hat_e() -> None:
    gauge = open_gauge(_cfg(), bus=EmulatedBus({0x2D: EmulatedUpsHatE()}))
    assert isinstance(gauge, WaveshareEGauge) and isinstance(gauge, Gauge)
    assert gauge.read().voltage_v == 15.2


def test_auto_finds_max1704x_and_assumes_x120x(factory: MockFactory, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        gauge = open_gauge(_cfg(), bus=EmulatedBus({0x36: EmulatedMax1704x()}), pin_factory=factory)
    assert isinstance(gauge, Max1704xGauge)
    assert "x728" in caplog.text
    factory.pin(6).drive_high()
    assert gauge.read().external_power is True
    gauge.close()


def test_auto_max1704x_on_x728(factory: MockFactory) -> None:
    gauge = open_gauge(_cfg(board="x728"), bus=EmulatedBus({0x36: EmulatedMax1704x()}), pin_factory=factory)
    factory.pin(6).drive_high()
    assert gauge.read().external_power is False
    gauge.close()


def test_auto_finds_ina219_b_at_0x42() -> None:
    chip = EmulatedIna219(shunt_ohms=0.1, pack_voltage_v=7.8, current_a=-0.5)
    gauge = open_gauge(_cfg(), bus=EmulatedBus({0x42: chip}))
    assert isinstance(gauge, Ina219Gauge) and gauge.name == "ina219@0x42"
    assert chip.calibration == 4096 and chip.config == 0x3EEF


def test_auto_finds_ina219_cd_at_0x43_next_to_another_mcu_at_0x2d() -> None:
    other_mcu = EmulatedUpsHatE()
    other_mcu.inject_garbage(0x00, 0x05, count=5)  # a UPS HAT (D) power-path MCU is not ID 0x0A
    chip = EmulatedIna219(shunt_ohms=0.01, pack_voltage_v=3.9, current_a=-1.0)
    bus = EmulatedBus({0x2D: other_mcu, 0x43: chip})
    assert probe_i2c(bus) == "waveshare_cd"
    gauge = open_gauge(_cfg(), bus=bus)
    assert isinstance(gauge, Ina219Gauge) and gauge.name == "ina219@0x43"
    assert chip.calibration == 26876 and chip.config == 0x0EEF


@pytest.mark.parametrize("variant,version", [
    ("MAX17040", 0x0003), ("MAX17041", 0x0002), ("MAX17043", 0x0003), ("MAX17043", 0x0000), ("MAX17043", 0xFFFF),
    ("MAX17048", 0x0012),
])
def test_auto_finds_every_max1704x_the_x120x_and_x728_carry(variant: str, version: int, factory: MockFactory) -> None:
    """Geekworm's boards carry a MAX17040/41/43, whose VERSION is not 0x001x: found by what it reads."""
    chip = EmulatedMax1704x(variant=variant, version=version, cell_voltage_v=3.92, soc_pct=71.5)  # type: ignore[arg-type]
    bus = EmulatedBus({0x36: chip})
    assert probe_i2c(bus) == "max1704x"
    gauge = open_gauge(_cfg(), bus=bus, pin_factory=factory, when_missing="raise")
    assert isinstance(gauge, Max1704xGauge)
    r = gauge.read()
    assert r.soc_pct == pytest.approx(71.5) and r.cell_voltage_v == pytest.approx(3.92, abs=0.0013)
    assert gauge.has_crate is (variant == "MAX17048") and gauge.empty_point.source.startswith("board preset x120x")
    gauge.close()


@pytest.mark.parametrize("volts,soc", [(0.0, 50.0), (5.1, 50.0), (3.8, 180.0)])
def test_auto_ignores_a_chip_at_0x36_that_reads_like_no_fuel_gauge(volts: float, soc: float,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert probe_i2c(EmulatedBus({0x36: EmulatedMax1704x(cell_voltage_v=volts, soc_pct=soc)})) is None
    assert "battery.kind: max1704x" in caplog.text


def test_auto_finds_pisugar_server_when_no_chip_answers() -> None:
    server = PiSugarServerEmulator().start()
    try:
        assert server.tcp_address is not None
        gauge = open_gauge(_cfg(pisugar_port=server.tcp_address[1]), bus=EmulatedBus({}))
        assert isinstance(gauge, PiSugarGauge)
        assert gauge.read().soc_pct == 87.5
        gauge.close()
    finally:
        server.stop()


def test_auto_falls_back_to_a_labelled_simulation_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        gauge = open_gauge(_cfg(simulated=SimulatedPackConfig(start_soc_pct=80.0)), bus=EmulatedBus({}))
    assert isinstance(gauge, SimulatedPack) and isinstance(gauge, Gauge)
    assert "SIMULATION" in caplog.text
    reading = gauge.read()
    assert reading.simulated and reading.power_estimated  # the reading says so itself, not only its name
    assert reading.source == "simulated" and reading.soc_pct == pytest.approx(80.0, abs=0.01)


def test_no_i2c_device_goes_straight_to_the_simulation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        gauge = open_gauge(_cfg(), dev_dir=tmp_path)
    assert isinstance(gauge, SimulatedPack)
    assert f"no {tmp_path / 'i2c-1'}" in caplog.text and "SIMULATION" in caplog.text


def test_a_device_never_gets_a_simulation(tmp_path: Path) -> None:
    """On a device the gauge is found, or it is missing: an error, never a simulated pack."""
    (tmp_path / "i2c-1").touch()  # a Pi with I2C on and no HAT
    with pytest.raises(BatteryReadError, match="no battery gauge found: no UPS HAT answers on I2C bus 1"):
        open_gauge(_cfg(), bus=EmulatedBus({}), when_missing="raise")
    with pytest.raises(BatteryReadError, match=r"no battery gauge found: no .*i2c-1"):
        open_gauge(_cfg(), dev_dir=tmp_path / "none", when_missing="raise")


def test_simulated_kind_uses_the_configured_pack() -> None:
    cfg = _cfg(
        kind="simulated",
        capacity_wh=30.0,
        cells_in_series=1,
        simulated=SimulatedPackConfig(start_soc_pct=40.0, time_scale=5.0, idle_w=2.0),
    )
    gauge = open_gauge(cfg)
    assert isinstance(gauge, SimulatedPack)
    assert gauge.capacity_wh == 30.0 and gauge.time_scale == 5.0 and gauge.idle_w == 2.0
    assert gauge.cells_in_series == 1 and gauge.soc_pct == pytest.approx(40.0)


def test_configured_hat_that_does_not_answer_fails_at_start() -> None:
    with pytest.raises(
        BatteryReadError,
        match=r"ina219@0x42 \(configured as 'ina219'\) at I2C bus 1 address 0x42 "
        r"does not answer",
    ):
        open_gauge(_cfg(kind="ina219", retries=1), bus=EmulatedBus({}))
    with pytest.raises(BatteryReadError, match=r"ups_hat_e@0x2d .* does not answer"):
        open_gauge(_cfg(kind="waveshare_e", retries=0), bus=EmulatedBus({}))


def test_configured_pisugar_that_does_not_answer_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(BatteryReadError, match=r"pisugar-server .* does not answer"):
        open_gauge(_cfg(kind="pisugar", pisugar_socket=tmp_path / "none.sock", retries=0))


def test_configured_kinds_honour_address_and_board(factory: MockFactory) -> None:
    chip = EmulatedIna219(shunt_ohms=0.01, pack_voltage_v=3.9)
    gauge = open_gauge(_cfg(kind="ina219", address=0x43), bus=EmulatedBus({0x43: chip}))
    assert isinstance(gauge, Ina219Gauge) and chip.calibration == 26876
    chip = EmulatedIna219(shunt_ohms=0.1, pack_voltage_v=3.9)
    gauge = open_gauge(
        _cfg(kind="ina219", board="waveshare_b", address=0x40, cells_in_series=1), bus=EmulatedBus({0x40: chip})
    )
    assert gauge.name == "ina219@0x40"
    gauge = open_gauge(_cfg(kind="max1704x", board="x728", pld_pin=None), bus=EmulatedBus({0x36: EmulatedMax1704x()}))
    assert isinstance(gauge, Max1704xGauge) and gauge.read().external_power is None


def test_custom_shunt_derives_calibration_from_max_current() -> None:
    from assistant.power.battery_config import PlausibilityLimits

    chip = EmulatedIna219(shunt_ohms=0.05, pack_voltage_v=7.5, current_a=-1.0)
    cfg = _cfg(kind="ina219", shunt_ohms=0.05, limits=PlausibilityLimits(max_current_a=4.0))
    gauge = open_gauge(cfg, bus=EmulatedBus({0x42: chip}))
    assert chip.calibration == int(0.04096 / (4.0 / 32768 * 0.05)) & 0xFFFE
    assert gauge.read().current_a == pytest.approx(-1.0, abs=5e-4)
