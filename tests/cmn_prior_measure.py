"""Measure ``CMN_PRIOR`` (assistant/speech/cmn_state.py): where a recogniser with no saved state starts.

Usage: python tests/cmn_prior_measure.py /path/to/pocketsphinx-5.1.1   (the unpacked sdist)

Six voices, none of them in an accuracy test: five recordings of people from the pocketsphinx
5.1.1 source distribution's test data that tests/data/people does not use (an AN4 speaker, the
two "forever" clips, "numbers", "something", the VAD leak test) and the Piper voice reading six
factual questions. Each recording is scaled to three speaking levels (-35, -26 and -18 dBFS RMS)
and resampled to two rates (16 and 44.1 kHz) before it is converted back to the recogniser's 16 kHz,
as a file would be; its whole-utterance cepstral mean is read from the decoder. The median per voice,
then the median over voices, gives each voice the same weight whatever its number of clips.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from assistant.bench.quality import factual_questions
from assistant.messages import AudioClip
from assistant.models import embedded
from assistant.speech.cmn_state import parse_mean
from assistant.speech.tts import PiperSynthesizer
from assistant.speech.wav import convert, read_wav

LEVELS_DBFS = (-35.0, -26.0, -18.0)
RATES = (16000, 44100)


def at_level(clip: AudioClip, dbfs: float) -> AudioClip:
    """``clip`` scaled so that its RMS is ``dbfs`` dB below full scale."""
    x = np.frombuffer(clip.pcm, "<i2").astype(np.float64)
    gain = 10 ** (dbfs / 20) / (np.sqrt(np.mean(x**2)) / 32768)
    return AudioClip(np.clip(np.round(x * gain), -32768, 32767).astype("<i2").tobytes(), clip.rate, clip.channels)


def whole_mean(decoder: object, clip: AudioClip) -> np.ndarray:
    """Cepstral mean of ``clip`` as whole-utterance normalisation computes it."""
    d: object = decoder
    d.reinit_feat()  # type: ignore[attr-defined]
    d.start_utt()  # type: ignore[attr-defined]
    d.process_raw(convert(clip, 16000, 1).pcm, True, True)  # type: ignore[attr-defined]
    d.end_utt()  # type: ignore[attr-defined]
    return np.array(parse_mean(d.get_cmn(False)))  # type: ignore[attr-defined]


def voices(src: Path) -> dict[str, list[AudioClip]]:
    test = src / "test"
    raw = lambda rel: AudioClip((test / rel).read_bytes(), 16000)  # noqa: E731
    synth = PiperSynthesizer(embedded.joe_voice())
    try:
        piper = []
        for q in factual_questions()[:6]:
            clips = list(synth.synthesize(q.question))
            piper.append(AudioClip(b"".join(c.pcm for c in clips), clips[0].rate))
    finally:
        synth.close()
    return {
        "an4-chan3": [read_wav(test / "regression/chan3.wav")],
        "forever": [read_wav(test / "data/forever/input_2_16k.wav"), read_wav(test / "data/forever/input_4_16k.wav")],
        "numbers": [raw("data/numbers.raw")],
        "something": [raw("data/something.raw")],
        "vad-leak": [read_wav(test / "data/vad/leak-test.wav")],
        "piper-joe": piper,
    }


def main(src: Path) -> None:
    import pocketsphinx

    decoder = pocketsphinx.Decoder(samprate=16000, loglevel="ERROR")
    per_voice = []
    for name, clips in voices(src).items():
        means = [whole_mean(decoder, at_level(convert(c, rate, 1), level))
                 for c in clips for level in LEVELS_DBFS for rate in RATES]
        per_voice.append(np.median(np.array(means), 0))
        print(f"{name:10s}", " ".join(f"{v:6.2f}" for v in per_voice[-1]))
    prior = np.median(np.array(per_voice), 0)
    print("CMN_PRIOR =", "(" + ", ".join(f"{v:.2f}" for v in prior) + ")")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
