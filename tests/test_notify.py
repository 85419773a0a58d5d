"""sd_notify over a real AF_UNIX datagram socket: readiness, status, and a watchdog that needs heartbeats."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.device.notify import SystemdNotifier, Watchdog


class Receiver:
    """Plays systemd's side: a bound datagram socket and a thread that timestamps what arrives."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._arrived:
                self.messages.append((time.monotonic(), data.decode()))
                self._arrived.notify_all()

    def texts(self, count: int = 0, timeout: float = 5.0) -> list[str]:
        """Every message so far, once at least ``count`` have arrived (or ``timeout`` s passed)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            return [m for _, m in self.messages]

    def wait(self, timeout: float) -> None:
        """Until the next message arrives, or ``timeout`` s."""
        with self._arrived:
            seen = len(self.messages)
            self._arrived.wait_for(lambda: len(self.messages) > seen, timeout)

    def pings(self) -> list[float]:
        with self._arrived:
            return [t for t, m in self.messages if m == "WATCHDOG=1"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[tuple[str, Receiver]]:
    path = str(tmp_path / "notify.sock")
    receiver = Receiver(path)
    yield path, receiver
    receiver.close()


def test_ready_status_stopping_arrive(socket_path: tuple[str, Receiver]) -> None:
    path, receiver = socket_path
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path})
    assert notifier.enabled and notifier.watchdog_interval_s is None
    assert notifier.ready(status="models loaded")
    assert notifier.status("listening\nWATCHDOG=1")  # a newline cannot smuggle in another assignment
    assert notifier.stopping()
    notifier.close()
    assert receiver.texts(3) == [
        "READY=1\nSTATUS=models loaded",
        "STATUS=listening WATCHDOG=1",
        "STOPPING=1",
    ]


def test_abstract_namespace_socket() -> None:
    name = f"assistant-test-{uuid.uuid4().hex}"
    receiver = Receiver("\0" + name)
    try:
        notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert notifier.address == "\0" + name
        assert notifier.ready()
        assert receiver.texts(1) == ["READY=1"]
    finally:
        receiver.close()


def test_everything_is_a_no_op_without_systemd() -> None:
    notifier = SystemdNotifier(environ={})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.status("x") and not notifier.watchdog()
    assert not notifier.stopping()
    watchdog = Watchdog(notifier, heartbeat_max_s=1.0)
    assert watchdog.start() is False
    watchdog.stop()


def test_watchdog_variables() -> None:
    me = os.getpid()
    on = SystemdNotifier(environ={"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"})
    assert on.watchdog_usec == 30_000_000 and on.watchdog_interval_s == 15.0
    mine = SystemdNotifier(environ={"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(me)})
    assert mine.watchdog_interval_s == 15.0
    other = SystemdNotifier(environ={"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000",
                                     "WATCHDOG_PID": str(me + 1)})
    assert other.watchdog_usec is None and other.enabled  # notifications still work, the watchdog is not ours
    assert SystemdNotifier(environ={"WATCHDOG_USEC": "abc"}).watchdog_usec is None
    assert SystemdNotifier(environ={"WATCHDOG_USEC": "0"}).watchdog_usec is None
    assert not SystemdNotifier(environ={"NOTIFY_SOCKET": "relative/path"}).enabled


def test_watchdog_pid_mismatch_starts_no_pinger(socket_path: tuple[str, Receiver]) -> None:
    path, receiver = socket_path
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid() + 1)}
    watchdog = Watchdog(SystemdNotifier(environ=env), heartbeat_max_s=1.0)
    assert watchdog.start() is False
    assert watchdog._thread is None  # no thread: nothing pings a watchdog that is not ours


def test_pings_follow_heartbeats_and_stop_when_they_stop(socket_path: tuple[str, Receiver]) -> None:
    """On a fake clock: pings while the loop beats, none once its last beat is older than the limit
    (systemd then restarts the service), and again once it beats."""
    path, receiver = socket_path
    now = [100.0]
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    watchdog = Watchdog(notifier, heartbeat_max_s=0.3, clock=lambda: now[0])
    sent = []
    for step in range(12):  # a healthy loop for 0.6 s, then it hangs for 0.6 s
        now[0] = 100.0 + 0.1 * step
        if step < 6:
            watchdog.heartbeat()
        sent.append(watchdog.tick())
    assert sent == [True] * 6 + [True, True, True, False, False, False]  # the last beat was at 100.5
    assert receiver.texts(10).count("STATUS=stalled: main loop not responding") == 1  # said once
    assert watchdog.pings == 9 == len(receiver.pings())
    watchdog.heartbeat()  # it recovers
    assert watchdog.tick() is True


def test_the_pinger_thread_pings_and_stops(socket_path: tuple[str, Receiver]) -> None:
    path, receiver = socket_path
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # ping every 0.05 s
    watchdog = Watchdog(notifier, heartbeat_max_s=60.0)
    assert watchdog.start()
    try:
        deadline = time.monotonic() + 10
        while len(receiver.pings()) < 3 and time.monotonic() < deadline:
            watchdog.heartbeat()
            receiver.wait(0.1)
        assert len(receiver.pings()) >= 3
    finally:
        watchdog.stop()
    assert watchdog.pings == len(receiver.texts(watchdog.pings))


def test_send_failure_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert notifier.ready() is False
    assert notifier.watchdog() is False
