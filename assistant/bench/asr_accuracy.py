"""How well each recogniser hears the first question after a start and later ones, streamed and as files.

Two sets: questions spoken by Piper in three WAV formats people have (22.05 kHz mono; 48 kHz
stereo with noise at 20 dB SNR, at a lower level; 16 kHz mono) and the recordings of people in
tests/data/people (when the repository's tests are present). Per engine and set, word error rate:

- ``cold_file``: a recogniser started afresh for every file, the file decoded as a recording
  (what ``assistant ask --wav`` and the drain test's WAV prompts get);
- ``warm_file``: one recogniser for the whole set, files decoded as recordings;
- ``cold_stream_prior``: started afresh per file with no saved state, streamed as from a microphone
  (the first question ever on a new device);
- ``cold_stream_saved``: started afresh per file from the state the earlier starts saved (the first
  question after every later boot);
- ``warm_stream``: one recogniser, every file streamed in turn (the tenth question).

And the time to the final transcript after the last chunk, streamed (fed as fast as taken) and as
a file, in ms per second of audio and in total.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.stats import median
from assistant.bench.speech_bench import AsrEngine, SpokenQuestion, mic_chunks
from assistant.speech.words import word_errors
from assistant.messages import AudioClip
from assistant.speech.asr import Transcriber
from assistant.speech.wav import convert, read_wav

_LOG = logging.getLogger(__name__)

PEOPLE_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "people"
"""Recordings of people with their transcripts (in a checkout of the repository)."""
MODES = ("cold_file", "warm_file", "cold_stream_prior", "cold_stream_saved", "warm_stream")
NOISE_SNR_DB = 20.0
"""Signal-to-noise ratio of the noisy 48 kHz format (dB)."""


@dataclass(frozen=True)
class Utterance:
    """One recording to recognise, with what was said."""

    name: str
    reference: str
    clip: AudioClip
    """As the file holds it: its own rate and channels."""
    kind: str


def piper_formats(questions: Sequence[SpokenQuestion]) -> list[Utterance]:
    """Each Piper question in three formats: 22.05 kHz mono; 48 kHz stereo at -8 dB with white noise
    at ``NOISE_SNR_DB``; 16 kHz mono (noise from a fixed seed, so runs compare)."""
    out: list[Utterance] = []
    for i, q in enumerate(questions):
        base = convert(q.clip, 22050, 1)
        out.append(Utterance(f"piper-{i:02d}-22k", q.text, base, "22.05 kHz mono"))
        x = np.frombuffer(convert(base, 48000, 1).pcm, "<i2").astype(np.float64) / 32768.0
        noise = np.random.default_rng(i).normal(0.0, 1.0, x.size)
        noise *= np.sqrt(np.mean(x**2) / 10 ** (NOISE_SNR_DB / 10))
        y = np.clip(0.4 * (x + noise), -1.0, 1.0)
        stereo = np.stack([y, 0.8 * y], 1).reshape(-1)
        clip = AudioClip(np.round(stereo * 32767).astype("<i2").tobytes(), 48000, 2)
        out.append(Utterance(f"piper-{i:02d}-48k-noise", q.text, clip, "48 kHz stereo, noise"))
        out.append(Utterance(f"piper-{i:02d}-16k", q.text, convert(base, 16000, 1), "16 kHz mono"))
    return out


def people_recordings(root: Path = PEOPLE_DIR) -> list[Utterance]:
    """The recordings of people and their transcripts; empty when the directory is not there."""
    table = root / "transcripts.tsv"
    if not table.is_file():
        _LOG.info("no recordings of people at %s (not a repository checkout): that set is skipped", root)
        return []
    with table.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [Utterance(r["file"], r["transcript"], read_wav(root / r["file"]), r["kind"]) for r in rows]


def _decode(t: Transcriber, clip: AudioClip, block_s: float, whole: bool) -> tuple[str, float]:
    """(final text, seconds from handing over the last chunk to the final transcript)."""
    chunks, _ = mic_chunks(clip, block_s)
    session = t.session(whole=True) if whole else t.session()
    for chunk in chunks:
        session.feed(chunk)
    t0 = time.perf_counter()
    text = session.finish().text
    return text, time.perf_counter() - t0


def _run_mode(open_asr: Callable[[Path | None], Transcriber], clips: list[AudioClip], mode: str,
              block_s: float) -> tuple[list[str], list[float]]:
    texts: list[str] = []
    waits: list[float] = []
    whole = mode.endswith("_file")
    with tempfile.TemporaryDirectory(prefix="asr-state-") as tmp:
        state = Path(tmp) if mode == "cold_stream_saved" else None
        shared = open_asr(None) if mode.startswith("warm") else None
        try:
            for clip in clips:
                t = shared or open_asr(state)
                try:
                    text, wait = _decode(t, clip, block_s, whole)
                finally:
                    if shared is None:
                        t.close()
                texts.append(text)
                waits.append(wait)
        finally:
            if shared is not None:
                shared.close()
    return texts, waits


def measure_accuracy(engine: AsrEngine, open_asr: Callable[[Path | None], Transcriber],
                     sets: dict[str, list[Utterance]], *, rate: int, block_s: float) -> dict[str, Any]:
    """Word error rate per set and mode (see the module), and the final-result timings of file and stream.

    ``open_asr(state_dir)`` starts the engine afresh, keeping its saved state in ``state_dir`` (None:
    none kept). For an engine of another language only the timings and whether cold and warm
    transcripts agree mean anything.
    """
    out: dict[str, Any] = {"engine": engine.label, "english": engine.english, "modes": list(MODES), "sets": {}}
    for name, utterances in sets.items():
        if not utterances:
            continue
        clips = [convert(u.clip, rate, 1) for u in utterances]
        audio_s = sum(c.seconds for c in clips)
        row: dict[str, Any] = {"utterances": len(utterances), "audio_s": audio_s, "wer": {}, "transcripts": {}}
        for mode in MODES:
            texts, waits = _run_mode(open_asr, clips, mode, block_s)
            edits = sum(word_errors(u.reference, t)[0] for u, t in zip(utterances, texts))
            words = sum(word_errors(u.reference, "")[1] for u in utterances)
            row["wer"][mode] = edits / words if engine.english and words else None
            row["transcripts"][mode] = texts
            row.setdefault("final_wait_s", {})[mode] = {"median": median(waits), "total": sum(waits),
                                                        "ms_per_audio_s": 1000.0 * sum(waits) / audio_s}
        row["cold_warm_same"] = sum(a == b for a, b in zip(row["transcripts"]["cold_stream_prior"],
                                                           row["transcripts"]["warm_stream"])) / len(utterances)
        if engine.english:
            kinds = sorted({u.kind for u in utterances})
            row["wer_by_kind"] = {k: _kind_wer(utterances, row["transcripts"], k) for k in kinds}
        out["sets"][name] = row
    out["method"] = ("WER = word edits / reference words over the set (the bench's word_errors); final wait = "
                     "last chunk handed over (chunks fed as fast as taken) to the final transcript; a file is "
                     "decoded whole at finish(), so its wait holds the whole decode")
    return out


def _kind_wer(utterances: list[Utterance], transcripts: dict[str, list[str]], kind: str) -> dict[str, float]:
    picked = [i for i, u in enumerate(utterances) if u.kind == kind]
    words = sum(word_errors(utterances[i].reference, "")[1] for i in picked)
    return {mode: sum(word_errors(utterances[i].reference, texts[i])[0] for i in picked) / words
            for mode, texts in transcripts.items()}
