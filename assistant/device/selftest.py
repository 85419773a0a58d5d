"""`assistant check`: a self-test for a person at the device (button, LED, mic, speaker, gauge, models)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from assistant.config import AssistantConfig
from assistant.device import earcons
from assistant.device.button import PushToTalkButton
from assistant.device.led import LedState, StatusLed
from assistant.errors import AssistantError
from assistant.messages import AudioClip
from assistant.speech.mic import Microphone
from assistant.speech.speaker import Speaker

_LOG = logging.getLogger(__name__)

Verdict = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """The outcome of one check and what to do about it."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


def _run(name: str, fix: str, body: Callable[[], tuple[Verdict, str]]) -> Check:
    try:
        verdict, detail = body()
    except AssistantError as exc:
        return Check(name, "fail", str(exc), fix)
    except Exception as exc:  # a self-test reports every failure, it does not crash
        _LOG.exception("check %s failed unexpectedly", name)
        return Check(name, "fail", f"{type(exc).__name__}: {exc}", fix)
    return Check(name, verdict, detail, fix if verdict != "pass" else "")


def check_models(cfg: AssistantConfig) -> list[Check]:
    """Every catalogued model that is embedded or installed is re-hashed; every tier's model is present."""
    from assistant.models.install import list_models, verify
    from assistant.models.twin import LABEL, twin_tiers
    from assistant.session import ladder_for
    from assistant.models.tier_ladder import unavailable_tiers

    models_dir = cfg.paths.models_dir.expanduser()
    out: list[Check] = []
    for listing in list_models(models_dir=models_dir):
        if listing.path is None:
            continue
        name = listing.name

        def verified(n: str = name) -> tuple[Verdict, str]:
            r = verify(n, models_dir=models_dir)
            return ("pass", f"{r.checked_files} files verified") if r.ok else ("fail", "; ".join(r.problems))

        out.append(_run(f"model {name}", f"reinstall it: assistant models install {name}", verified))

    def tiers() -> tuple[Verdict, str]:
        ladder = ladder_for(cfg)
        missing = unavailable_tiers(ladder)
        llm = [t.name for t in ladder.tiers if t.kind == "llm"]
        twins = [t.name for t in twin_tiers(ladder)]
        if twins:
            return "fail", f"tiers {', '.join(twins)} are a {LABEL}: they cannot answer a person"
        if not missing:
            return "pass", f"all {len(llm)} LLM tiers have their model ({', '.join(llm)})"
        return ("warn" if set(llm) - missing else "fail"), f"tiers without a usable model: {', '.join(sorted(missing))}"
    out.append(_run("tier ladder", "run: assistant models build-ladder", tiers))
    return out


def check_gauge(cfg: AssistantConfig, *, simulation: bool = False, **probe: Any) -> Check:
    """The battery gauge answers with a real reading: no gauge, or a simulated one on a device, is a
    FAIL (the appliance then runs as on external power and never powers off on an empty pack); in a
    ``simulation`` (``check --sim``) the simulated pack is expected and only a WARN."""
    from assistant.power.cutoff import power_source
    from assistant.power.empty_store import empty_point_for
    from assistant.power.gauges import open_gauge

    def body() -> tuple[Verdict, str]:
        gauge = open_gauge(cfg.battery, when_missing="raise", **probe)
        try:
            r = gauge.read()
        finally:
            gauge.close()
        if r.simulated:
            return ("warn" if simulation else "fail"), (
                f"{gauge.name}: the battery is SIMULATED (battery.kind: simulated): the appliance takes no tier or "
                "power-off decision from it outside `run --sim`")
        empty = empty_point_for(cfg.battery, gauge.empty_point, gauge=gauge.name, state_dir=cfg.paths.state_dir,
                                config_file=cfg.source)
        soc = "unknown" if r.soc_pct is None else f"{r.soc_pct:.0f} %"
        return "pass", (f"{gauge.name}: {r.voltage_v:.2f} V, charge {soc}, power source {power_source(r)}; "
                        f"empty at {empty.describe()}")
    return _run("battery gauge", "connect the UPS HAT and enable I2C (sudo raspi-config nonint do_i2c 0; "
                "i2cdetect -y 1 should show 0x2d, 0x36, 0x42 or 0x43), start pisugar-server for a PiSugar, or set "
                "battery.kind for your board; without a gauge the appliance never powers off on an empty pack", body)


def check_led(led: StatusLed, seconds_each: float = 0.4) -> Check:
    def body() -> tuple[Verdict, str]:
        shown = []
        for state in (LedState.LISTENING, LedState.THINKING, LedState.SPEAKING, LedState.LOW_BATTERY, LedState.IDLE):
            led.set_state(state)
            shown.append(state.value)
            time.sleep(seconds_each)
        return "pass", "showed " + ", ".join(shown) + " (watch it blink)"
    return _run("status LED", "check led.pin and the LED's resistor and polarity (hardware/wiring.md)", body)


def tone(freq: float = 1000.0, seconds: float = 0.6, rate: int = 22050) -> AudioClip:
    """A sine tone with soft edges at -12 dBFS."""
    t = np.arange(int(seconds * rate)) / rate
    env = np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)
    samples = 0.25 * np.sin(2 * math.pi * freq * t) * env
    return AudioClip((samples * 32767).astype("<i2").tobytes(), rate)


def check_speaker(speaker: Speaker) -> Check:
    def body() -> tuple[Verdict, str]:
        speaker.play(earcons.listen_start())
        speaker.play(tone())
        done = speaker.wait(5.0)
        return ("pass", "played a 1 kHz tone (you should have heard it)") if done else ("fail", "playback did not finish")
    return _run("speaker", "check speaker.device (assistant check lists the devices it found) and the volume", body)


def check_mic(mic: Microphone, seconds: float = 1.5) -> Check:
    def body() -> tuple[Verdict, str]:
        mic.open()
        chunks: list[bytes] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            chunk = mic.read_chunk(1.0)
            if chunk:
                chunks.append(chunk)
        if not chunks:
            return "fail", f"no audio arrived in {seconds:.1f} s"
        x = np.frombuffer(b"".join(chunks), "<i2").astype(np.float64)
        rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
        dbfs = 20 * math.log10(max(rms, 1e-3) / 32768)
        peak = float(np.abs(x).max()) / 32768 if x.size else 0.0
        text = f"{len(x) / mic.rate:.1f} s captured, level {dbfs:.0f} dBFS, peak {peak:.0%}"
        if peak > 0.99:
            return "warn", text + " (clipping: lower the input gain)"
        if dbfs < -75:
            return "warn", text + " (silent: is the microphone muted or the wrong device?)"
        return "pass", text
    return _run("microphone", "check mic.device and the capture volume (alsamixer)", body)


def check_button(button: PushToTalkButton, timeout_s: float, press: Callable[[], None] | None = None) -> Check:
    def body() -> tuple[Verdict, str]:
        button.clear()
        if press is not None:
            threading.Timer(0.2, press).start()
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            event = button.wait_event(max(0.0, end - time.monotonic()))
            if event is not None and event.kind == "press":
                return "pass", "press seen"
        return "fail", f"no press within {timeout_s:.0f} s"
    return _run("button", "check button.pin, the wiring to GND and button.pull_up (hardware/wiring.md)", body)


def format_checks(checks: list[Check]) -> str:
    """A table for a person: verdict, what, detail, and what to fix."""
    marks: dict[str, str] = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"{marks[c.verdict]}  {c.name:<16} {c.detail}")
        if c.fix:
            lines.append(f"      {'':<16} fix: {c.fix}")
    return "\n".join(lines)


def check_sound_cards(cfg: AssistantConfig) -> Check:
    """The cards for mic.device and speaker.device; `default` with a card to name is a warning."""
    from assistant.device.sound_cards import FIX_COMMAND, assign, list_cards

    def body() -> tuple[Verdict, str]:
        cards = list_cards()
        to_write = assign(cards, mic=cfg.mic.device, speaker=cfg.speaker.device)  # raises: what to plug in
        found = "; ".join(c.describe() for c in cards)
        if to_write:
            named = ", ".join(f"{role}.device {name!r}" for role, name in to_write.items())
            return "warn", f"still `default`, would be {named} ({found})"
        return "pass", found
    return _run("sound cards", f"{FIX_COMMAND} (writes the cards found into the config)", body)


def check_gpio_chip() -> Check:
    """The 40-pin header's GPIO chip, and the one gpiozero opens."""
    from assistant.device.gpiochip import verify

    report = verify()
    return Check("GPIO chip", "fail" if report.problems else "pass", report.summary(), report.fix)
