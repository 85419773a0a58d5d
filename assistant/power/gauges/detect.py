"""Pick and open the battery gauge the configuration asks for, probing the I2C bus when it says ``auto``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.errors import BatteryReadError
from assistant.power.battery_config import BatteryConfig
from assistant.power.gauges.base import Gauge, LazySMBus, RegisterBus, swap16
from assistant.power.gauges.ina219 import PROFILES, Ina219Gauge
from assistant.power.gauges.max1704x import REG_SOC, REG_VCELL, VCELL_LSB_V, Max1704xGauge
from assistant.power.gauges.pisugar import DEFAULT_SOCKET, PiSugarGauge
from assistant.sim.pack import SimulatedPack
from assistant.power.gauges.waveshare_e import CHIP_ID, WaveshareEGauge

_LOG = logging.getLogger(__name__)

ADDR_UPS_E = 0x2D
ADDR_MAX1704X = 0x36
ADDR_INA219_B = 0x42
ADDR_INA219_CD = 0x43
MAX1704X_VCELL_V = (2.5, 4.5)
"""A cell voltage a fuel gauge at 0x36 may believably report (V)."""
MAX1704X_SOC_MAX_PCT = 105.0
"""Highest believable SOC of a fuel gauge at 0x36 (%; ModelGauge overshoots a little after a charge)."""


def _answers(bus: RegisterBus, address: int, register: int) -> int | None:
    """Byte at ``register`` of the chip at ``address``, or None when nothing acknowledges."""
    try:
        return bus.read_byte_data(address, register)
    except OSError:
        return None


def _max1704x_answers(bus: RegisterBus) -> bool:
    """A MAX1704x at 0x36 by what it reports, not by its VERSION: VCELL a believable cell voltage
    and SOC a believable charge. The MAX17040/41/43 that Geekworm's X120x and X728 carry report other
    VERSION values than the MAX17048/49 (0x001x); VERSION only says whether CRATE exists."""
    try:
        vcell = swap16(bus.read_word_data(ADDR_MAX1704X, REG_VCELL)) * VCELL_LSB_V
        soc = swap16(bus.read_word_data(ADDR_MAX1704X, REG_SOC)) / 256.0
    except OSError:
        return False
    if MAX1704X_VCELL_V[0] <= vcell <= MAX1704X_VCELL_V[1] and soc <= MAX1704X_SOC_MAX_PCT:
        return True
    _LOG.warning("I2C 0x36 answers but reads %.3f V and %.1f %%: not taken for a MAX1704x fuel gauge "
                 "(set battery.kind: max1704x if it is one)", vcell, soc)
    return False


def probe_i2c(bus: RegisterBus) -> str | None:
    """Which gauge chip the bus holds: ``waveshare_e``, ``max1704x``, ``waveshare_b``, ``waveshare_cd`` or None."""
    if _answers(bus, ADDR_UPS_E, 0x00) == CHIP_ID:
        return "waveshare_e"
    if _max1704x_answers(bus):
        return "max1704x"
    if _answers(bus, ADDR_INA219_B, 0x00) is not None:
        return "waveshare_b"
    if _answers(bus, ADDR_INA219_CD, 0x00) is not None:
        return "waveshare_cd"
    return None


@dataclass(frozen=True)
class _Opener:
    """Builds each kind of gauge from the configuration, with what every driver shares."""

    cfg: BatteryConfig
    pin_factory: Any = None
    clock: Callable[[], float] = time.monotonic

    def _common(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"limits": cfg.limits, "retries": cfg.retries, "backoff_s": cfg.retry_backoff_s, "clock": self.clock}

    def ina219(self, bus: RegisterBus, board: str) -> Ina219Gauge:
        cfg, profile = self.cfg, PROFILES[board]
        overrides: dict[str, Any] = {"bus": bus, "current_threshold_a": cfg.current_threshold_a, **self._common()}
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

    def max1704x(self, bus: RegisterBus, board: str) -> Max1704xGauge:
        cfg = self.cfg
        return Max1704xGauge.for_board(
            board, bus=bus, address=cfg.address if cfg.address is not None else ADDR_MAX1704X, pld_pin=cfg.pld_pin,
            pin_factory=self.pin_factory, capacity_wh=cfg.capacity_wh, cells_in_series=cfg.cells_in_series or 1,
            **self._common())

    def waveshare_e(self, bus: RegisterBus) -> WaveshareEGauge:
        cfg = self.cfg
        return WaveshareEGauge(bus=bus, address=cfg.address if cfg.address is not None else ADDR_UPS_E,
                               cells_in_series=cfg.cells_in_series or 4, **self._common())

    def pisugar(self, socket_path: str | None) -> PiSugarGauge:
        cfg = self.cfg
        return PiSugarGauge(host=cfg.pisugar_host, port=cfg.pisugar_port, socket_path=socket_path,
                            timeout=cfg.pisugar_timeout_s, **self._common())

    def configured(self, bus: RegisterBus) -> Gauge:
        kind, board = self.cfg.kind, self.cfg.board
        if kind == "ina219":
            if board == "default":
                board = "waveshare_cd" if self.cfg.address == ADDR_INA219_CD else "waveshare_b"
            return self.ina219(bus, board)
        if kind == "max1704x":
            return self.max1704x(bus, "x120x" if board == "default" else board)
        return self.waveshare_e(bus)

    def found(self, bus: RegisterBus, found: str) -> Gauge:
        if found == "waveshare_e":
            return self.waveshare_e(bus)
        if found == "max1704x":
            return self.max1704x(bus, _board_for(self.cfg, found))
        return self.ina219(bus, found)


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


WhenMissing = Literal["simulate", "raise"]


def open_gauge(
    cfg: BatteryConfig,
    *,
    bus: RegisterBus | None = None,
    pin_factory: Any = None,
    dev_dir: Path = Path("/dev"),
    when_missing: WhenMissing = "simulate",
    clock: Callable[[], float] = time.monotonic,
) -> Gauge:
    """Open the configured gauge, checked with one reading; BatteryReadError when it does not answer.

    ``bus`` replaces ``/dev/i2c-<i2c_bus>`` (tests pass an emulated bus); ``pin_factory`` is handed
    to gpiozero for the PLD line; ``clock`` stamps the readings. With ``kind: auto`` and no gauge
    found, ``when_missing`` says what happens: ``simulate`` gives the simulated pack (its readings
    say ``simulated``: for a laptop, a demo, a drain test or a bench), ``raise`` a BatteryReadError
    (the appliance on a device, which must never take a simulation for its battery; see
    ``absent.open_device_gauge``).
    """
    opener = _Opener(cfg, pin_factory, clock)
    if cfg.kind == "simulated":
        _LOG.info("battery: simulated pack (configured)")
        return simulated_pack(cfg)
    if cfg.kind == "pisugar":
        client = opener.pisugar(str(cfg.pisugar_socket) if cfg.pisugar_socket is not None else None)
        return _first_reading(cfg, client, f"pisugar-server {client.name.removeprefix('pisugar@')}")
    if cfg.kind != "auto":
        gauge = opener.configured(bus if bus is not None else LazySMBus(cfg.i2c_bus))
        return _first_reading(cfg, gauge, _i2c_where(cfg, gauge))
    return _auto(opener, bus, dev_dir, when_missing)


def _missing(cfg: BatteryConfig, why: str, when_missing: WhenMissing) -> Gauge:
    if when_missing == "raise":
        raise BatteryReadError(f"no battery gauge found: {why}")
    _LOG.warning("battery: %s: this is a SIMULATION, the battery figures are not measured", why)
    return simulated_pack(cfg)


def _auto(opener: _Opener, bus: RegisterBus | None, dev_dir: Path, when_missing: WhenMissing) -> Gauge:
    cfg = opener.cfg
    device = dev_dir / f"i2c-{cfg.i2c_bus}"
    if bus is None and not device.exists():
        return _missing(cfg, f"no {device} (is I2C enabled?)", when_missing)
    the_bus = bus if bus is not None else LazySMBus(cfg.i2c_bus)
    try:
        found = probe_i2c(the_bus)
    except BatteryReadError as exc:
        _LOG.warning("battery: cannot probe %s (%s)", device, exc)
        found = None
    if found is not None:
        _LOG.info("battery: found %s on I2C bus %d", found, cfg.i2c_bus)
        gauge = opener.found(the_bus, found)
        return _first_reading(cfg, gauge, _i2c_where(cfg, gauge))
    the_bus.close()
    candidates: list[str | None] = []
    if cfg.pisugar_socket is not None:
        candidates.append(str(cfg.pisugar_socket))
    elif os.path.exists(DEFAULT_SOCKET):
        candidates.append(DEFAULT_SOCKET)
    candidates.append(None)
    for socket_path in candidates:
        client = opener.pisugar(socket_path)
        if client.probe():
            _LOG.info("battery: pisugar-server answers at %s", client.name)
            return _first_reading(cfg, client, f"pisugar-server {client.name.removeprefix('pisugar@')}")
        client.close()
    return _missing(cfg, f"no UPS HAT answers on I2C bus {cfg.i2c_bus} and no pisugar-server answers",
                    when_missing)
