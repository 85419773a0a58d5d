"""The system bench's own parts that need no virtual machine (tests/system): how it reads the guest's
journal, judges a turn log after a power cut, a drain run's position and an fsck report, the
configuration it writes into the guest, its device-tree edit and its command line. The bench itself
boots a VM for minutes per scenario and runs as its own command (README, "Measuring")."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.config import load_config

SYSTEM = Path(__file__).resolve().parent / "system"
sys.path.insert(0, str(SYSTEM))

import bench  # noqa: E402
import images  # noqa: E402
from audio_check import sound_profile  # noqa: E402
from journal import Journal  # noqa: E402
from vm import ARCHES, Guest  # noqa: E402

LINES = [
    "[   12.345678] pi-bench systemd[1]: Starting assistant.service - Offline voice assistant appliance...",
    "[  117.141817] pi-bench assistant[428]: 2026-12-06 06:49:39,949 INFO assistant.speech.pipeline: "
    "[t1-1a72] heard (pocketsphinx (fallback), 1.33 s after end of audio): 'what is the capital of france'",
    "[  290.443666] pi-bench assistant[428]: 2026-12-06 06:52:33,249 INFO assistant.session: "
    "[t1-1a72] turn record on disk: /var/lib/assistant/turns.jsonl",
    "[  348.916662] pi-bench systemd[1]: assistant.service: Watchdog timeout (limit 30s)!",
]


def test_journal_lines_are_parsed_and_searched_after_a_mark(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    path.write_text("\n".join(LINES[:2]) + "\n" + LINES[2][:40])  # the last line still arriving
    j = Journal(path)
    heard = j.find(r"\] heard \(")
    assert len(heard) == 1 and heard[0].t == pytest.approx(117.141817)
    assert heard[0].ident == "assistant" and heard[0].pid == 428
    assert bench.turn_id_of(heard[0].msg.split(": ", 1)[1]) == "t1-1a72"
    assert j.find("turn record on disk") == []  # a partial line is not read yet
    mark = j.mark
    with path.open("a") as fh:
        fh.write(LINES[2][40:] + "\n" + LINES[3] + "\n")
    assert j.find("heard", after=mark) == []
    done = j.wait("turn record on disk: ", 0, after=mark)
    assert done is not None and bench.turn_id_of(done.msg.split(": ", 1)[1]) == "t1-1a72"
    assert j.find("Watchdog timeout", ident="systemd")[0].t == pytest.approx(348.916662)
    assert j.wait("never said", 0) is None
    assert j.tail(1) == LINES[3]


def record(tid: str) -> bytes:
    return json.dumps({"schema": 1, "turn_id": tid, "words": 3}).encode()


def test_a_turn_log_after_a_power_cut_holds_every_reported_turn_once() -> None:
    # NUL bytes where a cut left allocated blocks unwritten (the next append starts a new line after
    # them), and a torn last line: neither was reported on disk, so neither is a loss.
    log = b"\n".join([record("t1"), record("t2"), b"\0" * 64, record("t3"), record("t4")[:20]])
    check = bench.check_turn_log(log, {"t1", "t2", "t3"})
    assert (check.records, check.duplicated, check.missing) == (3, [], [])
    assert check.unreadable == 2

    check = bench.check_turn_log(b"\n".join([record("t1"), record("t1"), b"\0\0\0"]), {"t1", "t2"})
    assert check.duplicated == ["t1"] and check.missing == ["t2"]
    assert bench.check_turn_log(b"", {"t9"}).missing == ["t9"]


def test_the_drain_position_is_read_from_its_turn_ids() -> None:
    run = "20261206-071500-adaptive"
    log = b"\n".join([record(f"{run}#0"), record(f"{run}#1"), record(f"{run}#2")[:30], record("t7")])
    assert bench.next_seq(log) == 2
    assert bench.next_seq(b"") == 0


def test_fsck_reports() -> None:
    clean = ("benchroot: recovering journal\nbenchroot: clean, 41230/655360 files, 602818/2621440 blocks\n"
             "[    3.1] EXT4-fs (vda): recovery complete\n"
             "[    3.2] EXT4-fs (vda): mounted filesystem with ordered data mode. Quota mode: none.\n")
    assert bench.fsck_problem(clean) is None
    bad = clean + "benchroot: ***** FILE SYSTEM WAS MODIFIED *****\n"
    assert bench.fsck_problem(bad) == "benchroot: ***** FILE SYSTEM WAS MODIFIED *****"
    assert bench.fsck_problem("[ 9.0] EXT4-fs error (device vda): ext4_lookup:1855: inode #2") is not None


def test_the_guest_configuration_is_one_the_appliance_accepts(tmp_path: Path) -> None:
    """The bench points the installed appliance at its devices with the Python in provision.sh: every
    key it writes must still exist (a key moved in the appliance fails the guest's ``config check``
    twenty minutes into an image build)."""
    script = (SYSTEM / "guest" / "provision.sh").read_text()
    code = re.search(r"<<'PY'\n(.*?)\nPY\n", script, re.S)
    assert code is not None
    cfg = tmp_path / "config.yaml"
    cfg.write_text((Path(__file__).resolve().parents[1] / "deploy" / "config.example.yaml").read_text())
    subprocess.run([sys.executable, "-c", code.group(1), str(cfg), "0"], check=True, capture_output=True)
    loaded = load_config(cfg, search=False)
    assert loaded.mic.device == "hw:0,1" and loaded.speaker.device == "hw:1,0"
    assert loaded.battery.i2c_bus == 0 and loaded.shutdown.hold_s == bench.HOLD_S
    assert loaded.service.turn_budget_s > 120


def test_scenario_selection() -> None:
    assert bench.parse_args(["--scenarios", "quick"]).scenarios == bench.QUICK
    args = bench.parse_args(["--scenarios", "boot, cut", "--cuts", "3", "--seed", "7"])
    assert args.scenarios == ("boot", "cut") and args.cuts == 3 and args.seed == 7
    with pytest.raises(SystemExit):
        bench.parse_args(["--scenarios", "boot,teleport"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--model", "vosk-en"])


def test_the_arm64_device_tree_loses_a_node_and_its_children() -> None:
    dts = ("/ {\n\tpl061@9030000 {\n\t\tphandle = <0x8003>;\n\t\tinner {\n\t\t\tx = <1>;\n\t\t};\n\t};\n"
           "\tpl011@9000000 {\n\t\tclocks = <0x8000>;\n\t};\n};\n")
    out = images._drop_node(dts, "pl061@")
    assert "pl061" not in out and "inner" not in out and "pl011@9000000" in out
    assert out.count("{") == out.count("}")


def test_image_keys_follow_file_contents(tmp_path: Path) -> None:
    f = tmp_path / "build-base.sh"
    f.write_text("echo one\n")
    first = images.digest("amd64", f)
    assert images.digest("amd64", f) == first and images.digest("arm64", f) != first
    f.write_text("echo two\n")
    assert images.digest("amd64", f) != first


def test_the_guest_runs_under_tcg_and_never_reboots(tmp_path: Path) -> None:
    g = Guest(ARCHES["amd64"], tmp_path / "vmlinuz", tmp_path / "initrd", tmp_path / "d.qcow2",
              tmp_path / "b.img", tmp_path, "x", cmdline="bench.gauge=ina219")
    cmd = g.command()
    assert "tcg,thread=multi" in cmd and "-no-reboot" in cmd and "-enable-kvm" not in cmd
    assert any("readonly=on" in a and "b.img" in a for a in cmd)
    assert cmd[cmd.index("-append") + 1].endswith("bench.gauge=ina219")


def test_sound_profile_of_a_loopback_recording() -> None:
    rate = 22050
    silence = np.zeros(rate, dtype=np.int16)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.int16)
    p = sound_profile(np.concatenate([silence, tone, silence]), rate)
    assert p["seconds"] == pytest.approx(2.5, abs=0.01)
    assert p["sound_s"] == pytest.approx(0.5, abs=0.06)
    assert p["first_s"] == pytest.approx(1.0, abs=0.06) and p["last_s"] == pytest.approx(1.5, abs=0.06)
    assert sound_profile(silence, rate)["first_s"] == -1.0


def test_an_answer_recording_is_judged_against_the_reply_and_the_voice() -> None:
    # Measured: the loopback recording of "The capital of France is Paris." heard better than the
    # host's own clip of the same reply; that is a pass, whatever the two transcripts share.
    heard_well = {"sound_s": 1.85, "reference_sound_s": 1.5, "wer": 0.167, "reference_wer": 0.833,
                  "heard": "the capital of france is spirits", "reference_heard": "the cap pope francis parents"}
    assert bench.answer_problem(heard_well) is None
    chopped = dict(heard_well, sound_s=0.6)
    assert "0.60 s of sound" in str(bench.answer_problem(chopped))
    garbled = dict(heard_well, wer=0.9, reference_wer=0.2, heard="the cat")
    assert "word error rate 0.90" in str(bench.answer_problem(garbled))


def test_what_was_heard_and_replied_is_read_from_the_log_lines() -> None:
    line = LINES[1].split(": ", 1)[1]
    assert bench.quoted(line) == "what is the capital of france"
    reply = ("2026-12-06 08:23:05,334 INFO assistant.speech.pipeline: [t000001] reply (7 tokens, 6 words, first audio "
             "116.27 s, total 116.27 s): \"It's Paris: the capital.\"")
    assert bench.quoted(reply) == "It's Paris: the capital."


def test_a_power_off_is_told_from_a_line_that_rules_it_out() -> None:
    rx = re.compile(bench.POWER_OFF)
    assert rx.search("WARNING assistant.device.appliance: shutting down: battery empty (6.20 V) for 20 s on battery")
    assert rx.search("INFO assistant.device.shutdown: power-off command accepted")
    assert rx.search("System is powering down.")
    assert not rx.search("ERROR assistant.device.appliance: battery alarm: no battery gauge (...): running as on "
                         "external power, no power-off on an empty pack; looking for it again")


E2FS = all(shutil.which(t) for t in ("mkfs.ext4", "e2fsck", "debugfs"))


@pytest.mark.skipif(not E2FS, reason="e2fsprogs not installed")
def test_the_host_fsck_verdict_on_a_sound_and_a_damaged_file_system(tmp_path: Path) -> None:
    """The cut scenario checks the powered-off disk with ``e2fsck -fy`` on the host: real e2fsck output
    of a sound ext4 image has no problem line; one whose file's inode was wiped has."""
    tree = tmp_path / "tree"
    (tree / "var" / "lib").mkdir(parents=True)
    (tree / "var" / "lib" / "turns.jsonl").write_text("{}\n" * 100)
    image = tmp_path / "root.img"
    subprocess.run(["mkfs.ext4", "-q", "-L", "benchroot", "-d", str(tree), str(image), "16M"], check=True)
    sound = subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True, text=True)
    assert sound.returncode == 0 and bench.fsck_problems(sound.stdout + sound.stderr) == []
    subprocess.run(["debugfs", "-w", "-R", "clri /var/lib/turns.jsonl", str(image)], check=True, capture_output=True)
    damaged = subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True, text=True)
    assert damaged.returncode == 1 and bench.fsck_problems(damaged.stdout + damaged.stderr)


def test_ext4_recovery_after_a_cut_is_not_damage() -> None:
    said = """e2fsck 1.47.0 (5-Feb-2023)
benchroot: recovering journal
Clearing orphaned inode 131090 (uid=995, gid=995, mode=0100600, size=0)
Pass 1: Checking inodes, blocks, and sizes
Pass 2: Checking directory structure
Pass 3: Checking directory connectivity
Pass 4: Checking reference counts
Pass 5: Checking group summary information
Free blocks count wrong (2201322, counted=2201250).
Fix? yes

Free inodes count wrong (612233, counted=612230).
Fix? yes


benchroot: ***** FILE SYSTEM WAS MODIFIED *****
benchroot: 43130/655360 files (0.2% non-contiguous), 420190/2621440 blocks
"""
    assert bench.fsck_problems(said) == []
    assert bench.fsck_problems(said + "Inode 1234 has illegal block(s).  Clear? yes\n") == [
        "Inode 1234 has illegal block(s).  Clear? yes"]


def test_the_guest_helpers_import_what_the_appliance_has() -> None:
    """ina219_chip.py runs in the guest on the installed appliance's modules: a module the appliance
    moved would only show twenty minutes into a bench run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ina219_chip", SYSTEM / "guest" / "ina219_chip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SHUNT_OHMS == 0.1
