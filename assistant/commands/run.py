"""`assistant run [--sim]`: the appliance loop, as the systemd service runs it or simulated on a laptop."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from assistant.config import AssistantConfig

_LOG = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="the appliance: hold the button, speak, release, hear the answer")
    p.add_argument("--sim", action="store_true",
                   help="simulated hardware: mock GPIO pins, a microphone fed from WAV files, the answer to a "
                        "WAV file, the simulated battery pack")
    p.add_argument("--sim-speech", type=Path, help="with --sim: the question to speak (default: the bundled one)")
    p.add_argument("--sim-press-every", type=float, metavar="S",
                   help="with --sim: press the button and ask the question S seconds after each answer")
    p.add_argument("--sim-out", type=Path, help="with --sim: WAV the speaker writes (default STATE_DIR/sim-speaker.wav)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    from assistant.commands.turn import demo_question
    from assistant.device.hardware import build_appliance, press_periodically
    from assistant.speech.wav import read_wav

    speech = read_wav(args.sim_speech or demo_question()) if args.sim else None
    appliance, controls = build_appliance(cfg, sim=args.sim, sim_out=args.sim_out)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _LOG.info("signal %d: stopping", signum)
        appliance.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    presses = threading.Event()
    try:
        if controls is not None and speech is not None and args.sim_press_every:
            press_periodically(controls, speech, args.sim_press_every, presses)
        appliance.run()
    finally:
        presses.set()
        appliance.close()  # run() closes it too; this covers a failure before it
    _LOG.info("appliance stopped after %d turns", appliance.turns)
    return 0
