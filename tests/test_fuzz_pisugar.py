"""Fuzzing the PiSugar protocol reader: whatever a pisugar-server sends back gives a plausible reading or a
BatteryReadError, never another exception or a hang."""

from __future__ import annotations

import math
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.errors import AssistantError, BatteryReadError
from assistant.messages import BatteryReading
from assistant.power.gauges.base import DEFAULT_LIMITS
from assistant.power.gauges.pisugar import PiSugarGauge
from fuzzing import result_or_our_error

FIELDS = ("battery", "battery_v", "battery_i", "battery_power_plugged", "battery_charging", "model", "single")

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "1_0", "0x10", "", " ", "true", "false", "None", "4.1.2",
                     "\u0663.\u0661", "٣", "+-1"]),
)
values = st.one_of(numbers, st.text(max_size=40))
lines = st.one_of(
    st.builds(lambda k, sep, v: f"{k}{sep}{v}", st.sampled_from(FIELDS), st.sampled_from([": ", ":", " : ", "::"]),
              values),
    st.sampled_from(["single", "double", "long", "", "battery", ":"]),
    st.text(max_size=60).filter(lambda t: "\n" not in t),
)


class ScriptedGauge(PiSugarGauge):
    """The real client, connected to a socket whose far end has sent ``reply`` and then ended its side
    (it still takes the requests, so only reading past ``reply`` finds the end of the stream)."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(socket_path="/fuzz/pisugar.sock", timeout=0.5, retries=2, backoff_s=0.0,
                         sleep=lambda s: None)
        self.reply = reply
        self.connections = 0
        self.servers: list[socket.socket] = []

    def _connect(self) -> socket.socket:
        if self._sock is None:
            ours, server = socket.socketpair()
            ours.settimeout(self.timeout)
            server.sendall(self.reply)
            server.shutdown(socket.SHUT_WR)
            self.servers.append(server)
            self._sock, self._buffer = ours, b""
            self.connections += 1
        return self._sock

    def close(self) -> None:
        super().close()
        for server in self.servers:
            server.close()


def check(outcome: BatteryReading | AssistantError) -> None:
    if isinstance(outcome, AssistantError):
        assert isinstance(outcome, BatteryReadError), outcome
        return
    assert 0.0 <= (outcome.soc_pct or 0.0) <= 100.0
    assert DEFAULT_LIMITS.min_cell_v <= outcome.voltage_v <= DEFAULT_LIMITS.max_cell_v
    for value in (outcome.current_a, outcome.power_w):
        assert value is None or math.isfinite(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=14), st.booleans())
def test_arbitrary_server_lines(script: list[str], trailing_newline: bool) -> None:
    reply = "\n".join(script) + ("\n" if trailing_newline else "")
    gauge = ScriptedGauge(reply.encode("utf-8", "surrogatepass"))
    check(result_or_our_error(gauge.read))
    gauge.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_arbitrary_server_bytes(reply: bytes) -> None:
    gauge = ScriptedGauge(reply)
    check(result_or_our_error(gauge.read))
    gauge.close()


ANSWERED = ("model", "battery", "battery_v", "battery_i", "battery_power_plugged", "battery_charging")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(*[st.tuples(st.lists(lines, max_size=2), values) for _ in ANSWERED]))
def test_answers_in_order_with_arbitrary_values_and_pushed_lines(answers: tuple[tuple[list[str], str], ...]) -> None:
    reply = ""
    for name, (pushed, value) in zip(ANSWERED, answers):
        reply += "".join(f"{line}\n" for line in pushed) + f"{name}: {value}\n"
    gauge = ScriptedGauge(reply.encode("utf-8", "surrogatepass"))
    check(result_or_our_error(gauge.read))
    gauge.close()


def test_a_well_formed_answer_with_events_reads() -> None:
    reply = ("single\nmodel: PiSugar 2 (4-LEDs)\nbattery: 87.5\nbattery_v: 4.02\nlong\nbattery_i: -0.42\n"
             "battery_power_plugged: false\nbattery_charging: false\n")
    gauge = ScriptedGauge(reply.encode())
    reading = gauge.read()
    assert reading.soc_pct == 87.5 and reading.voltage_v == 4.02 and reading.current_a == -0.42
    assert reading.external_power is False and gauge.connections == 1


def test_a_pisugar3_answer_reads_its_output_current_as_an_estimate() -> None:
    reply = ("model: PiSugar 3\nbattery: 55\nbattery_v: 3.9\nbattery_i: 0.8\n"
             "battery_power_plugged: false\nbattery_charging: false\n")
    reading = ScriptedGauge(reply.encode()).read()
    assert reading.current_a is None and reading.power_w == -4.0 and reading.power_estimated
