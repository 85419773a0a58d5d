"""The faults the soak injects behave like the failures they stand for, and the checks catch what they should."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.sim.devices import SimMicrophone
from assistant.errors import AudioDeviceError, ModelError, ModelNotFound
from assistant.messages import AudioClip, Transcript
from assistant.models import embedded
from assistant.turnlog import TurnLog, read_turns
from assistant.soak.checks import Outcome, Sample, check_log, check_resources, new_handles
from assistant.soak.faults import FlakySpeaker, FlakySynthesizer, FlakyTranscriber, engine_error
from assistant.soak.file_faults import MODEL_FAULTS, DiskFull, ModelFileFault
from assistant.models.gguf_info import check_gguf

TONE = AudioClip(b"\x10\x00" * 1600, 16000, 1)  # 0.1 s


def test_the_speaker_fails_until_it_is_back_and_reopened() -> None:
    speaker = FlakySpeaker(time_scale=10.0)
    speaker.play(TONE)
    assert speaker.wait(1.0) and speaker.played_s == pytest.approx(0.1)
    speaker.unplug()
    with pytest.raises(AudioDeviceError):
        speaker.play(TONE)
    with pytest.raises(AudioDeviceError, match="not present"):
        speaker.reopen()
    speaker.plug()
    with pytest.raises(AudioDeviceError):  # back, but the stream is still the dead one
        speaker.wait(0.1)
    speaker.reopen()
    speaker.play(TONE)
    assert speaker.wait(1.0) and speaker.reopens == 1


def test_the_speaker_plays_in_scaled_time_and_stop_cuts_it() -> None:
    speaker = FlakySpeaker(time_scale=4.0)
    for _ in range(4):
        speaker.play(TONE)  # 0.4 s of audio: 0.1 s at 4x
    t0 = time.monotonic()
    assert not speaker.wait(0.02)
    assert speaker.wait(1.0) and 0.05 < time.monotonic() - t0 < 0.5
    speaker.play(AudioClip(b"\0\0" * 160000, 16000, 1))  # 10 s
    speaker.stop()
    t0 = time.monotonic()
    assert speaker.wait(1.0) and time.monotonic() - t0 < 0.05 and speaker.stops == 1


def test_the_microphone_clock_can_run_faster() -> None:
    mic = SimMicrophone(rate=16000, block_ms=50, time_scale=10.0)
    mic.open()
    mic.discard_backlog()
    t0 = time.monotonic()
    chunks = [mic.read_chunk(1.0) for _ in range(20)]  # 1 s of audio
    took = time.monotonic() - t0
    assert all(c is not None and len(c) == 1600 for c in chunks)
    assert 0.07 < took < 1.0  # paced, ten times faster than the audio's own second


def test_an_unplugged_microphone_fails_until_reopened_and_loses_what_was_said() -> None:
    mic = SimMicrophone(rate=16000, time_scale=10.0)
    mic.open()
    mic.unplug()
    mic.say(TONE)
    with pytest.raises(AudioDeviceError):
        mic.read_chunk(0.0)
    with pytest.raises(AudioDeviceError, match="not present"):
        mic.reopen()
    with pytest.raises(AudioDeviceError):  # closed and failed: still an error, as a real stream reports it
        mic.read_chunk(0.0)
    mic.plug()
    with pytest.raises(AudioDeviceError):
        mic.read_chunk(0.0)
    mic.reopen()
    mic.discard_backlog()
    chunk = mic.read_chunk(1.0)
    assert chunk == b"\0" * 1600  # the speech went into the dead stream


class Session:
    def __init__(self, log: list[bytes]) -> None:
        self.log = log

    def feed(self, pcm: bytes) -> Transcript | None:
        self.log.append(pcm)
        return None

    def finish(self) -> Transcript:
        return Transcript(text="done", is_final=True, engine="scripted")


class Asr:
    engine, rate = "scripted", 16000

    def __init__(self) -> None:
        self.fed: list[bytes] = []
        self.closed = False

    def session(self) -> Session:
        return Session(self.fed)

    def close(self) -> None:
        self.closed = True


def test_an_armed_asr_fails_mid_utterance_once() -> None:
    inner = Asr()
    asr = FlakyTranscriber(inner)
    asr.arm(2, lambda: ModelError("ASR gone (injected)"))
    s = asr.session()
    s.feed(b"a")
    s.feed(b"b")
    with pytest.raises(ModelError):
        s.feed(b"c")
    assert inner.fed == [b"a", b"b"] and asr.fired == 1
    s2 = asr.session()
    s2.feed(b"d")
    assert s2.finish().text == "done" and asr.rate == 16000
    asr.close()
    assert inner.closed


class Voice:
    rate, voice_name = 16000, "scripted"

    def synthesize(self, text: str) -> Iterator[AudioClip]:
        yield TONE
        yield TONE


def test_an_armed_voice_fails_after_its_clips_once() -> None:
    tts = FlakySynthesizer(Voice())
    tts.arm(1, lambda: RuntimeError("onnx crashed (injected)"))
    got = []
    with pytest.raises(RuntimeError):
        for clip in tts.synthesize("hello"):
            got.append(clip)
    assert len(got) == 1 and tts.fired == 1 and tts.rate == 16000
    assert len(list(tts.synthesize("again"))) == 2


def test_engine_errors_are_ours_or_raw() -> None:
    rng = random.Random(3)
    kinds = {type(engine_error(rng, "TTS")()) for _ in range(30)}
    assert kinds == {ModelError, RuntimeError}


@pytest.mark.parametrize("kind", MODEL_FAULTS)
def test_a_broken_model_file_is_refused_and_restored(tmp_path: Path, kind: str) -> None:
    pristine = tmp_path / "pristine.gguf"
    pristine.write_bytes(embedded.smollm2_gguf().read_bytes()[: 2 << 20])  # the header and the first tensors
    path = tmp_path / "tier.gguf"
    path.write_bytes(pristine.read_bytes())
    fault = ModelFileFault(path, pristine)
    fault.damage(kind, random.Random(1))
    if kind == "missing":
        with pytest.raises(ModelNotFound):
            check_gguf(path)
    elif kind == "not_gguf":
        with pytest.raises(ModelError):
            check_gguf(path)
    else:
        assert path.read_bytes() != pristine.read_bytes()
    fault.restore()
    assert path.read_bytes() == pristine.read_bytes() and fault.broken is None
    assert not list(tmp_path.glob(".*restore*"))


def test_the_full_disk_refuses_turn_records_until_freed(tmp_path: Path) -> None:
    disk = DiskFull(tmp_path / "fs", size_kb=256)
    disk.mount()
    try:
        log = TurnLog(disk.mountpoint / "turns.jsonl")
        disk.log_holder = log
        assert log.append({"schema": 1, "turn_id": "before"})
        disk.fill()
        results = [log.append({"schema": 1, "turn_id": f"full{i}", "pad": "x" * 900}) for i in range(8)]
        assert not all(results) and log.failures >= 1  # the page left in the log file may take a few
        disk.free()
        assert log.append({"schema": 1, "turn_id": "after"})
        ids = [r.turn_id for r in read_turns(log.path).entries]
        assert ids[0] == "before" and ids[-1] == "after"
    finally:
        disk.unmount()


FILL_SCRIPT = """
import json, resource, signal, sys
from pathlib import Path
from assistant.turnlog import TurnLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
log = TurnLog(Path(sys.argv[1]))
log.append({"schema": 1, "turn_id": "first"})
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (Path(sys.argv[1]).stat().st_size + 100, hard))
ok = log.append({"schema": 1, "turn_id": "refused", "pad": "x" * 400})
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.append({"schema": 1, "turn_id": "later"})
print(json.dumps({"refused_ok": ok, "failures": log.failures}))
"""


def test_a_record_the_disk_refused_leaves_no_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "turns.jsonl"
    result = subprocess.run([sys.executable, "-c", FILL_SCRIPT, str(log)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"refused_ok": False, "failures": 1}
    read = read_turns(log)
    assert [r.turn_id for r in read.entries] == ["first", "later"]
    assert read.bad_lines == []


def test_the_log_check_matches_turns_to_records(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    log = TurnLog(path)
    for tid in ("a", "b", "b", "stranger"):
        log.append({"schema": 1, "turn_id": tid, "battery_before": {"voltage_v": 7.5, "soc_pct": 80}})
    log.append({"schema": 1, "turn_id": "c", "battery_before": {"voltage_v": 32.7, "soc_pct": 80}})
    with path.open("ab") as fh:
        fh.write(b'{"schema": 1, "turn_id": "d"')  # torn by a dropped write of d
    outcomes = [Outcome("a", 1, "ok", logged=True), Outcome("b", 2, "ok", logged=True),
                Outcome("c", 3, "error", "X", logged=True), Outcome("d", 4, "ok", dropped=True),
                Outcome("e", 5, "ok", logged=True), Outcome("f", 6, "error", "Y")]
    check = check_log(path, outcomes)
    assert check.duplicate_ids == ["b"] and check.missing_ids == ["e"] and check.unexpected_ids == ["stranger"]
    assert check.unlogged == ["f"] and check.dropped_disk_full == 1 and check.torn_last_line == 1
    assert check.absurd_battery and "32.7" in check.absurd_battery[0]
    assert len(check.problems) == 5
    log.append({"schema": 1, "turn_id": "g"})  # closes the torn line: now a bad line in the middle
    later = check_log(path, outcomes)
    assert later.bad_lines == [6] and any(p.startswith("bad lines: [6]") for p in later.problems)  # no excuse


def test_the_resource_check_finds_leaks_and_growth() -> None:
    before, after = Sample(0, 3, 10, 100.0, 50.0), Sample(-1, 3, 10, 100.0, 50.0)
    flat = [Sample(i, 5, 12, 300.0 + (i % 3), 200.0) for i in range(400)]
    assert check_resources(before, after, flat, [], []).problems == []
    growing = [Sample(i, 5 + i // 40, 12 + i // 40, 300.0 + 0.6 * i, 200.0) for i in range(400)]
    leaky_after = Sample(-1, 9, 17, 100.0, 50.0)
    problems = check_resources(before, leaky_after, growing, ["turn-x"], ["/tmp/a", "/tmp/b", "/tmp/c"]).problems
    assert len(problems) == 6, problems  # threads, handles, growth, growth at the end, rising threads and fds
    short = check_resources(before, after, growing[:100], [], [])  # memory still climbing: too short to judge
    assert not short.memory_judged and short.problems == []
    assert new_handles(["/dev/null", "pipe:[1]"], ["/dev/null", "/dev/null", "pipe:[1]", "/tmp/x",
                                                   "/root/.cache/x/.onnxruntime/onnxruntime.db"]) == ["/tmp/x"]


def test_the_disk_full_stand_in_without_mount_rights(tmp_path: Path) -> None:
    disk = DiskFull(tmp_path / "fs")
    disk.mode = "/dev/full"  # what mount() falls back to for a process that may not mount
    log = TurnLog(tmp_path / "turns.jsonl")
    disk.log_holder = log
    disk.fill()
    assert not log.append({"schema": 1, "turn_id": "x"}) and log.failures == 1
    disk.free()
    assert log.append({"schema": 1, "turn_id": "y"}) and log.path == tmp_path / "turns.jsonl"
    assert [r.turn_id for r in read_turns(log.path).entries] == ["y"]
