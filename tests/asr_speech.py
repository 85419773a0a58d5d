"""Test helpers: spoken English questions from two different synthesizers, and error rates."""

from __future__ import annotations

import re
import shutil
import subprocess

from assistant.messages import AudioClip
from assistant.speech.tts import Synthesizer
from assistant.speech.wav import convert, parse_wav

QUESTIONS = (
    "What is the capital of France?",
    "How far away is the moon?",
    "What time is it in London?",
    "Who wrote the play Romeo and Juliet?",
    "How many legs does a spider have?",
    "What is the weather like today?",
    "Set a timer for ten minutes.",
    "How do you make a cup of tea?",
    "What is the largest ocean on Earth?",
    "Tell me a joke about computers.",
)
"""Ten questions of the kind the appliance is asked."""

ESPEAK_VOICES = ("en-us+m3", "en-us+f2")
"""espeak-ng voices: a formant synthesizer unlike Piper, one male and one female variant."""


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, as recognisers write them."""
    return re.findall(r"[a-z0-9']+", text.lower())


def edit_distance(ref: list[str] | str, hyp: list[str] | str) -> int:
    """Levenshtein distance between two token sequences (or strings, by character)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[len(hyp)]


def error_rate(pairs: list[tuple[str, str]]) -> float:
    """Word error rate over (reference, hypothesis) pairs: total edits / total reference words."""
    edits = sum(edit_distance(words(ref), words(hyp)) for ref, hyp in pairs)
    return edits / sum(len(words(ref)) for ref, _ in pairs)


def char_error_rate(ref: str, hyp: str) -> float:
    """Character error rate, spaces ignored (for languages whose word split varies, like Korean)."""
    r, h = ref.replace(" ", ""), hyp.replace(" ", "")
    return edit_distance(r, h) / len(r)


def common_ratio(ref: str, hyp: str) -> float:
    """Longest common subsequence of characters (spaces ignored) as a fraction of the reference."""
    r, h = ref.replace(" ", ""), hyp.replace(" ", "")
    row = [0] * (len(h) + 1)
    for a in r:
        diag = 0
        for j, b in enumerate(h, 1):
            diag, row[j] = row[j], diag + 1 if a == b else max(row[j], row[j - 1])
    return row[len(h)] / len(r)


def piper_speech(synth: Synthesizer, text: str, rate: int = 16000) -> AudioClip:
    """``text`` spoken by a Piper voice, converted to ``rate`` Hz mono."""
    clips = list(synth.synthesize(text))
    first = clips[0]
    pcm = b"".join(c.pcm for c in clips)
    return convert(AudioClip(pcm=pcm, rate=first.rate, channels=first.channels), rate)


def espeak_speech(text: str, voice: str, rate: int = 16000) -> AudioClip:
    """``text`` spoken by espeak-ng (Debian package ``espeak-ng``), converted to ``rate`` Hz mono."""
    exe = shutil.which("espeak-ng")
    assert exe is not None, "espeak-ng is not installed: apt-get install espeak-ng"
    wav = subprocess.run([exe, "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
    return convert(parse_wav(wav, f"espeak-ng -v {voice}"), rate)


def silence(seconds: float, rate: int = 16000) -> bytes:
    """Digital silence as s16le PCM."""
    return b"\0\0" * int(rate * seconds)
