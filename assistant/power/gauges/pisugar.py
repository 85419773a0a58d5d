"""Battery gauge for PiSugar 2/3: a client of the pisugar-server line protocol (TCP or Unix socket)."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable

from assistant.errors import BatteryReadError
from assistant.messages import BatteryReading
from assistant.power.cutoff import EmptyPoint
from assistant.power.gauges.base import DEFAULT_LIMITS, GaugeBase, PlausibilityLimits, check_plausible, retry_io

_LOG = logging.getLogger(__name__)

DEFAULT_SOCKET = "/tmp/pisugar-server.sock"
"""Where pisugar-server puts its Unix socket by default."""

PISUGAR_3 = "PiSugar 3"
"""``get model`` of a PiSugar 3 (pisugar-core's model.rs; the PiSugar 2 models answer "PiSugar 2 ...")."""
OUTPUT_V = 5.0
"""The PiSugar 3's output rail (V): its ``battery_i`` is the current on that rail, not the cell's."""
EMPTY = EmptyPoint(5.0, 3.30, "board preset pisugar: pisugar-server's curve puts 4.5 % at 3.32 V")


class PiSugarGauge(GaugeBase):
    """Asks a running ``pisugar-server`` for level, voltage, current and power state.

    Protocol: send ``get <name>\\n``, the server answers ``<name>: <value>\\n``. The server pushes
    button events (``single``, ``double``, ``long``) to every connection, so a line that is not
    ``<name>:`` plus a value (events have no colon) or that names another field is skipped. On a
    socket error or timeout the connection is dropped and the whole reading retried on a fresh
    one. The level is the server's voltage-curve figure (``soc_estimated=True``).

    What ``battery_i`` means depends on ``get model``: on a PiSugar 3 it is the unsigned current of
    the 5 V output (pisugar-core reads the MCU's output-current registers), so the reading has no
    pack current; its power is estimated as 5 V x that current while unplugged, and unknown while
    the charger carries the load. On the PiSugar 2 models it is the battery current of the IP5209 /
    IP5312 power chip, signed, + charging (unverified on hardware).
    """

    poll_period_s = 1.0
    """pisugar-server itself samples the board every 500 ms; one reading a second is five requests."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8423,
        socket_path: str | None = None,
        timeout: float = 1.0,
        max_current_a: float = 5.0,
        limits: PlausibilityLimits = DEFAULT_LIMITS,
        retries: int = 2,
        backoff_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.socket_path = socket_path
        self.timeout = timeout
        self.max_current_a = max_current_a
        super().__init__(limits=limits, retries=retries, backoff_s=backoff_s, sleep=sleep, clock=clock,
                         empty_point=EMPTY)
        self.model: str | None = None
        """The server's ``get model`` answer, asked once per connection."""
        self._sock: socket.socket | None = None
        self._buffer = b""
        self.name = f"pisugar@{socket_path}" if socket_path else f"pisugar@{host}:{port}"

    def _connect(self) -> socket.socket:
        if self._sock is None:
            if self.socket_path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self.socket_path)
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.settimeout(self.timeout)
            self._sock = sock
            self._buffer = b""
            _LOG.debug("%s: connected", self.name)
        return self._sock

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
            self._buffer = b""
            self.model = None

    def _line(self, sock: socket.socket) -> str:
        while b"\n" not in self._buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionResetError(f"{self.name}: server closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", errors="replace").strip()

    def _get(self, name: str) -> str:
        """Send ``get name`` and return the value of the matching reply, skipping pushed events."""
        sock = self._connect()
        try:
            sock.sendall(f"get {name}\n".encode())
            deadline = time.monotonic() + 5 * self.timeout
            while True:
                if time.monotonic() > deadline:  # a server that only pushes events must not hang the meter
                    raise TimeoutError(f"no '{name}' reply within {5 * self.timeout:.1f} s")
                line = self._line(sock)
                key, sep, value = line.partition(":")
                if sep and key.strip() == name:
                    return value.strip()
                _LOG.debug("%s: skipped line %r while waiting for %s", self.name, line, name)
        except OSError:
            self._drop()
            raise

    def _get_all(self) -> dict[str, str]:
        if self.model is None:
            self.model = self._get("model")
            _LOG.info("%s: model %r", self.name, self.model)
        names = ("battery", "battery_v", "battery_i", "battery_power_plugged", "battery_charging")
        return {name: self._get(name) for name in names}

    @property
    def output_current_only(self) -> bool:
        """The board reports the current of its 5 V output, not of the cell (PiSugar 3)."""
        return (self.model or "").startswith(PISUGAR_3)

    def probe(self) -> bool:
        """True when a server answers ``get battery`` (used by auto-detection)."""
        with self._lock:
            try:
                self._get("battery")
                return True
            except OSError as exc:
                _LOG.debug("%s: no server: %s", self.name, exc)
                self._drop()
                return False

    def read(self) -> BatteryReading:
        """One reading; BatteryReadError when the server cannot be reached or its numbers are bad."""
        with self._lock:
            values = retry_io(
                self._get_all, what=self.name, retries=self.retries, backoff_s=self.backoff_s, sleep=self._sleep
            )
            t = self._clock()
        level = self._required(values, "battery")
        voltage = self._required(values, "battery_v")
        current = self._optional(values, "battery_i")
        plugged = self._flag(values["battery_power_plugged"])
        power: float | None = voltage * current if current is not None else None
        estimated = False
        if self.output_current_only:
            output_a, current = current, None
            power, estimated = None, True
            if output_a is not None and plugged is False:
                power = -OUTPUT_V * abs(output_a)  # the pack feeds the output rail (converter loss not known)
        reading = BatteryReading(
            t_monotonic=t,
            voltage_v=voltage,
            current_a=current,
            power_w=power,
            soc_pct=level,
            charging=self._flag(values["battery_charging"]),
            external_power=plugged,
            source=self.name,
            soc_estimated=True,
            power_estimated=estimated,
            cell_voltage_v=voltage,
        )
        return check_plausible(reading, cells_in_series=1, limits=self.limits, board_max_current_a=self.max_current_a)

    def _required(self, values: dict[str, str], name: str) -> float:
        try:
            return float(values[name])
        except ValueError:
            _LOG.warning("%s: '%s' answered %r, not a number", self.name, name, values[name])
            raise BatteryReadError(f"{self.name}: 'get {name}' answered {values[name]!r}, not a number") from None

    def _optional(self, values: dict[str, str], name: str) -> float | None:
        try:
            return float(values[name])
        except ValueError:
            _LOG.debug("%s: '%s' not available (%r)", self.name, name, values[name])
            return None

    @staticmethod
    def _flag(value: str) -> bool | None:
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return None

    def close(self) -> None:
        """Close the connection to the server."""
        with self._lock:
            self._drop()
