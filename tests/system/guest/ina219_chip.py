"""System bench, inside the guest: make an i2c-stub register file behave as a Waveshare UPS HAT (B)'s
INA219, so that the appliance's real driver reads it through /dev/i2c-N with smbus2 as on a Pi.

i2c-stub stores one 16-bit word per register and nothing more. This process plays the chip's part
around it, with the register semantics of the appliance's chip model
(``assistant.sim.chips.ina219.EmulatedIna219``: datasheet arithmetic, CALIBRATION bit 0,
CONFIG reset, conversion timing):

- what the driver writes (CONFIG, CALIBRATION) is taken from the stub into the chip model;
- what the chip measures (SHUNT_VOLTAGE, BUS_VOLTAGE, CURRENT, POWER) is computed by the model from
  the pack state in the state file and written into the stub, most significant byte first on the
  wire, i.e. byte-swapped in SMBus words, as the real chip sends them;
- a reset (the state file's ``resets`` counter going up, as a load spike does) puts every register
  back to its power-on value, so the driver must see it and reconfigure the chip.

State file (JSON, rewritten by the host at any time):
``{"voltage_v": 7.6, "current_a": -0.8, "resets": 0}`` (current > 0 charges the pack).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from smbus2 import SMBus

from assistant.sim.chips.ina219 import (
    REG_BUS,
    REG_CALIBRATION,
    REG_CONFIG,
    REG_CURRENT,
    REG_POWER,
    REG_SHUNT,
    EmulatedIna219,
)

SHUNT_OHMS = 0.1
"""UPS HAT (B): 0.1 ohm shunt (Waveshare's set_calibration_32V_2A)."""
PERIOD_S = 0.05
"""How often the registers follow the state; the chip itself converts every 34 ms at 32x averaging."""


def swap16(value: int) -> int:
    return ((value & 0xFF) << 8) | (value >> 8)


class StubChip:
    """The chip model, mirrored to and from the stub's registers."""

    def __init__(self, bus: SMBus, address: int) -> None:
        self.bus = bus
        self.address = address
        self.model = EmulatedIna219(shunt_ohms=SHUNT_OHMS)
        self.resets = 0

    def _stub_read(self, register: int) -> int:
        return swap16(self.bus.read_word_data(self.address, register))

    def _stub_write(self, register: int, value: int) -> None:
        self.bus.write_word_data(self.address, register, swap16(value & 0xFFFF))

    def _model_read(self, register: int) -> int:
        data = self.model.bus_read(self.address, register, 2)
        return (data[0] << 8) | data[1]

    def _model_write(self, register: int, value: int) -> None:
        self.model.bus_write(self.address, register, bytes([value >> 8, value & 0xFF]))

    def power_on(self) -> None:
        """Every register at its power-on value, in the model and in the stub."""
        self.model.brownout()
        for register in (REG_CONFIG, REG_CALIBRATION):
            self._stub_write(register, self._model_read(register))

    def follow(self, state: dict[str, float]) -> None:
        """One round: take the driver's writes, then publish a conversion of the present state."""
        resets = int(state.get("resets", 0))
        if resets > self.resets:
            self.resets = resets
            self.power_on()
        config = self._stub_read(REG_CONFIG)
        if config != self.model.config:
            self._model_write(REG_CONFIG, config)
            if config & 0x8000:  # the RST bit: the chip resets and the bit clears itself
                self._stub_write(REG_CONFIG, self.model.config)
                self._stub_write(REG_CALIBRATION, self.model.calibration)
        calibration = self._stub_read(REG_CALIBRATION)
        if calibration != self.model.calibration:
            self._model_write(REG_CALIBRATION, calibration)
            if self.model.calibration != calibration:  # bit 0 is not implemented and reads 0
                self._stub_write(REG_CALIBRATION, self.model.calibration)
        self.model.set_state(pack_voltage_v=float(state["voltage_v"]), current_a=float(state["current_a"]))
        for register in (REG_SHUNT, REG_BUS, REG_CURRENT, REG_POWER):
            self._stub_write(register, self._model_read(register))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", type=int, required=True, help="I2C bus number of the stub")
    parser.add_argument("--address", type=lambda s: int(s, 0), default=0x42)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--ready", type=Path, help="touched once the registers hold a first conversion")
    args = parser.parse_args()
    with SMBus(args.bus) as bus:
        chip = StubChip(bus, args.address)
        chip.power_on()
        stamp: float | None = None
        state: dict[str, float] = {}
        while True:
            try:
                mtime = os.stat(args.state).st_mtime
                if mtime != stamp:
                    state = json.loads(args.state.read_text())
                    stamp = mtime
            except (OSError, ValueError):
                pass  # a state file being rewritten: keep the last one
            if state:
                chip.follow(state)
                if args.ready is not None and not args.ready.exists():
                    args.ready.touch()
            time.sleep(PERIOD_S)


if __name__ == "__main__":
    main()
