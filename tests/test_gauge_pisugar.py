"""Tests of the PiSugar client against real loopback servers (TCP and Unix socket) speaking the protocol."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.errors import BatteryReadError
from assistant.sim.chips.pisugar import PiSugarServerEmulator
from assistant.power.gauges.pisugar import PiSugarGauge


@pytest.fixture
def tcp_server() -> Iterator[PiSugarServerEmulator]:
    server = PiSugarServerEmulator(tcp_host="127.0.0.1", tcp_port=0).start()
    yield server
    server.stop()


@pytest.fixture
def uds_server(tmp_path: Path) -> Iterator[PiSugarServerEmulator]:
    server = PiSugarServerEmulator(tcp_host=None, socket_path=str(tmp_path / "pisugar-server.sock")).start()
    yield server
    server.stop()


def _tcp_gauge(server: PiSugarServerEmulator, **kw: object) -> PiSugarGauge:
    assert server.tcp_address is not None
    host, port = server.tcp_address
    kw.setdefault("timeout", 1.0)
    return PiSugarGauge(host=host, port=port, sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def test_tcp_reading_skips_interleaved_button_events(tcp_server: PiSugarServerEmulator) -> None:
    tcp_server.events_before_reply = ["single", "double"]
    tcp_server.model = "PiSugar 2 (4-LEDs)"  # an IP5209: battery_i is the signed battery current
    gauge = _tcp_gauge(tcp_server)
    reading = gauge.read()
    assert reading.soc_pct == 87.5 and reading.voltage_v == 4.02 and reading.current_a == -0.42
    assert reading.power_w == pytest.approx(4.02 * -0.42) and not reading.power_estimated
    assert reading.external_power is False and reading.charging is False
    assert reading.soc_estimated and reading.source.startswith("pisugar@127.0.0.1:")
    assert gauge.model == "PiSugar 2 (4-LEDs)"
    assert tcp_server.requests == [
        "get model",
        "get battery",
        "get battery_v",
        "get battery_i",
        "get battery_power_plugged",
        "get battery_charging",
    ]
    gauge.close()


def test_unix_socket_reading_with_events_pushed_between_replies(uds_server: PiSugarServerEmulator) -> None:
    assert uds_server.socket_path is not None
    gauge = PiSugarGauge(socket_path=uds_server.socket_path, timeout=1.0)
    uds_server.events_before_reply = ["long"]
    uds_server.plugged, uds_server.charging, uds_server.battery, uds_server.battery_v = True, True, 42.25, 3.81
    uds_server.battery_i = 0.9
    uds_server.model = "PiSugar 2 Pro"
    reading = gauge.read()
    assert reading.soc_pct == 42.25 and reading.voltage_v == 3.81 and reading.current_a == 0.9
    assert reading.charging is True and reading.external_power is True
    uds_server.events_before_reply = []
    for _ in range(3):
        uds_server.push_event("single")  # unsolicited, between two readings
    time.sleep(0.05)
    assert gauge.read().soc_pct == 42.25
    assert gauge.name == f"pisugar@{uds_server.socket_path}"
    gauge.close()


def test_reconnects_after_the_server_drops_the_connection(tcp_server: PiSugarServerEmulator) -> None:
    gauge = _tcp_gauge(tcp_server, retries=2)
    gauge.read()
    tcp_server.drop_next(1)
    tcp_server.battery = 55.0
    assert gauge.read().soc_pct == 55.0


def test_gives_up_when_no_server(tcp_server: PiSugarServerEmulator) -> None:
    gauge = _tcp_gauge(tcp_server, retries=1)
    tcp_server.stop()
    with pytest.raises(BatteryReadError, match=r"pisugar@127\.0\.0\.1:\d+: read failed after 2 attempts"):
        gauge.read()
    assert not gauge.probe()


def test_model_without_current_reading(tcp_server: PiSugarServerEmulator) -> None:
    tcp_server.model = "PiSugar 2 (2-LEDs)"
    tcp_server.battery_i = None  # battery_i answers with no value
    reading = _tcp_gauge(tcp_server).read()
    assert reading.current_a is None and reading.power_w is None


def test_pisugar3_output_current_is_not_a_charging_pack(tcp_server: PiSugarServerEmulator) -> None:
    """On a PiSugar 3 ``battery_i`` is the unsigned current of its 5 V output (pisugar-core's
    ``read_output_current``): read as a pack current it said "charging" on battery, so every turn
    was booked 0 J "measured" and the power source read external."""
    from assistant.power.cutoff import power_source
    from assistant.power.energy import EnergyMeter

    assert tcp_server.model == "PiSugar 3"
    tcp_server.output_a = 1.2
    gauge = _tcp_gauge(tcp_server)
    r = gauge.read()
    assert r.current_a is None and r.power_estimated
    assert r.power_w == pytest.approx(-6.0)  # the pack feeds about 5 V x 1.2 A
    assert power_source(r) == "battery"
    now = [0.0]
    meter = EnergyMeter(gauge, usable_energy_j=10_000.0, clock=lambda: now[0])
    for _ in range(11):
        meter.add_reading(replace(gauge.read(), t_monotonic=now[0]))
        now[0] += 0.1
    span = meter.between(meter.mark(), meter.mark())
    assert meter.total_j == pytest.approx(6.0, rel=0.01) and not span.measured
    tcp_server.plugged = True
    plugged = gauge.read()
    assert plugged.power_w is None and plugged.external_power is True and power_source(plugged) == "external"


def test_bad_values_are_refused(tcp_server: PiSugarServerEmulator) -> None:
    gauge = _tcp_gauge(tcp_server)
    tcp_server.battery_v = 12.0  # a single cell cannot be at 12 V
    with pytest.raises(BatteryReadError, match=r"voltage 12\.000 V outside 2\.50\.\.4\.40 V"):
        gauge.read()
    tcp_server.battery_v = 3.9
    tcp_server.battery = float("nan")
    with pytest.raises(BatteryReadError, match="state of charge nan"):
        gauge.read()


def test_not_a_number_is_refused() -> None:
    server = PiSugarServerEmulator().start()
    try:
        real_answer = server.answer
        server.answer = (  # type: ignore[method-assign]
            lambda request: "battery: error" if request == "get battery" else real_answer(request)
        )
        gauge = _tcp_gauge(server, timeout=0.3, retries=0)
        with pytest.raises(BatteryReadError, match="'get battery' answered 'error', not a number"):
            gauge.read()
    finally:
        server.stop()


def test_fragmented_replies_and_stale_lines_from_a_hand_written_server() -> None:
    """A raw server that splits replies over several writes and sends unrelated lines first."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    values = {
        "model": "PiSugar 2 (4-LEDs)",
        "battery": "12.5",
        "battery_v": "3.55",
        "battery_i": "-0.3",
        "battery_power_plugged": "false",
        "battery_charging": "false",
    }

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            buffer = b""
            while True:
                data = conn.recv(1024)
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    name = line.decode().split()[1]
                    reply = f"model: PiSugar 2\ndouble\n{name}: {values[name]}\n".encode()
                    for i in range(0, len(reply), 3):
                        conn.sendall(reply[i : i + 3])
                        time.sleep(0.001)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        reading = PiSugarGauge(port=port, timeout=1.0).read()
    finally:
        listener.close()
    assert reading.soc_pct == 12.5 and reading.voltage_v == 3.55 and reading.current_a == -0.3
    thread.join(timeout=2)
