"""Pick and open the battery gauge the configuration asks for, probing the I2C bus when it says ``auto``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from assistant.errors import BatteryReadError
from assistant.power.battery_config import BatteryConfig
from assistant.power.gauges.base import Gauge, LazySMBus, RegisterBus, swap16
from assistant.power.gauges.ina219 import PROFILES, Ina219Gauge
from assistant.power.gauges.max1704x import BOARDS, Max1704xGauge
from assistant.power.gauges.pisugar import DEFAULT_SOCKET, PiSugarGauge
from assistant.power.gauges.simulated import SimulatedPack
from assistant.power.gauges.waveshare_e import CHIP_ID, WaveshareEGauge

_LOG = logging.getLogger(__name__)

ADDR_UPS_E = 0x2D
ADDR_MAX1704X = 0x36
ADDR_INA219_B = 0x42
ADDR_INA219_CD = 0x43


def _answers(bus: RegisterBus, address: int, register: int) -> int | None:
    """Byte at ``register`` of the chip at ``address``, or None when nothing acknowledges."""
    try:
        return bus.read_byte_data(address, register)
    except OSError:
        return None


def probe_i2c(bus: RegisterBus) -> str | None:
    """Which gauge chip the bus holds: ``waveshare_e``, ``max1704x``, ``waveshare_b``, ``waveshare_cd`` or None."""
    if _answers(bus, ADDR_UPS_E, 0x00) == CHIP_ID:
        return "waveshare_e"
    try:
        version = swap16(bus.read_word_data(ADDR_MAX1704X, 0x08))
    except OSError:
        version = None
    if version is not None and version & 0xFFF0 == 0x0010:
        return "max1704x"
    if _answers(bus, ADDR_INA219_B, 0x00) is not None:
        return "waveshare_b"
    if _answers(bus, ADDR_INA219_CD, 0x00) is not None:
        return "waveshare_cd"
    return None


def _common(cfg: BatteryConfig) -> dict[str, Any]:
    return {"limits": cfg.limits, "retries": cfg.retries, "backoff_s": cfg.retry_backoff_s}


def _ina219(cfg: BatteryConfig, bus: RegisterBus, board: str) -> Ina219Gauge:
    profile = PROFILES[board]
    overrides: dict[str, Any] = {"bus": bus, "current_threshold_a": cfg.current_threshold_a, **_common(cfg)}
    if cfg.address is not None:
        overrides["address"] = cfg.address
    if cfg.cells_in_series is not None:
        overrides["cells_in_series"] = cfg.cells_in_series
    if cfg.shunt_ohms is not None and cfg.shunt_ohms != profile.shunt_ohms:
        overrides["shunt_ohms"] = cfg.shunt_ohms
        overrides["current_lsb_a"] = None  # derive it from the board's maximum current
    if cfg.limits.max_current_a is not None:
        overrides["max_current_a"] = cfg.limits.max_current_a
        overrides["current_lsb_a"] = None
    return Ina219Gauge.for_board(board, **overrides)


def _max1704x(cfg: BatteryConfig, bus: RegisterBus, board: str, pin_factory: Any) -> Max1704xGauge:
    preset = BOARDS[board]
    return Max1704xGauge(
        bus=bus,
        address=cfg.address if cfg.address is not None else ADDR_MAX1704X,
        pld_pin=cfg.pld_pin,
        pld_active_high_means_power_ok=preset.pld_active_high_means_power_ok,
        pin_factory=pin_factory,
        capacity_wh=cfg.capacity_wh,
        cells_in_series=cfg.cells_in_series or 1,
        **_common(cfg),
    )


def _waveshare_e(cfg: BatteryConfig, bus: RegisterBus) -> WaveshareEGauge:
    return WaveshareEGauge(
        bus=bus,
        address=cfg.address if cfg.address is not None else ADDR_UPS_E,
        cells_in_series=cfg.cells_in_series or 4,
        **_common(cfg),
    )


def _pisugar(cfg: BatteryConfig, socket_path: str | None) -> PiSugarGauge:
    return PiSugarGauge(
        host=cfg.pisugar_host,
        port=cfg.pisugar_port,
        socket_path=socket_path,
        timeout=cfg.pisugar_timeout_s,
        limits=cfg.limits,
        retries=cfg.retries,
        backoff_s=cfg.retry_backoff_s,
    )


def simulated_pack(cfg: BatteryConfig) -> SimulatedPack:
    """The simulated pack the configuration describes."""
    sim = cfg.simulated
    return SimulatedPack(
        capacity_wh=cfg.capacity_wh,
        start_soc_pct=sim.start_soc_pct,
        cells_in_series=cfg.cells_in_series or 2,
        internal_resistance_ohm=sim.internal_resistance_ohm,
        idle_w=sim.idle_w,
        w_per_busy_core=sim.w_per_busy_core,
        boost_efficiency=sim.boost_efficiency,
        time_scale=sim.time_scale,
        external_power=sim.external_power,
        charge_w=sim.charge_w,
        limits=cfg.limits,
    )


def _board_for(cfg: BatteryConfig, found: str) -> str:
    if found == "max1704x":
        if cfg.board == "default":
            _LOG.warning(
                "MAX1704x found: assuming X120x PLD polarity (high = power OK); set battery.board: x728 for an X728"
            )
            return "x120x"
        return cfg.board
    return found


def _open_configured(cfg: BatteryConfig, bus: RegisterBus, pin_factory: Any) -> Gauge:
    kind, board = cfg.kind, cfg.board
    if kind == "ina219":
        if board == "default":
            board = "waveshare_cd" if cfg.address == ADDR_INA219_CD else "waveshare_b"
        return _ina219(cfg, bus, board)
    if kind == "max1704x":
        return _max1704x(cfg, bus, "x120x" if board == "default" else board, pin_factory)
    return _waveshare_e(cfg, bus)


def _first_reading(cfg: BatteryConfig, gauge: Gauge, where: str) -> Gauge:
    """Take one reading so that a gauge which does not answer fails now, with a clear message."""
    try:
        reading = gauge.read()
    except BatteryReadError as exc:
        gauge.close()
        how = "found by auto-detection" if cfg.kind == "auto" else f"configured as '{cfg.kind}'"
        raise BatteryReadError(f"battery gauge {gauge.name} ({how}) at {where} does not answer: {exc}") from exc
    _LOG.info("battery gauge %s: %.2f V, SoC %s %%", gauge.name, reading.voltage_v, reading.soc_pct)
    return gauge


def _i2c_where(cfg: BatteryConfig, gauge: Gauge) -> str:
    address = getattr(gauge, "address", None)
    return f"I2C bus {cfg.i2c_bus} address 0x{address:02x}" if address is not None else f"I2C bus {cfg.i2c_bus}"


def open_gauge(
    cfg: BatteryConfig,
    *,
    bus: RegisterBus | None = None,
    pin_factory: Any = None,
    dev_dir: Path = Path("/dev"),
) -> Gauge:
    """Open the configured gauge, checked with one reading; BatteryReadError when it does not answer.

    ``bus`` replaces ``/dev/i2c-<i2c_bus>`` (tests pass an emulated bus); ``pin_factory`` is handed
    to gpiozero for the PLD line. With ``kind: auto`` and no I2C device at all the simulated pack
    is used straight away.
    """
    if cfg.kind == "simulated":
        _LOG.info("battery: simulated pack (configured)")
        return simulated_pack(cfg)
    if cfg.kind == "pisugar":
        client = _pisugar(cfg, str(cfg.pisugar_socket) if cfg.pisugar_socket is not None else None)
        return _first_reading(cfg, client, f"pisugar-server {client.name.removeprefix('pisugar@')}")
    if cfg.kind != "auto":
        gauge = _open_configured(cfg, bus if bus is not None else LazySMBus(cfg.i2c_bus), pin_factory)
        return _first_reading(cfg, gauge, _i2c_where(cfg, gauge))
    return _auto(cfg, bus, pin_factory, dev_dir)


def _auto(cfg: BatteryConfig, bus: RegisterBus | None, pin_factory: Any, dev_dir: Path) -> Gauge:
    device = dev_dir / f"i2c-{cfg.i2c_bus}"
    if bus is None and not device.exists():
        _LOG.warning("battery: no %s: this is a SIMULATION, the battery figures are not measured", device)
        return simulated_pack(cfg)
    the_bus = bus if bus is not None else LazySMBus(cfg.i2c_bus)
    try:
        found = probe_i2c(the_bus)
    except BatteryReadError as exc:
        _LOG.warning("battery: cannot probe %s (%s)", device, exc)
        found = None
    if found is not None:
        _LOG.info("battery: found %s on I2C bus %d", found, cfg.i2c_bus)
        gauge: Gauge
        if found == "waveshare_e":
            gauge = _waveshare_e(cfg, the_bus)
        elif found == "max1704x":
            gauge = _max1704x(cfg, the_bus, _board_for(cfg, found), pin_factory)
        else:
            gauge = _ina219(cfg, the_bus, found)
        return _first_reading(cfg, gauge, _i2c_where(cfg, gauge))
    the_bus.close()
    candidates: list[str | None] = []
    if cfg.pisugar_socket is not None:
        candidates.append(str(cfg.pisugar_socket))
    elif os.path.exists(DEFAULT_SOCKET):
        candidates.append(DEFAULT_SOCKET)
    candidates.append(None)
    for socket_path in candidates:
        client = _pisugar(cfg, socket_path)
        if client.probe():
            _LOG.info("battery: pisugar-server answers at %s", client.name)
            return _first_reading(cfg, client, f"pisugar-server {client.name.removeprefix('pisugar@')}")
        client.close()
    _LOG.warning(
        "battery: no UPS HAT answers on I2C bus %d and no pisugar-server: this is a SIMULATION, "
        "the battery figures are not measured",
        cfg.i2c_bus,
    )
    return simulated_pack(cfg)
