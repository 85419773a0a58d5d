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
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def texts(self, settle: float = 0.1) -> list[str]:
        time.sleep(settle)
        return [m for _, m in self.messages]

    def pings(self) -> list[float]:
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
    assert notifier.extend_timeout(90)
    assert notifier.stopping()
    notifier.close()
    assert receiver.texts() == [
        "READY=1\nSTATUS=models loaded",
        "STATUS=listening WATCHDOG=1",
        "EXTEND_TIMEOUT_USEC=90000000",
        "STOPPING=1",
    ]


def test_abstract_namespace_socket() -> None:
    name = f"assistant-test-{uuid.uuid4().hex}"
    receiver = Receiver("\0" + name)
    try:
        notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert notifier.address == "\0" + name
        assert notifier.ready()
        assert receiver.texts() == ["READY=1"]
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
    assert receiver.texts(0.3) == []


def test_pings_follow_heartbeats_and_stop_when_they_stop(socket_path: tuple[str, Receiver]) -> None:
    path, receiver = socket_path
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})  # ping every 0.1 s
    watchdog = Watchdog(notifier, heartbeat_max_s=0.3)
    assert watchdog.start()
    try:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:  # a healthy main loop
            watchdog.heartbeat()
            time.sleep(0.05)
        last_beat = time.monotonic()
        assert len(receiver.pings()) >= 4
        time.sleep(0.9)  # the loop hangs
        pings = receiver.pings()
        assert pings[-1] - last_beat <= 0.3 + 0.1 + 0.15  # at most one interval past the heartbeat limit
        assert time.monotonic() - pings[-1] >= 0.3  # and none since
        assert "STATUS=stalled: main loop not responding" in receiver.texts(0)
        watchdog.heartbeat()  # it recovers
        time.sleep(0.25)
        assert receiver.pings()[-1] > pings[-1]
    finally:
        watchdog.stop()
    assert watchdog.pings == len(receiver.pings())


def test_busy_budget_keeps_pings_going_then_runs_out(socket_path: tuple[str, Receiver]) -> None:
    path, receiver = socket_path
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    watchdog = Watchdog(notifier, heartbeat_max_s=0.15)
    assert watchdog.start()
    try:
        start = time.monotonic()
        with watchdog.busy(0.6):  # a long inference, no heartbeats
            time.sleep(1.2)
            during = receiver.pings()
        assert during[-1] - start >= 0.5  # pinged well past heartbeat_max_s, thanks to the budget
        assert during[-1] - start <= 0.6 + 0.1 + 0.15  # but not past the budget
        time.sleep(0.25)
        assert receiver.pings()[-1] > start + 1.2  # leaving the block counts as a heartbeat
    finally:
        watchdog.stop()


def test_send_failure_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert notifier.ready() is False
    assert notifier.watchdog() is False
