"""Speech recognition on recordings of real people, in the WAV formats people's devices produce."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from assistant.drain.analysis import word_errors
from assistant.speech.asr import transcribe
from assistant.speech.sphinx_asr import SphinxTranscriber
from assistant.speech.wav import convert, read_wav

PEOPLE = Path(__file__).resolve().parent / "data" / "people"


def cases() -> list[dict[str, str]]:
    with (PEOPLE / "transcripts.tsv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def heard() -> dict[str, str]:
    """Every clip recognised once, in file order, by one fallback recogniser (as a device would)."""
    t = SphinxTranscriber()
    try:
        return {c["file"]: transcribe(t, convert(read_wav(PEOPLE / c["file"]), t.rate, 1)).text for c in cases()}
    finally:
        t.close()


def test_every_format_reads_as_real_speech() -> None:
    for case in cases():
        clip = read_wav(PEOPLE / case["file"])
        assert 0.8 < clip.seconds < 10, case["file"]


@pytest.mark.parametrize("kind, limit", [("command", 0.15), ("digits", 0.0), ("read speech", 0.45)])
def test_fallback_word_error_rate_on_people(heard: dict[str, str], kind: str, limit: float,
                                            record_property: pytest.RecordProperty) -> None:
    errors = words = 0
    for case in (c for c in cases() if c["kind"] == kind):
        hyp = heard[case["file"]]
        wrong, count = word_errors(case["transcript"], hyp)
        errors += wrong
        words += count
    wer = errors / words
    record_property(f"wer_{kind}", round(wer, 3))
    assert wer <= limit, f"{kind}: WER {wer:.2f} over {words} words"
