"""The appliance's power decisions on a device-like setup, on a fake clock: no gauge, a gauge found late,
a gauge that goes silent, a power-off that is refused, the UPS HAT (E)'s restart. A day runs in seconds."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from assistant.config import AssistantConfig, PathsConfig
from assistant.device.appliance import BATTERY_CHECK_S, GAUGE_SILENT_SAY, POWER_OFF_REFUSED, Appliance, State
from assistant.device.button import ButtonEvent
from assistant.device.device_config import LedConfig, ShutdownConfig
from assistant.device.led import LedState, StatusLed
from assistant.device.notify import SystemdNotifier
from assistant.device.shutdown import ShutdownPolicy, Shutdowner
from assistant.sim.devices import SimMicrophone
from assistant.power.gauges.absent import AbsentGauge, open_device_gauge
from assistant.sim.chips.bus import EmulatedBus
from assistant.sim.chips.ina219 import EmulatedIna219
from assistant.sim.chips.waveshare_e import EmulatedUpsHatE
from assistant.sim.pack import SimulatedPack
from assistant.session import Session
from assistant.speech.wav_speaker import WavSpeaker

DAY_S = 24 * 3600.0


class Clock:
    """The one clock of a test: the appliance, its meter, the gauges and the chips all read it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class IdleButton:
    """A button nobody presses: each wait moves the clock on by its timeout and lets the meter take a
    reading, as the meter thread would; the test ends the run at ``until``."""

    def __init__(self, clock: Clock, until: float) -> None:
        self.clock = clock
        self.until = until
        self.appliance: Appliance | None = None
        self.hooks: list[tuple[float, Any]] = []
        """(time, action) run once when the clock passes the time."""

    def wait_event(self, timeout: float | None = None) -> ButtonEvent | None:
        assert self.appliance is not None
        self.clock.now += timeout or 1.0
        while self.hooks and self.clock.now >= self.hooks[0][0]:
            self.hooks.pop(0)[1]()
        self.appliance.session.meter.poll()
        if self.clock.now >= self.until:
            self.appliance.stop_event.set()
        return None

    def clear(self) -> int:
        return 0

    def close(self) -> None:
        pass


class Notes(SystemdNotifier):
    """Keeps every STATUS= line instead of sending it."""

    def __init__(self) -> None:
        super().__init__(environ={})
        self.statuses: list[str] = []

    def notify(self, *assignments: str) -> bool:
        self.statuses += [a.removeprefix("STATUS=") for a in assignments if a.startswith("STATUS=")]
        return False


class PowerOff:
    """Stands in for ``subprocess.run``: refuses the first ``refusals`` calls, then accepts."""

    def __init__(self, clock: Clock, refusals: int = 0) -> None:
        self.clock = clock
        self.refusals = refusals
        self.calls: list[float] = []

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(self.clock.now)
        if len(self.calls) <= self.refusals:
            return subprocess.CompletedProcess(argv, 1, "", "Access denied (polkit)")
        return subprocess.CompletedProcess(argv, 0, "", "")


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.reset()


def config(tmp_path: Path, **shutdown: Any) -> AssistantConfig:
    base = AssistantConfig()
    return replace(base, paths=PathsConfig(state_dir=tmp_path / "state", models_dir=tmp_path / "models"),
                   shutdown=replace(ShutdownConfig(retry_s=60.0), **shutdown))


def appliance_on(cfg: AssistantConfig, gauge: Any, clock: Clock, factory: MockFactory, *, until: float,
                 poweroff: PowerOff, tmp_path: Path) -> tuple[Appliance, IdleButton, WavSpeaker, Notes]:
    session = Session(cfg, with_asr=False, gauge=gauge, start_meter=False)
    session.meter.clock = clock
    button = IdleButton(clock, until)
    speaker = WavSpeaker(tmp_path / "speaker.wav")
    notes = Notes()
    appliance = Appliance(
        session, mic=SimMicrophone(rate=16000), speaker=speaker, button=button,  # type: ignore[arg-type]
        led=StatusLed(LedConfig(kind="led"), pin_factory=factory), notifier=notes,
        policy=ShutdownPolicy(cfg.shutdown, empty=session.empty_point),
        shutdowner=Shutdowner(cfg.shutdown, run=poweroff, sync=lambda: None), clock=clock,
    )
    button.appliance = appliance
    return appliance, button, speaker, notes


def test_no_gauge_on_a_device_never_powers_off_in_a_day_and_a_late_hat_is_picked_up(
        tmp_path: Path, factory: MockFactory) -> None:
    """An idle Pi with I2C on and no HAT used to get the simulated pack, drain it by the CPU model and
    ask ``systemctl poweroff`` after about 6 h. Now: the richest tier, an alarm, no power-off, and a
    HAT plugged in 18 h later is found without a restart."""
    clock = Clock()
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "i2c-1").touch()
    bus = EmulatedBus({})
    cfg = config(tmp_path)
    gauge = open_device_gauge(replace(cfg.battery, pisugar_port=1), bus=bus, dev_dir=dev, clock=clock)
    assert isinstance(gauge, AbsentGauge) and "no UPS HAT answers" in gauge.why
    poweroff = PowerOff(clock)
    appliance, button, _, notes = appliance_on(cfg, gauge, clock, factory, until=clock.now + DAY_S,
                                               poweroff=poweroff, tmp_path=tmp_path)
    seen: dict[str, Any] = {}

    def check_alarm_then_plug_in() -> None:
        seen.update(alarm=appliance.alarm, led=appliance.led.state, tier=appliance.session.tier)
        pack = SimulatedPack(capacity_wh=19.24, start_soc_pct=90.0, cells_in_series=2, power_profile=lambda t: 2.0,
                             clock=clock, cpu_time_fn=lambda: 0.0)
        chip = EmulatedIna219(shunt_ohms=0.1, clock=clock)
        chip.state_source = pack.read
        bus.chips[0x42] = chip  # the HAT is connected

    button.hooks.append((clock.now + 18 * 3600.0, check_alarm_then_plug_in))  # 18 h in, a HAT on a 90 % pack
    appliance.run()  # closes everything when it ends
    assert poweroff.calls == []  # a whole day, and never a power-off
    assert seen["alarm"] is not None and seen["alarm"].startswith("no battery gauge")
    richest = next(t.name for t in appliance.session.tiers.ladder if t.name not in appliance.session.unavailable)
    assert seen["led"] == LedState.FAULT and seen["tier"].name == richest
    assert any("no battery gauge" in s for s in notes.statuses)
    assert gauge.found is not None and gauge.found.name == "ina219@0x42"  # picked up without a restart
    assert appliance.alarm is None and appliance.session.empty_point.source.startswith("board preset waveshare_b")
    assert appliance.state is not State.STOPPING


def test_a_simulated_battery_on_a_device_decides_nothing(tmp_path: Path, factory: MockFactory) -> None:
    """``battery.kind: simulated`` without ``--sim``: its pack runs flat, the appliance never powers off."""
    clock = Clock()
    pack = SimulatedPack(capacity_wh=0.5, start_soc_pct=20.0, cells_in_series=2, power_profile=lambda t: 6.0,
                         clock=clock, cpu_time_fn=lambda: 0.0)
    poweroff = PowerOff(clock)
    appliance, _, _, _ = appliance_on(config(tmp_path, hold_s=10.0), pack, clock, factory, until=clock.now + 3600,
                                      poweroff=poweroff, tmp_path=tmp_path)
    appliance.run()  # closes everything when it ends
    assert pack.soc_pct == 0.0 and poweroff.calls == []
    assert appliance.alarm is not None and "SIMULATION" in appliance.alarm


def _ups_e(clock: Clock, **state: Any) -> tuple[EmulatedUpsHatE, Any]:
    from assistant.power.gauges.waveshare_e import WaveshareEGauge

    chip = EmulatedUpsHatE(**state)
    return chip, WaveshareEGauge(bus=EmulatedBus({0x2D: chip}), clock=clock, sleep=lambda s: None, retries=0)


def test_a_refused_power_off_keeps_serving_and_tries_again(tmp_path: Path, factory: MockFactory) -> None:
    """``systemctl poweroff`` refused (no polkitd, a block inhibitor) used to end the loop with exit 0:
    systemd did not restart it and the pack ran to the hardware cut. Now it keeps serving, shows low
    battery, tries again every retry_s, and once it works the UPS HAT (E) is armed to restart the Pi."""
    clock = Clock()
    chip, gauge = _ups_e(clock, pack_voltage_v=12.6, current_a=-1.1, soc_pct=3, cells_v=(3.15, 3.16, 3.14, 3.15))
    poweroff = PowerOff(clock, refusals=2)
    appliance, _, speaker, notes = appliance_on(config(tmp_path, hold_s=30.0), gauge, clock, factory,
                                                until=clock.now + 3600, poweroff=poweroff, tmp_path=tmp_path)
    appliance.run()  # closes everything when it ends
    assert len(poweroff.calls) == 3 and appliance.poweroff_failures == 2
    assert [b - a for a, b in zip(poweroff.calls, poweroff.calls[1:])] == pytest.approx([60.0, 60.0], abs=5.0)
    assert any(POWER_OFF_REFUSED in s for s in notes.statuses)
    assert LedState.LOW_BATTERY in [s for _, s in appliance.led.history]
    assert appliance.shutdown_reason is not None and "on battery" in appliance.shutdown_reason
    assert chip.power_off_requests == 1  # armed once, after the accepted power-off
    assert appliance.stop_event.is_set() and speaker.clips  # the announcement was spoken (once)


def test_a_gauge_that_goes_silent_is_an_alarm_and_no_evidence(tmp_path: Path, factory: MockFactory) -> None:
    """A gauge that dies after an "empty" reading used to power off 60 s later on that one old reading;
    one that died after an "ok" reading never shut down. Now neither: the silence itself is the alarm,
    shown and spoken once, and no power-off comes from a stale reading."""
    clock = Clock()
    chip, gauge = _ups_e(clock, pack_voltage_v=12.6, current_a=-1.1, soc_pct=3, cells_v=(3.15, 3.16, 3.14, 3.15))
    poweroff = PowerOff(clock)
    cfg = config(tmp_path, hold_s=60.0)
    appliance, button, speaker, notes = appliance_on(cfg, gauge, clock, factory, until=clock.now + 1800,
                                                     poweroff=poweroff, tmp_path=tmp_path)
    said: list[str] = []
    synth = appliance.session.synthesizer
    assert synth is not None
    real_synthesize = synth.synthesize
    synth.synthesize = lambda text: said.append(text) or real_synthesize(text)  # type: ignore[method-assign]
    button.hooks.append((clock.now + 20.0, lambda: chip.fail_next_reads(10**9)))  # the MCU stops answering
    appliance.run()  # closes everything when it ends
    assert poweroff.calls == []  # 20 s of "empty" is short of the hold; the rest is silence
    assert appliance.alarm is not None and "has given no reading" in appliance.alarm
    assert said == [GAUGE_SILENT_SAY]  # said once, in half an hour of silence
    assert any("has given no reading" in s for s in notes.statuses)
    assert sum("battery alarm" in r for r in []) == 0


class LowPack:
    """A scripted gauge on the test's clock: full until ``empty_at``, then 2 %; on battery unless ``plugged``."""

    name = "scripted"
    poll_period_s = 0.1

    def __init__(self, clock: Clock, *, plugged: bool, empty_at: float) -> None:
        from assistant.power.cutoff import DEFAULT_EMPTY

        self.empty_point = DEFAULT_EMPTY
        self.clock, self.plugged, self.empty_at = clock, plugged, empty_at

    def read(self) -> Any:
        from assistant.messages import BatteryReading

        now = self.clock()
        soc = 80.0 if now < self.empty_at else 2.0
        current = 0.5 if self.plugged else -0.8
        volts = 7.0 if soc < 5 else 8.0
        return BatteryReading(now, volts, current, current * volts, soc, self.plugged, self.plugged, "scripted",
                              cell_voltage_v=volts / 2)

    def arm_power_restore(self) -> bool:
        return False

    def close(self) -> None:
        pass


@pytest.mark.parametrize("plugged", [False, True])
def test_low_battery_shutdown_only_on_battery_after_the_hold(tmp_path: Path, factory: MockFactory,
                                                             plugged: bool) -> None:
    clock = Clock()
    pack = LowPack(clock, plugged=plugged, empty_at=clock.now + 30.0)
    poweroff = PowerOff(clock)
    appliance, _, speaker, _ = appliance_on(config(tmp_path, hold_s=60.0), pack, clock, factory,
                                            until=clock.now + 3600, poweroff=poweroff, tmp_path=tmp_path)
    appliance.run()
    if plugged:
        assert poweroff.calls == [] and appliance.shutdown_reason is None  # an hour at 2 %, on mains
    else:
        assert len(poweroff.calls) == 1
        assert 30.0 + 60.0 <= poweroff.calls[0] - 1000.0 <= 30.0 + 60.0 + 2 * BATTERY_CHECK_S  # empty, then the hold
        assert appliance.shutdown_reason is not None and appliance.shutdown_reason.startswith("on battery, SoC 2.0 %")
        assert speaker.seconds > 1.0  # the announcement was spoken


def test_the_watchdog_is_fed_while_the_announcement_and_the_power_off_run(tmp_path: Path,
                                                                         factory: MockFactory) -> None:
    """The system bench's empty-pack power-off (a VM, where saying the announcement took over 30 s):
    the announcement and the power-off command ran on the main loop without a heartbeat, so the
    watchdog killed the appliance halfway, systemd restarted it, it announced again, was killed
    again, and the empty pack was never powered off. Now the loop keeps beating while they run."""
    clock = Clock()
    pack = LowPack(clock, plugged=False, empty_at=clock.now)
    beat_during_power_off = threading.Event()

    class SlowPowerOff(PowerOff):
        def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
            started = appliance.watchdog._last_beat
            # Returns as soon as the main loop beats again (at most one WAKE_S); never, before.
            beats = threading.Thread(target=lambda: _wait_for_beat(appliance, started, beat_during_power_off))
            beats.start()
            beats.join(10.0)
            return super().__call__(argv, **kw)

    poweroff = SlowPowerOff(clock)
    appliance, _, speaker, _ = appliance_on(config(tmp_path, hold_s=10.0), pack, clock, factory,
                                            until=clock.now + 600, poweroff=poweroff, tmp_path=tmp_path)
    appliance.watchdog._clock = time.monotonic  # beats in real time, as the pinger thread sees them
    appliance.run()
    assert len(poweroff.calls) == 1 and appliance.shutdown_reason is not None
    assert beat_during_power_off.is_set()
    assert speaker.seconds > 1.0


def _wait_for_beat(appliance: Appliance, since: float, seen: threading.Event) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if appliance.watchdog._last_beat != since:
            seen.set()
            return
        time.sleep(0.01)
