"""Build the appliance from the configuration: the real devices on a Pi, or their simulations."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig, ensure_dir
from assistant.device.appliance import Appliance
from assistant.device.button import PushToTalkButton
from assistant.device.led import StatusLed
from assistant.device.notify import SystemdNotifier
from assistant.device.shutdown import ShutdownPolicy, Shutdowner
from assistant.sim.devices import SimMicrophone, mock_pin_factory
from assistant.messages import AudioClip
from assistant.models.twin import refuse_for_talking
from assistant.power.gauges.absent import open_device_gauge
from assistant.session import Session, ladder_for
from assistant.speech.mic import Microphone, SoundDeviceMicrophone
from assistant.speech.speaker import SoundDeviceSpeaker, Speaker, WavSpeaker

_LOG = logging.getLogger(__name__)


def pretend_poweroff(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
    """A stand-in for ``subprocess.run`` on simulated hardware: logs the power-off, runs nothing."""
    _LOG.warning("simulation: would run %s now", " ".join(argv))
    return subprocess.CompletedProcess(argv, 0, "", "")


@dataclass
class SimControls:
    """Handles a test or the CLI uses to drive a simulated appliance."""

    mic: SimMicrophone
    pin_factory: Any
    speaker: WavSpeaker
    appliance: Appliance

    def press(self) -> None:
        """Press the push-to-talk button."""
        self.appliance.button.pin.drive_low()

    def release(self) -> None:
        """Release it."""
        self.appliance.button.pin.drive_high()

    def ask(self, clip: AudioClip, *, hold_extra_s: float = 0.3) -> None:
        """Press, speak ``clip`` into the microphone, release ``hold_extra_s`` after it has been heard (read
        out of the microphone; however slow the machine, the whole question is heard)."""
        self.press()
        time.sleep(0.08)
        seconds = self.mic.say(clip)
        self.mic.wait_said(seconds + 30.0)
        time.sleep(hold_extra_s)
        self.release()


def build_appliance(cfg: AssistantConfig, *, sim: bool = False, sim_out: Path | None = None,
                    environ: dict[str, str] | None = None) -> tuple[Appliance, SimControls | None]:
    """Everything the loop needs, opened; with ``sim`` the simulated pack, mock pins, a clip-fed mic."""
    if sim:
        cfg = replace(cfg, battery=replace(cfg.battery, kind="simulated"))
    pin_factory = mock_pin_factory() if sim else None
    refuse_for_talking(ladder_for(cfg), "assistant run")
    session = Session(cfg, simulation=True) if sim else Session(cfg, gauge=open_device_gauge(cfg.battery))
    opened: list[Any] = [session]
    try:
        rate = session.transcriber.rate if session.transcriber is not None else cfg.asr.rate
        mic: Microphone
        speaker: Speaker
        if sim:
            mic = SimMicrophone(rate=rate, block_ms=cfg.mic.block_ms)
            out = sim_out or ensure_dir(cfg.paths.state_dir) / "sim-speaker.wav"
            speaker = WavSpeaker(out, realtime=True)
        else:
            mic = SoundDeviceMicrophone(device=cfg.mic.device, rate=rate, block_ms=cfg.mic.block_ms,
                                        capture_rate=cfg.mic.rate)
            speaker = SoundDeviceSpeaker(device=cfg.speaker.device)
        opened.append(speaker)
        button = PushToTalkButton(cfg.button, pin_factory=pin_factory)
        opened.append(button)
        led = StatusLed(cfg.led, pin_factory=pin_factory)
        opened.append(led)
        shutdowner = Shutdowner(cfg.shutdown, run=pretend_poweroff) if sim else Shutdowner(cfg.shutdown)
        notifier = SystemdNotifier() if environ is None else SystemdNotifier(environ=environ)
        appliance = Appliance(
            session, mic=mic, speaker=speaker, button=button, led=led, notifier=notifier,
            policy=ShutdownPolicy(cfg.shutdown, empty=session.empty_point), shutdowner=shutdowner,
            heartbeat_max_s=cfg.service.watchdog_heartbeat_max_s, turn_budget_s=cfg.service.turn_budget_s,
        )
    except BaseException:
        for thing in reversed(opened):
            thing.close()
        raise
    controls = SimControls(mic, pin_factory, speaker, appliance) if sim else None  # type: ignore[arg-type]
    return appliance, controls


def press_periodically(controls: SimControls, clip: AudioClip, every_s: float, stop: threading.Event) -> threading.Thread:
    """A thread that asks ``clip`` ``every_s`` seconds after the appliance went idle, as a person waits for the
    answer before asking again, however slow the machine is (``run --sim --sim-press-every``)."""
    def loop() -> None:
        while not stop.is_set():
            while not controls.appliance.idle:
                if stop.wait(0.05):
                    return
            if stop.wait(every_s):
                return
            if controls.appliance.idle:
                controls.ask(clip)
    thread = threading.Thread(target=loop, name="sim-presses", daemon=True)
    thread.start()
    return thread
