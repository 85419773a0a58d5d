"""The appliance on simulated hardware, with every fault the soak injects within reach and its clocks sped up."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig, LlmConfig, PathsConfig
from assistant.device.appliance import Appliance
from assistant.device.button import PushToTalkButton
from assistant.device.device_config import ButtonConfig, LedConfig, ShutdownConfig
from assistant.device.hardware import pretend_poweroff
from assistant.device.led import StatusLed
from assistant.device.notify import SystemdNotifier
from assistant.device.shutdown import ShutdownPolicy, Shutdowner
from assistant.sim.devices import SimMicrophone, mock_pin_factory
from assistant.messages import AudioClip
from assistant.models import embedded
from assistant.sim.chips.bus import EmulatedBus
from assistant.sim.chips.ina219 import EmulatedIna219
from assistant.power.gauges.ina219 import Ina219Gauge
from assistant.sim.pack import SimulatedPack
from assistant.power.tiers import Tier, TierConfig
from assistant.session import TURN_LOG, Session
from assistant.soak.faults import FlakySpeaker, FlakySynthesizer, FlakyTranscriber
from assistant.soak.file_faults import DiskFull, ModelFileFault

_LOG = logging.getLogger(__name__)

INA219_ADDRESS = 0x42
"""The Waveshare UPS HAT (B) INA219, as on the board: 0.1 ohm shunt, 2S pack."""

BANDS: dict[str, float] = {"rich": 90.0, "lean": 38.0, "fixed": 17.0}
"""State of charge (%) of a pack that puts the appliance on each tier (thresholds 50, 25, 10)."""


@dataclass(frozen=True)
class RigOptions:
    """How the simulated appliance is set up."""

    time_scale: float = 8.0
    """Microphone and speaker clocks run this many times faster than the wall clock."""
    max_tokens: int = 12
    """Longest reply of the richer tier (tokens); the leaner one gets two thirds of it."""
    threads: int = 1
    """LLM threads: one, because on a shared two-core machine a second llama.cpp thread that has to
    wait for a core slows generation down several times."""
    tmpfs_kb: int = 4096
    """Size of the tmpfs under the turn log (KiB), when this process may mount one."""


@dataclass
class Rig:
    """The appliance and the handles the soak driver pulls."""

    appliance: Appliance
    session: Session
    mic: SimMicrophone
    speaker: FlakySpeaker
    transcriber: FlakyTranscriber
    synthesizer: FlakySynthesizer
    chip: EmulatedIna219
    gauge: Ina219Gauge
    models: dict[str, ModelFileFault]
    disk: DiskFull
    log_path: Path
    workdir: Path
    options: RigOptions
    packs: list[SimulatedPack] = field(default_factory=list)

    @property
    def pin(self) -> Any:
        """The button's mock pin."""
        return self.appliance.button.pin

    def swap_pack(self, soc_pct: float) -> None:
        """Put in a pack charged to ``soc_pct`` (the gauge chip measures it from its next conversion)."""
        pack = SimulatedPack(start_soc_pct=soc_pct, cells_in_series=2)
        self.packs[:] = [pack]
        self.chip.state_source = pack.read
        self.chip.set_state()

    def close(self) -> None:
        """Close the appliance (and everything it holds) and unmount the tmpfs."""
        self.appliance.close()
        self.disk.unmount()


def soak_config(workdir: Path, models: dict[str, Path], options: RigOptions) -> AssistantConfig:
    """Short answers, a four-rung ladder over two copies of the embedded model, and quick presses."""
    base = AssistantConfig()
    lean_tokens = max(4, options.max_tokens * 2 // 3)
    ladder = TierConfig(tiers=[
        Tier(name="rich", model=models["rich"], quant="Q4_1", enter_soc_pct=50.0, n_ctx=512,
             max_tokens=options.max_tokens, threads=options.threads),
        Tier(name="lean", model=models["lean"], quant="Q4_1", enter_soc_pct=25.0, n_ctx=512,
             max_tokens=lean_tokens, threads=options.threads, reply_words=8),
        Tier(name="fixed", kind="fixed", enter_soc_pct=10.0),
        Tier(name="shutdown", kind="shutdown", enter_soc_pct=0.0),
    ])
    return replace(
        base,
        paths=PathsConfig(state_dir=workdir / "state", models_dir=workdir / "models"),
        llm=replace(LlmConfig(), history_turns=2, threads=options.threads),
        tiers=ladder,
        button=replace(ButtonConfig(), min_press_s=0.1),
        led=replace(LedConfig(), kind="pwm"),
        shutdown=replace(ShutdownConfig(), command=["/bin/true"]),
    )


def _copy_models(workdir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    source = embedded.smollm2_gguf()
    models_dir = workdir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    pristine = models_dir / "pristine.gguf"
    if not pristine.exists():
        shutil.copyfile(source, pristine)
    paths: dict[str, Path] = {}
    for name in ("rich", "lean"):
        path = models_dir / f"{name}.gguf"
        shutil.copyfile(pristine, path)
        paths[name] = path
    return paths, {name: pristine for name in paths}


def build_rig(workdir: Path, options: RigOptions = RigOptions()) -> Rig:
    """Everything opened and ready for ``appliance.run()``; the caller closes it with ``Rig.close``."""
    workdir.mkdir(parents=True, exist_ok=True)
    models, pristine = _copy_models(workdir)
    cfg = soak_config(workdir, models, options)
    disk = DiskFull(workdir / "logfs", size_kb=options.tmpfs_kb)
    log_dir = disk.mountpoint if disk.mount() else workdir / "state"
    log_path = log_dir / TURN_LOG
    pack = SimulatedPack(start_soc_pct=BANDS["rich"], cells_in_series=2)
    chip = EmulatedIna219(shunt_ohms=0.1, pack_voltage_v=7.8)
    chip.state_source = pack.read
    gauge = Ina219Gauge.for_board("waveshare_b", bus=EmulatedBus({INA219_ADDRESS: chip}), retries=2, backoff_s=0.002)
    pins = mock_pin_factory()
    opened: list[Any] = []
    try:
        session = Session(cfg, gauge=gauge, turn_log=log_path)
        opened.append(session)
        assert session.transcriber is not None and session.synthesizer is not None
        transcriber = FlakyTranscriber(session.transcriber)
        synthesizer = FlakySynthesizer(session.synthesizer)
        session.transcriber = transcriber
        session.synthesizer = synthesizer  # type: ignore[assignment]
        disk.log_holder = session.turn_log
        mic = SimMicrophone(rate=transcriber.rate, block_ms=cfg.mic.block_ms, time_scale=options.time_scale)
        speaker = FlakySpeaker(time_scale=options.time_scale)
        button = PushToTalkButton(cfg.button, pin_factory=pins)
        opened.append(button)
        led = StatusLed(cfg.led, pin_factory=pins)
        opened.append(led)
        appliance = Appliance(
            session, mic=mic, speaker=speaker, button=button, led=led, notifier=SystemdNotifier(environ={}),
            policy=ShutdownPolicy(cfg.shutdown, empty=session.empty_point),
            shutdowner=Shutdowner(cfg.shutdown, run=pretend_poweroff),
            heartbeat_max_s=cfg.service.watchdog_heartbeat_max_s, turn_budget_s=cfg.service.turn_budget_s,
        )
    except BaseException:
        for thing in reversed(opened):
            thing.close()
        disk.unmount()
        raise
    faults = {name: ModelFileFault(path, pristine[name]) for name, path in models.items()}
    return Rig(appliance=appliance, session=session, mic=mic, speaker=speaker, transcriber=transcriber,
               synthesizer=synthesizer, chip=chip, gauge=gauge, models=faults, disk=disk, log_path=log_path,
               workdir=workdir, options=options, packs=[pack])


QUESTIONS = ("What time is it?", "What is two plus two?", "How much battery is left?")
"""Short questions the soak asks besides the bundled one (spoken by the appliance's own voice)."""


def question_clips(rig: Rig) -> list[AudioClip]:
    """The bundled question and short ones spoken by the rig's Piper voice, as the soak's microphone input."""
    from assistant.commands.turn import demo_question
    from assistant.speech.wav import read_wav

    clips = [read_wav(demo_question())]
    for text in QUESTIONS:
        parts = list(rig.synthesizer.inner.synthesize(text))
        clips.append(AudioClip(b"".join(p.pcm for p in parts), parts[0].rate, parts[0].channels))
    return clips
