"""`assistant demo` and `assistant ask`: one spoken exchange, summarised for a person or as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.resources
import json
import logging
import time
from pathlib import Path
from typing import Any

from assistant.config import AssistantConfig, ensure_dir
from assistant.messages import TurnRecord
from assistant.models.twin import refuse_for_talking
from assistant.session import Session, ladder_for
from assistant.speech.asr import Recording
from assistant.speech.pipeline import chunk_pcm
from assistant.speech.speaker import WavSpeaker
from assistant.speech.wav import convert, read_wav

_LOG = logging.getLogger(__name__)

DEMO_QUESTION = "question.wav"
"""The bundled spoken question (assistant/data), spoken by Piper."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="a full spoken exchange on the embedded defaults")
    demo.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    demo.add_argument("--out", type=Path, help="answer WAV (default: STATE_DIR/answers/demo-answer.wav)")
    demo.set_defaults(func=run_demo)
    ask = sub.add_parser("ask", help="one turn from a WAV file or from text")
    src = ask.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav", type=Path, help="the spoken question, any common WAV format")
    src.add_argument("--text", help="the question as text (skips ASR)")
    ask.add_argument("--out", type=Path, help="answer WAV (default: STATE_DIR/answers/answer-<time>.wav)")
    ask.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    ask.set_defaults(func=run_ask)


def demo_question() -> Path:
    """Path of the bundled spoken question."""
    return Path(str(importlib.resources.files("assistant") / "data" / DEMO_QUESTION))


def _default_out(cfg: AssistantConfig, name: str) -> Path:
    return ensure_dir(cfg.paths.state_dir / "answers") / name


def one_turn(cfg: AssistantConfig, *, wav: Path | None, text: str | None, out: Path) -> tuple[TurnRecord, dict[str, Any]]:
    """Load the engines, run one turn and write the answer WAV; returns the record and its JSON form."""
    chunks = None
    if wav is not None:
        clip = read_wav(wav)  # read before loading models: a bad file fails fast
    refuse_for_talking(ladder_for(cfg), "assistant demo/ask")
    t0 = time.perf_counter()
    with Session(cfg, with_asr=wav is not None) as session:
        load_s = time.perf_counter() - t0
        if wav is not None and session.transcriber is not None:
            chunks = Recording(chunk_pcm(convert(clip, session.transcriber.rate, 1), cfg.mic.block_ms / 1000))
        with WavSpeaker(out) as speaker:
            record = session.run_turn(speaker, audio=chunks, text=text)
        entry = session.last_entry
    data = dataclasses.asdict(record)
    data["turn_log"] = entry.to_json() if entry is not None else None
    data["answer_wav"] = str(out)
    data["load_s"] = round(load_s, 3)
    if wav is not None:
        data["question_wav"] = str(wav)
    return record, data


def _report(record: TurnRecord, data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} s"
    if record.transcript and data.get("question_wav"):
        print(f"Heard ({record.asr_engine}): {record.transcript}")
    else:
        print(f"Asked: {record.transcript}")
    print(f"Reply ({record.llm_model}): {record.reply}")
    print(f"  {record.words} words, {record.tokens} tokens"
          + (f", {record.tps:.0f} tok/s" if record.tps else ""))
    print(f"  ASR final {s(record.asr_final_s)}, first token {s(record.first_token_s)}, "
          f"first audio {s(record.first_audio_s)}, total {s(record.total_s)} (from end of question)")
    print(f"  Answer audio: {data['answer_wav']} ({record.audio_out_s:.1f} s)")


def run_demo(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    out = args.out or _default_out(cfg, "demo-answer.wav")
    record, data = one_turn(cfg, wav=demo_question(), text=None, out=out)
    _report(record, data, args.json)
    return 0


def run_ask(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    out = args.out or _default_out(cfg, time.strftime("answer-%Y%m%d-%H%M%S.wav"))
    record, data = one_turn(cfg, wav=args.wav, text=args.text, out=out)
    _report(record, data, args.json)
    return 0
