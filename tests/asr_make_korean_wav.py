"""Make tests/data/asr_korean.wav: three Korean phrases spoken by espeak-ng, 16 kHz mono.

Run once by hand (needs the Debian package ``espeak-ng``); the WAV is committed so that the tests
do not need espeak-ng for Korean.  Usage: ``python tests/asr_make_korean_wav.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from assistant.messages import AudioClip
from assistant.speech.wav import convert, parse_wav, write_wav

PHRASES = ("안녕하세요", "노래를 불러 주세요", "감사합니다")
"""What is said, in order, each followed by a pause long enough for Vosk's endpointer."""
VOICE = "ko+klatt"
"""espeak-ng voice: Korean with the Klatt formant variant (the plain ``ko`` voice is heard worse)."""
WORDS_PER_MINUTE = 150
RATE = 16000
PAUSE_S = 0.6
"""Silence after each phrase (s); the Korean model ends a segment after 0.5 s of silence."""
LEAD_S = 0.2
"""Silence before the first phrase (s)."""
OUT = Path(__file__).parent / "data" / "asr_korean.wav"


def trim(clip: AudioClip, threshold: int = 200, margin_s: float = 0.05) -> AudioClip:
    """Cut the silence espeak-ng leaves around the speech, keeping ``margin_s`` on each side."""
    x = np.frombuffer(clip.pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > threshold)
    margin = int(clip.rate * margin_s)
    start, end = max(0, int(loud[0]) - margin), min(len(x), int(loud[-1]) + margin)
    return AudioClip(pcm=x[start:end].tobytes(), rate=clip.rate)


def speak(text: str) -> AudioClip:
    """One phrase from espeak-ng, converted to 16 kHz mono and trimmed."""
    wav = subprocess.run(
        ["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    return trim(convert(parse_wav(wav, f"espeak-ng {text!r}"), RATE))


def main() -> None:
    """Write the clip and print what it says."""
    pcm = b"\0\0" * int(RATE * LEAD_S)
    for text in PHRASES:
        pcm += speak(text).pcm + b"\0\0" * int(RATE * PAUSE_S)
    clip = AudioClip(pcm=pcm, rate=RATE)
    write_wav(OUT, clip)
    print(f"{OUT}: {clip.seconds:.2f} s, {OUT.stat().st_size} bytes: {' / '.join(PHRASES)}")


if __name__ == "__main__":
    main()
