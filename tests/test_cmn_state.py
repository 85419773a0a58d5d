"""The recogniser's saved normalisation state: round trip, bad files, and starting adapted on real recordings."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from assistant.speech.words import word_errors
from assistant.messages import AudioClip
from assistant.speech.asr import transcribe
from assistant.speech.cmn_state import CMN_PRIOR, DIMS, CmnStore, implausible
from assistant.speech.sphinx_asr import SphinxTranscriber, model_id
from assistant.speech.wav import convert, read_wav

PEOPLE = Path(__file__).resolve().parent / "data" / "people"
MEAN = (55.0, 4.0, -3.0, 9.0, -1.0, 2.0, -4.0, -3.0, -5.0, 3.0, -4.0, 3.0, 0.0)


def store(tmp_path: Path, device: str = "USB Audio", rate: int = 16000, model: str = "m1") -> CmnStore:
    return CmnStore(tmp_path, device=device, rate=rate, model=model)


def people(kind: str | None = None) -> list[tuple[str, AudioClip]]:
    with (PEOPLE / "transcripts.tsv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [(r["transcript"], convert(read_wav(PEOPLE / r["file"]), 16000, 1)) for r in rows
            if kind is None or r["kind"] == kind]


def test_round_trip(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.save(MEAN) and s.save(MEAN)
    again = store(tmp_path)
    assert again.load() == pytest.approx(MEAN)
    assert again.utterances == 2
    assert [p.name for p in (tmp_path / "asr").iterdir()] == ["cmn-USB_Audio-16000.json"], "no temporary file left"


def test_missing_file_gives_none_without_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert store(tmp_path).load() is None
    assert not caplog.records


@pytest.mark.parametrize("content, why", [
    (b"", "not JSON"),
    (b"{\"schema\": 1, \"device\": \"USB Audio\", \"rat", "not JSON"),
    (b"\xff\xfe\x00garbage", "cannot read"),
    (b"[1, 2, 3]", "schema"),
    (b"{\"schema\": 99}", "schema"),
])
def test_corrupt_file_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes,
                                                 why: str) -> None:
    s = store(tmp_path)
    s.path.parent.mkdir(parents=True)
    s.path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert s.load() is None
    assert why in caplog.text and str(s.path) in caplog.text


@pytest.mark.parametrize("change, why", [
    ({"device": "default"}, "made for device 'default'"),
    ({"rate": 8000}, "made at 8000 Hz"),
    ({"model": "vosk"}, "made for the model 'vosk'"),
    ({"mean": [55.0] * 5}, "5 coefficients"),
    ({"mean": [500.0, *MEAN[1:]]}, "energy c0"),
    ({"mean": [55.0, 900.0, *MEAN[2:]]}, "magnitude"),
    ({"mean": ["55", *MEAN[1:]]}, "not a number"),
    ({"mean": None}, "'mean' is missing"),
])
def test_state_from_elsewhere_or_implausible_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                         change: dict[str, object], why: str) -> None:
    s = store(tmp_path)
    assert s.save(MEAN)
    data = json.loads(s.path.read_text())
    data.update(change)
    s.path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        assert store(tmp_path).load() is None
    assert why in caplog.text


def test_nan_in_the_file_is_implausible(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.save(MEAN)
    s.path.write_text(s.path.read_text().replace("55.0", "NaN"))
    assert store(tmp_path).load() is None


def test_each_device_and_rate_has_its_own_file(tmp_path: Path) -> None:
    assert store(tmp_path, device="USB Audio").save(MEAN)
    other = (60.0, *MEAN[1:])
    assert store(tmp_path, device="seeed-2mic/voicecard").save(other)
    assert store(tmp_path, rate=8000).save(MEAN)
    assert store(tmp_path, device="USB Audio").load() == pytest.approx(MEAN)
    assert store(tmp_path, device="seeed-2mic/voicecard").load() == pytest.approx(other)
    assert len(list((tmp_path / "asr").iterdir())) == 3


def test_unwritable_state_dir_warns_and_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert store(tmp_path).save(MEAN)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be")
    with caplog.at_level(logging.WARNING):
        assert not store(blocked).save(MEAN)
    assert "cannot save" in caplog.text
    assert store(tmp_path).load() == pytest.approx(MEAN), "the good state is untouched"


def test_implausible_mean_is_never_saved(tmp_path: Path) -> None:
    assert not store(tmp_path).save((5.0,) * DIMS)
    assert not store(tmp_path).path.exists()


def test_prior_is_plausible() -> None:
    assert implausible(CMN_PRIOR) is None


# -- the recogniser ---------------------------------------------------------------------------------


def test_good_utterance_saves_the_state_and_the_next_start_begins_from_it(tmp_path: Path) -> None:
    first = SphinxTranscriber(state_dir=tmp_path, device="USB Audio")
    assert first.cmn_start == "prior"
    assert first.live_mean() == pytest.approx(CMN_PRIOR, abs=1e-3)
    ref, clip = people("read speech")[0]
    assert transcribe(first, clip).text
    adapted = first.live_mean()
    assert adapted != pytest.approx(CMN_PRIOR, abs=0.5)
    first.close()
    second = SphinxTranscriber(state_dir=tmp_path, device="USB Audio")
    assert second.cmn_start == "saved"
    assert second.live_mean() == pytest.approx(adapted, abs=1e-3)
    other_device = SphinxTranscriber(state_dir=tmp_path, device="HDMI")
    assert other_device.cmn_start == "prior"
    other_rate = SphinxTranscriber(state_dir=tmp_path, device="USB Audio", rate=22050)
    assert other_rate.cmn_start == "prior"
    data = json.loads(CmnStore(tmp_path, device="USB Audio", rate=16000, model=model_id()).path.read_text())
    assert data["device"] == "USB Audio" and data["rate"] == 16000 and data["model"] == model_id()


def test_silence_and_taps_do_not_overwrite_the_state(tmp_path: Path) -> None:
    t = SphinxTranscriber(state_dir=tmp_path)
    transcribe(t, people("read speech")[0][1])
    path = CmnStore(tmp_path, device="default", rate=16000, model=model_id()).path
    saved = path.read_bytes()
    transcribe(t, AudioClip(b"\0\0" * 16000 * 2, 16000))  # 2 s of digital silence: nothing heard
    transcribe(t, AudioClip(people("command")[0][1].pcm[: 2 * 8000], 16000))  # a 0.5 s tap
    assert path.read_bytes() == saved


def test_corrupt_saved_state_still_gives_a_working_recogniser(tmp_path: Path) -> None:
    path = CmnStore(tmp_path, device="default", rate=16000, model=model_id()).path
    path.parent.mkdir(parents=True)
    path.write_text("{\"schema\": 1, \"mean\": [1e9")
    t = SphinxTranscriber(state_dir=tmp_path)
    assert t.cmn_start == "prior"
    ref, clip = people("command")[0]
    assert word_errors(ref, transcribe(t, clip).text)[0] <= 1
    assert json.loads(path.read_text())["schema"] == 1, "replaced by a good state after a good utterance"


def test_first_utterance_after_a_start_is_heard_as_well_as_later_ones(tmp_path: Path) -> None:
    """Real people, streamed as from a microphone: each file after a fresh start from the saved state
    must do as well as one long-running recogniser (the carry-over the state preserves)."""
    clips = people()
    warm = SphinxTranscriber()
    warm_errors = sum(word_errors(ref, transcribe(warm, clip).text)[0] for ref, clip in clips)
    cold_errors = 0
    for ref, clip in clips:
        t = SphinxTranscriber(state_dir=tmp_path)
        cold_errors += word_errors(ref, transcribe(t, clip).text)[0]
        t.close()
    words = sum(len(ref.split()) for ref, _ in clips)
    assert cold_errors <= warm_errors + 0.03 * words, (cold_errors, warm_errors, words)


def test_a_silent_recording_decoded_whole_is_heard_as_nothing() -> None:
    t = SphinxTranscriber()
    final = transcribe(t, AudioClip(b"\0\0" * 16000, 16000), whole=True)
    assert final.is_final and final.text == "" and final.words == ()
    ref, clip = people("command")[0]
    assert word_errors(ref, transcribe(t, clip, whole=True).text)[0] <= 1, "the next recording is heard"
