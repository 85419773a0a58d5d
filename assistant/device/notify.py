"""systemd readiness, status and watchdog notifications (the sd_notify protocol, no dependency)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

_LOG = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends ``KEY=VALUE`` datagrams to the socket systemd names in ``$NOTIFY_SOCKET``.

    A leading ``@`` in the address means Linux's abstract namespace. ``$WATCHDOG_USEC`` gives the
    watchdog timeout; when ``$WATCHDOG_PID`` is set it must be this process, or the watchdog is
    someone else's and stays off here. Without ``$NOTIFY_SOCKET`` (a terminal, the tests) every
    call is a no-op. Sending never raises: a failure is logged once and reported as False.
    """

    def __init__(self, *, environ: Mapping[str, str] = os.environ, pid: int | None = None) -> None:
        """``environ``: where to read the variables; ``pid``: this process (default ``os.getpid()``)."""
        raw = environ.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        """Socket address, with ``@`` already turned into the abstract-namespace NUL."""
        if raw.startswith("@"):
            self.address = "\0" + raw[1:]
        elif raw.startswith("/"):
            self.address = raw
        elif raw:
            _LOG.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract address; notifications off", raw)
        self.watchdog_usec: int | None = self._watchdog_usec(environ, os.getpid() if pid is None else pid)
        """The watchdog timeout systemd set for this process (µs), None when there is none."""
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False

    @staticmethod
    def _watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
        raw = environ.get("WATCHDOG_USEC")
        if not raw:
            return None
        try:
            usec = int(raw)
        except ValueError:
            _LOG.warning("WATCHDOG_USEC=%r is not a number; watchdog off", raw)
            return None
        owner = environ.get("WATCHDOG_PID")
        if owner:
            try:
                owner_pid = int(owner)
            except ValueError:
                _LOG.warning("WATCHDOG_PID=%r is not a number; watchdog off", owner)
                return None
            if owner_pid != pid:
                _LOG.info("WATCHDOG_PID %d is not this process (%d); watchdog off", owner_pid, pid)
                return None
        return usec if usec > 0 else None

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notification socket."""
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half the watchdog timeout (s); None without a watchdog."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; True if sent, False if off or it failed."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self.address)
            except OSError as exc:
                if not self._failed:
                    _LOG.warning("cannot notify systemd at %r: %s", self.address.replace("\0", "@"), exc)
                    self._failed = True
                return False
        self._failed = False
        return True

    @staticmethod
    def _text(text: str) -> str:
        return " ".join(text.split())  # one line: a newline would start a new assignment

    def ready(self, status: str | None = None) -> bool:
        """Startup is complete (models loaded, microphone open)."""
        return self.notify("READY=1", *([f"STATUS={self._text(status)}"] if status else []))

    def status(self, text: str) -> bool:
        """A one-line status that ``systemctl status`` shows."""
        return self.notify(f"STATUS={self._text(text)}")

    def stopping(self, status: str | None = None) -> bool:
        """The service is shutting down."""
        return self.notify("STOPPING=1", *([f"STATUS={self._text(status)}"] if status else []))

    def watchdog(self) -> bool:
        """Keep-alive ping: the service is healthy."""
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket (it is reopened if anything is sent later)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class Watchdog:
    """Pings systemd's watchdog only while the main loop proves it is alive.

    A thread wakes every ``WATCHDOG_USEC / 2`` and sends ``WATCHDOG=1`` if ``heartbeat()`` was
    called within ``heartbeat_max_s`` (the appliance's loop beats while a turn runs in its worker, up
    to ``service.turn_budget_s``). A loop that hangs stops the pings, and systemd kills and restarts
    the service once ``WatchdogSec`` passes without one. Without a systemd watchdog, ``start()``
    starts nothing. The thread sleeps on an Event between pings; ``stop()`` wakes it at once.
    """

    def __init__(self, notifier: SystemdNotifier, *, heartbeat_max_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``heartbeat_max_s``: the longest the main loop may stay silent (s)."""
        if heartbeat_max_s <= 0:
            raise ValueError(f"heartbeat_max_s must be positive, got {heartbeat_max_s}")
        self.notifier = notifier
        self.heartbeat_max_s = heartbeat_max_s
        self.pings = 0
        """Pings sent so far."""
        self._clock = clock
        self._lock = threading.Lock()
        self._last_beat = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._withheld = False

    def start(self) -> bool:
        """Start pinging; False (and no thread) when systemd set no watchdog for this process."""
        interval = self.notifier.watchdog_interval_s
        if interval is None or not self.notifier.enabled:
            _LOG.debug("no systemd watchdog for this process")
            return False
        if self._thread is not None:
            return True
        if self.heartbeat_max_s > 2 * interval:
            _LOG.warning("heartbeat_max_s %.1f s exceeds WatchdogSec %.1f s: a hung loop is noticed late",
                         self.heartbeat_max_s, 2 * interval)
        self._stop.clear()
        self.heartbeat()
        self._thread = threading.Thread(target=self._run, args=(interval,), name="systemd-watchdog", daemon=True)
        self._thread.start()
        return True

    def heartbeat(self) -> None:
        """The main loop is alive; call it every turn of the loop."""
        with self._lock:
            self._last_beat = self._clock()

    def healthy(self) -> bool:
        """True when a heartbeat is recent enough."""
        now = self._clock()
        with self._lock:
            return now - self._last_beat <= self.heartbeat_max_s

    def tick(self) -> bool:
        """One wake of the pinger: ping when the loop is healthy, else withhold (and say so once).
        True when a ping was sent. The thread calls it every interval; a test may call it itself."""
        if self.healthy():
            if self._withheld:
                _LOG.info("main loop alive again; watchdog pings resume")
                self._withheld = False
            if self.notifier.watchdog():
                self.pings += 1
                return True
        elif not self._withheld:
            _LOG.error("main loop silent for more than %.0f s; withholding watchdog pings so systemd "
                       "restarts the service", self.heartbeat_max_s)
            self.notifier.status("stalled: main loop not responding")
            self._withheld = True
        return False

    def _run(self, interval: float) -> None:
        while True:
            self.tick()
            if self._stop.wait(interval):
                return

    def stop(self) -> None:
        """Stop pinging and wait for the thread; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
