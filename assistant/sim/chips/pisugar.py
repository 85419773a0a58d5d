"""An emulated pisugar-server: the line protocol over TCP and/or a Unix socket, with pushed button events."""

from __future__ import annotations

import contextlib
import logging
import os
import socketserver
import threading
from collections.abc import Callable
from io import BufferedIOBase

from assistant.messages import BatteryReading

_LOG = logging.getLogger(__name__)


class _Handler(socketserver.StreamRequestHandler):
    server: _TcpServer | _UnixServer

    def handle(self) -> None:
        owner = self.server.owner
        owner.register_client(self.wfile)
        try:
            for raw in self.rfile:
                request = raw.decode("utf-8", errors="replace").strip()
                if not request:
                    continue
                if owner.take_drop():
                    _LOG.debug("pisugar emulation: dropping the connection on %r", request)
                    return
                reply = owner.answer(request)
                lines = [*owner.events_before_reply, *([reply] if reply is not None else [])]
                owner.send(self.wfile, lines)
        except OSError as exc:
            _LOG.debug("pisugar emulation: connection ended: %s", exc)
        finally:
            owner.unregister_client(self.wfile)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: PiSugarServerEmulator


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    owner: PiSugarServerEmulator


class PiSugarServerEmulator:
    """Speaks pisugar-server's protocol: ``get <name>`` answered by ``<name>: <value>``.

    State: ``battery`` (%), ``battery_v`` (V), ``plugged``, ``charging``, ``model`` and the current
    behind ``get battery_i``, which depends on the model, as in pisugar-core:

    - ``PiSugar 3`` (the default): ``output_a``, the unsigned current of the 5 V output (the MCU's
      output-current registers / 1000), whichever source feeds it;
    - a ``PiSugar 2 ...`` model: ``battery_i``, the signed battery current of its IP5209/IP5312
      (+ charging); None answers an empty value.

    ``events_before_reply`` are pushed before every answer (e.g. ``["single"]``), ``push_event()``
    sends one to every open connection at once, ``drop_next(n)`` closes the connection instead of
    answering the next n requests. ``state_source`` (e.g. ``SimulatedPack.read``) feeds the state.
    """

    def __init__(
        self, *, tcp_host: str | None = "127.0.0.1", tcp_port: int = 0, socket_path: str | None = None
    ) -> None:
        self.battery = 87.5
        self.battery_v = 4.02
        self.battery_i: float | None = -0.42
        self.output_a = 0.85
        self.plugged = False
        self.charging = False
        self.model = "PiSugar 3"
        self.events_before_reply: list[str] = []
        self.state_source: Callable[[], BatteryReading] | None = None
        self.requests: list[str] = []
        self._drops = 0
        self._lock = threading.Lock()
        self._clients: list[BufferedIOBase] = []
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self.tcp_address: tuple[str, int] | None = None
        self.socket_path = socket_path
        if tcp_host is not None:
            tcp = _TcpServer((tcp_host, tcp_port), _Handler)
            tcp.owner = self
            host, port = tcp.server_address[:2]
            self.tcp_address = (str(host), int(port))
            self._servers.append(tcp)
        if socket_path is not None:
            uds = _UnixServer(socket_path, _Handler)
            uds.owner = self
            self._servers.append(uds)

    def start(self) -> PiSugarServerEmulator:
        """Serve in background threads; returns self."""
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="pisugar-emulator", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close every socket."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)

    def drop_next(self, count: int) -> None:
        """Close the connection instead of answering the next ``count`` requests."""
        with self._lock:
            self._drops = count

    def push_event(self, event: str) -> None:
        """Send a button event line (``single``, ``double``, ``long``) to every connection now."""
        with self._lock:
            clients = list(self._clients)
        for wfile in clients:
            self.send(wfile, [event])

    def answer(self, request: str) -> str | None:
        """The server's reply line to one request (None: no reply, as for an unknown command)."""
        self.requests.append(request)
        if self.state_source is not None:
            reading = self.state_source()
            self.battery = reading.soc_pct if reading.soc_pct is not None else self.battery
            self.battery_v = reading.voltage_v
            self.battery_i = reading.current_a
            if reading.power_w is not None and reading.power_w < 0:  # the pack feeds the 5 V output
                self.output_a = -reading.power_w / 5.0
            self.plugged = bool(reading.external_power)
            self.charging = bool(reading.charging)
        parts = request.split()
        if len(parts) != 2 or parts[0] != "get":
            return None
        name = parts[1]
        values: dict[str, str] = {
            "battery": f"{self.battery}",
            "battery_v": f"{self.battery_v}",
            "battery_i": self._battery_i(),
            "battery_power_plugged": "true" if self.plugged else "false",
            "battery_charging": "true" if self.charging else "false",
            "model": self.model,
        }
        if name not in values:
            return None
        return f"{name}: {values[name]}"

    def _battery_i(self) -> str:
        if self.model.startswith("PiSugar 3"):
            return f"{abs(self.output_a)}"
        return "" if self.battery_i is None else f"{self.battery_i}"

    def send(self, wfile: BufferedIOBase, lines: list[str]) -> None:
        """Write whole lines to one connection; one writer at a time, so lines never interleave."""
        with self._lock:
            try:
                for line in lines:
                    wfile.write(f"{line}\n".encode())
                wfile.flush()
            except OSError:
                _LOG.debug("pisugar emulation: a client went away")

    def take_drop(self) -> bool:
        """True (once per pending drop) when the next request should close the connection instead."""
        with self._lock:
            if self._drops > 0:
                self._drops -= 1
                return True
            return False

    def register_client(self, wfile: BufferedIOBase) -> None:
        """Remember a connection, so that pushed events reach it."""
        with self._lock:
            self._clients.append(wfile)

    def unregister_client(self, wfile: BufferedIOBase) -> None:
        """Forget a closed connection."""
        with self._lock:
            if wfile in self._clients:
                self._clients.remove(wfile)
