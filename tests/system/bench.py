"""The system bench: the appliance installed by deploy/install.sh in a Debian VM, booted by systemd
under QEMU, driven through real kernel devices (gpio-sim, i2c-stub, snd-aloop) in the guest.
Run it through tests/system/run.sh, which installs what the host needs first.

Scenarios (each prints its timings and what it checked; the first failure stops the run, names
the scenario and shows the guest's journal, which is also kept in the run directory):
  boot       boot to READY=1 (seconds from kernel start), the service's idle CPU over a minute
  turn       a spoken question into the loopback microphone while the button is held, the answer
             recorded from the loopback speaker and transcribed, its turn log record; barge-in
  restart    kill -9: systemd restarts it and it answers; SIGSTOP: the watchdog restarts it
  power      an INA219 (UPS HAT (B), i2c-stub at 0x42) on external power with a low pack: never
             powers off; no gauge at all: never powers off; a discharging pack crossing the
             cut-off: it says so, and the guest powers itself off
  cut        power cuts at random moments of spoken turns and of a drain run; after each: the
             file system is clean, the turn logs parse, every turn reported on disk is there
             exactly once, the drain run resumes where it was
  uninstall  deploy/uninstall.sh removes the unit, the venv and the polkit rule and keeps the
             configuration and the state; --purge removes those and the user
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from images import HERE, REPO, Installed, base_image, dtb_for, installed_image, log  # noqa: E402
from journal import Journal  # noqa: E402
from vm import ARCHES, Guest, GuestError, ext4_disk, overlay  # noqa: E402

SCENARIOS = ("boot", "turn", "restart", "power", "cut", "uninstall")
QUICK = ("boot", "turn", "restart", "power", "uninstall")
"""The CI subset: everything but the many power cuts (--cuts 2 keeps two of them)."""
HEALTHY_PACK = (7.8, -0.6)
"""What the INA219 measures at boot: a 2S pack at 7.8 V, the Pi drawing 0.6 A from it."""
RECORD_RATE = 22050
STATE_DIR = "/var/lib/assistant"
TURN_LOG = f"{STATE_DIR}/turns.jsonl"
DRAIN_DIR = f"{STATE_DIR}/bench-drain"
VENV = "/opt/assistant/venv"
HOLD_S = 20.0
HOLD_AFTER_S = 8.0
"""How long the bench keeps the button down after the question: under TCG the recogniser runs slower
than real time, and the appliance takes at most 2 s of captured audio after the release."""
"""shutdown.hold_s in the bench's configuration (guest/provision.sh)."""
WATCHDOG_S = 30.0


POWER_OFF = r"shutting down: |power-off command|power-off was refused|System is powering down"
"""Journal lines of a power-off decided or attempted: the appliance's, and logind's. (Not its
"no power-off on an empty pack", which says the opposite.)"""
MAX_TURN_S = 1200.0
"""The longest span the power cuts' moments are drawn over (s), however slow the turns."""


class BenchFailure(Exception):
    """A scenario's check failed."""


@dataclass
class ScenarioResult:
    name: str
    ok: bool = False
    seconds: float = 0.0
    metrics: dict[str, object] = field(default_factory=dict)
    error: str = ""


@dataclass
class Boot:
    guest: Guest
    journal: Journal
    gpio: dict[str, str] = field(default_factory=dict)


@dataclass
class LogCheck:
    """What a turn log holds against the turns reported on disk before a power cut."""

    records: int
    unreadable: int
    """Lines that are not a record (a torn last line after a cut counts here; it is not a loss)."""
    duplicated: list[str]
    missing: list[str]
    """Turns the appliance reported on disk that the log does not hold."""


def check_turn_log(data: bytes, reported: set[str]) -> LogCheck:
    """Every turn reported on disk must be in ``data`` (a JSONL turn log) exactly once."""
    ids: list[str] = []
    bad = 0
    for raw in data.split(b"\n"):
        if not raw.strip(b"\0 \n"):
            bad += 1 if raw else 0  # a run of NUL bytes: blocks allocated, data not written
            continue
        try:
            ids.append(str(json.loads(raw)["turn_id"]))
        except (ValueError, KeyError, TypeError):
            bad += 1
    dup = sorted({i for i in ids if ids.count(i) > 1})
    return LogCheck(len(ids), bad, dup, sorted(reported - set(ids)))


def next_seq(data: bytes) -> int:
    """The sequence number after the highest one in a drain run's turn log (0 when none): its turn
    ids are ``RUN#SEQ`` (torn and foreign lines are skipped)."""
    seqs = []
    for raw in data.split(b"\n"):
        try:
            tid = json.loads(raw)["turn_id"]
            seqs.append(int(tid.rsplit("#", 1)[1]))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            continue
    return max(seqs) + 1 if seqs else 0


FSCK_PROBLEM = re.compile(r"UNEXPECTED INCONSISTENCY|FILE SYSTEM WAS MODIFIED|errors? (found|corrected)|EXT4-fs error",
                          re.I)


RECOVERY = re.compile(
    r"^\s*$|^e2fsck \d|^Pass \d|^[^:]+: recovering journal$|^[^:]+: clean, |^[^:]+: \d+/\d+ files"
    r"|^\d+ inodes? used|^\s*\d+ |^-+$|^Free (blocks|inodes) count wrong|^Clearing orphaned inode"
    r"|^Truncating orphaned inode|^Setting free (inodes|blocks) count|^Fix\? yes$"
    r"|^[^:]+: \*+ FILE SYSTEM WAS MODIFIED \*+$|^Padding at end of inode bitmap is not set")
"""What ``e2fsck -fy`` says about a file system after a power cut that is ext4 doing its job: the
journal replayed, orphans (files deleted while open) released, the summary counters (kept in memory
while mounted) recounted, and its statistics."""


def fsck_problems(output: str) -> list[str]:
    """The lines of ``e2fsck -fy`` output that are damage, not recovery (empty: the file system is sound)."""
    return [line for line in output.splitlines() if not RECOVERY.search(line)]


def fsck_problem(report: str) -> str | None:
    """The first line of a boot's fsck and kernel report that says the file system was not clean."""
    return next((line for line in report.splitlines() if FSCK_PROBLEM.search(line)), None)


def answer_problem(answer: dict[str, object]) -> str | None:
    """Why a recording of the spoken reply (``audio_check.py --reference REPLY``) is not the reply
    played whole and intelligibly, or None. Its sound must last at least 80 % of the reply as Piper
    says it on the host (no dropped or chopped speech), and its transcript must be no more than
    0.25 worse (word error rate against the reply) than that of the host's clip, or within 0.5."""
    sound, ref_sound = float(answer["sound_s"]), float(answer["reference_sound_s"])  # type: ignore[arg-type]
    wer, ref_wer = float(answer["wer"]), float(answer["reference_wer"])  # type: ignore[arg-type]
    if sound < 0.8 * ref_sound:
        return f"{sound:.2f} s of sound, the reply itself is {ref_sound:.2f} s"
    if wer > max(0.5, ref_wer + 0.25):
        return (f"heard as {answer.get('heard')!r} (word error rate {wer:.2f}); the same reply spoken by Piper on "
                f"the host is heard as {answer.get('reference_heard')!r} ({ref_wer:.2f})")
    return None


def quoted(msg: str) -> str:
    """The text an appliance log line ends with, as Python's repr quoted it (``...): 'the text'``)."""
    m = re.search(r"\): (['\"])(.*)\1$", msg)
    return m.group(2) if m else msg.split("): ", 1)[-1]


def turn_id_of(msg: str) -> str:
    """The turn id of an appliance log line (``... [t12] heard ...``)."""
    return msg.split("]")[0].split("[")[-1]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.arch = args.arch
        self.cache = Path(args.cache)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = Path(args.out) if args.out else REPO / "out" / "system" / f"{self.arch}-{stamp}"
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}
        self.results: list[ScenarioResult] = []
        self.installed: Installed | None = None
        self.disk: Path | None = None
        self.bench_disk: Path | None = None
        self.boots = 0
        self.turn_s = 150.0
        """How long a turn takes in this guest (s), press to record: measured by the turn scenario; the power
        cuts' moments are drawn over it."""
        """How long a spoken turn takes here, press to record on disk (measured by `turn`)."""
        self.reported: dict[str, set[str]] = {TURN_LOG: set(), f"{DRAIN_DIR}/turns.jsonl": set()}
        self.rng = random.Random(args.seed)

    # -- images and boots ---------------------------------------------------------------------

    def prepare(self) -> None:
        t0 = time.monotonic()
        base = base_image(self.cache, self.arch, rebuild=self.args.rebuild == "base", timings=self.timings)
        models = dict(m.split("=", 1) for m in self.args.model)
        self.installed = installed_image(
            self.cache, self.arch, base, wheels_from=Path(self.args.wheels) if self.args.wheels else None,
            models={k: Path(v) for k, v in models.items()}, rebuild=self.args.rebuild in ("base", "installed"),
            timings=self.timings, work=self.out)
        self.disk = overlay(self.installed.disk, self.out / "disk.qcow2")
        stage = self.out / "bench-disk"
        shutil.rmtree(stage, ignore_errors=True)
        shutil.copytree(HERE / "guest", stage / "guest")
        shutil.copy2(REPO / "assistant" / "data" / "question.wav", stage / "question.wav")
        self.bench_disk = ext4_disk(stage, self.out / "bench-disk.img", "bench", 32)
        self.timings["images ready"] = time.monotonic() - t0

    def boot(self, label: str, *, gauge: str = "ina219", pack: tuple[float, float] = HEALTHY_PACK,
             extra: str = "") -> Boot:
        assert self.installed is not None and self.disk is not None and self.bench_disk is not None
        self.boots += 1
        base = self.installed.base
        cmdline = f"bench.gauge={gauge} bench.pack={pack[0]},{pack[1]} {extra}".strip()
        guest = Guest(ARCHES[self.arch], base.kernel, base.initrd, self.disk, self.bench_disk, self.out,
                      f"{self.boots:02d}-{label}", cmdline=cmdline, dtb=dtb_for(self.arch, self.out))
        guest.start()
        boot = Boot(guest, Journal(guest.journal_log))
        self.current = boot
        try:
            agent_s = guest.wait_agent(900)
        except GuestError as exc:
            console = guest.console_log.read_text(errors="replace").splitlines()
            why = ""
            if any("systemd-fsck" in line for line in console) and any("reboot: Restarting" in line for line in console):
                why = ("systemd-fsck asked for a reboot during the boot's file-system check (e2fsck changed the "
                       "root file system), and QEMU runs with -no-reboot\n")
            raise BenchFailure(f"boot {guest.label}: {exc}\n{why}console (last lines; all of it in "
                               f"{guest.console_log}):\n" + "\n".join(console[-25:])) from None
        self.timings.setdefault(f"boot to guest agent ({label})", agent_s)
        guest.sh("for i in $(seq 600); do test -e /run/bench/gpio.env && break; sleep 0.5; done", timeout=400)
        env = guest.sh("cat /run/bench/gpio.env 2>/dev/null || true").out
        if "BUTTON=" not in env:
            raise BenchFailure(f"the bench's devices were not set up in the guest\n{boot.journal.tail(40)}")
        boot.gpio = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
        return boot

    def service(self, boot: Boot) -> dict[str, str]:
        props = "ActiveState,SubState,MainPID,NRestarts,ActiveEnterTimestampMonotonic,StatusText,Result"
        out = boot.guest.exec(["systemctl", "show", "assistant.service", f"--property={props}"], timeout=60).out
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_ready(self, boot: Boot, timeout: float, *, not_pid: str | None = None) -> dict[str, str]:
        """The service's properties once it is active (READY=1 sent) with a MainPID other than ``not_pid``."""
        deadline = time.monotonic() + timeout
        while True:
            props = self.service(boot)
            if props.get("ActiveState") == "active" and props.get("MainPID") not in ("0", not_pid):
                return props
            if props.get("ActiveState") == "failed":
                raise BenchFailure(f"assistant.service failed ({props.get('Result')})")
            if time.monotonic() > deadline:
                raise BenchFailure(f"assistant.service not ready after {timeout:.0f} s: {props}")
            time.sleep(1.0)

    def state(self, boot: Boot) -> str:
        return self.service(boot).get("StatusText", "")

    def wait_state(self, boot: Boot, wanted: str, timeout: float) -> float:
        t0 = time.monotonic()
        while self.state(boot) != wanted:
            if time.monotonic() - t0 > timeout:
                raise BenchFailure(f"the appliance did not reach '{wanted}' within {timeout:.0f} s "
                                   f"(status: {self.state(boot)!r})")
            time.sleep(0.2)
        return time.monotonic() - t0

    # -- the devices, from the host ------------------------------------------------------------

    def button(self, boot: Boot, pressed: bool) -> None:
        """Press (pull the line low, as the switch to ground does) or release (back to the pull-up)."""
        pull = "pull-down" if pressed else "pull-up"
        boot.guest.sh(f"echo {pull} > {boot.gpio['BUTTON']}/pull").check("button")

    def led(self, boot: Boot) -> str:
        return boot.guest.sh(f"cat {boot.gpio['LED']}/value").out.strip()

    def play_question(self, boot: Boot) -> None:
        boot.guest.exec(["aplay", "-q", "-D", "plughw:0,0", "/run/bench/disk/question.wav"], timeout=120).check("aplay")

    def record_start(self, boot: Boot, name: str) -> str:
        unit = f"bench-rec-{name}"
        boot.guest.exec(["systemd-run", "--quiet", "--collect", f"--unit={unit}", "arecord", "-q", "-D", "plughw:1,1",
                         "-f", "S16_LE", "-r", str(RECORD_RATE), "-c", "1", "-t", "raw", f"/var/tmp/{name}.raw"]
                        ).check("arecord")
        return unit

    def record_stop(self, boot: Boot, name: str) -> Path:
        boot.guest.exec(["systemctl", "kill", "--signal=INT", f"bench-rec-{name}"])
        boot.guest.sh(f"for i in $(seq 50); do systemctl is-active -q bench-rec-{name} || break; sleep 0.1; done")
        return self.fetch(boot, f"/var/tmp/{name}.raw")

    def fetch(self, boot: Boot, path: str) -> Path:
        local = self.out / f"{boot.guest.label}-{Path(path).name}"
        local.write_bytes(boot.guest.read_file(path))
        return local

    def hear(self, recording: Path, *, reference: str | None = None,
             split_at: float | None = None) -> list[dict[str, object]]:
        """Length, sound and transcript of a loopback recording (on the host, in the project's venv);
        with ``reference`` also how close it is to the same text spoken by Piper on the host; with
        ``split_at`` two results, before and after that second."""
        py = REPO / ".venv" / "bin" / "python"
        cmd = [str(py), str(HERE / "audio_check.py"), "--rate", str(RECORD_RATE), str(recording)]
        if reference:
            cmd += ["--reference", reference]
        if split_at is not None:
            cmd += ["--split", f"{split_at:.3f}"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def set_pack(self, boot: Boot, volts: float, amps: float, resets: int = 0) -> None:
        state = {"voltage_v": volts, "current_a": amps, "resets": resets}
        boot.guest.write_file("/run/bench/ina219.json", json.dumps(state).encode())

    def read_lines(self, boot: Boot, path: str) -> bytes:
        res = boot.guest.sh(f"cat {path} 2>/dev/null || true")
        return boot.guest.read_file(path) if res.out else b""

    # -- one spoken turn ------------------------------------------------------------------------

    def ask(self, boot: Boot, hold_after_s: float = HOLD_AFTER_S, timeout: float = 300) -> None:
        """What a person does: press, say the question, keep holding a moment, release (one guest
        command, so that no host round trip sits between the press and the speech)."""
        b = boot.gpio["BUTTON"]
        boot.guest.sh(f"echo pull-down > {b}/pull && sleep 0.3 && "
                      f"aplay -q -D plughw:0,0 /run/bench/disk/question.wav; sleep {hold_after_s}; "
                      f"echo pull-up > {b}/pull", timeout=timeout).check("press, speak, release")

    def spoken_turn(self, boot: Boot, label: str) -> dict[str, object]:
        """Ask the bundled question through the loopback microphone and wait for the turn's record."""
        j = boot.journal
        mark = j.mark
        t0 = time.monotonic()
        self.record_start(boot, label)
        self.ask(boot)
        t_release = time.monotonic()
        done = j.wait(r"turn record on disk: " + re.escape(TURN_LOG), 900, after=mark, alive=boot.guest.alive)
        if done is None:
            raise BenchFailure(f"no turn record within 900 s of the release\n{j.tail(40)}")
        took = time.monotonic() - t0
        release_to_record = time.monotonic() - t_release
        self.wait_state(boot, "idle", 60)
        heard = j.find(r"\] heard \(", after=mark)
        reply = j.find(r"\] reply \(", after=mark)
        recording = self.record_stop(boot, label)
        tid = turn_id_of(done.msg)
        self.reported[TURN_LOG].add(tid)
        records = [json.loads(line) for line in self.read_lines(boot, TURN_LOG).decode().splitlines() if line.strip()]
        record = next((r for r in records if r.get("turn_id") == tid), None)
        if record is None:
            raise BenchFailure(f"turn {tid} reported on disk but not in {TURN_LOG}")
        reply_text = quoted(reply[0].msg) if reply else ""
        answer = self.hear(recording, reference=reply_text)[0]
        return {"turn_id": tid, "release_to_record_s": round(release_to_record, 1),
                "press_to_record_s": round(took, 1),
                "heard": quoted(heard[0].msg) if heard else None, "reply": reply_text,
                "record": record, "answer_audio": answer}

    def check_answer(self, turn: dict[str, object]) -> None:
        """The question was heard, the reply names Paris, and the loopback speaker played it intelligibly."""
        record = turn["record"]
        answer = turn["answer_audio"]
        assert isinstance(record, dict) and isinstance(answer, dict)
        heard = str(turn["heard"] or "").lower()
        if "capital" not in heard or "france" not in heard:
            raise BenchFailure(f"the appliance heard {turn['heard']!r}, not the question about France")
        if record.get("error") or record.get("cancelled") or not record.get("words"):
            raise BenchFailure(f"the turn record is not a complete answer: {record}")
        if "paris" not in str(turn["reply"]).lower():
            raise BenchFailure(f"the reply does not say Paris: {turn['reply']!r}")
        problem = answer_problem(answer)
        if problem:
            raise BenchFailure(f"the answer played on the loopback speaker: {problem}")

    # -- scenarios ---------------------------------------------------------------------------------

    def s_boot(self, boot: Boot, r: ScenarioResult) -> None:
        props = self.wait_ready(boot, 900)
        ready_s = int(props["ActiveEnterTimestampMonotonic"]) / 1e6
        r.metrics["boot_to_ready_s (guest monotonic, from kernel start)"] = round(ready_s, 1)
        r.metrics["boot_to_ready_s (host, from QEMU start)"] = round(time.monotonic() - boot.guest.started_at, 1)
        ready = boot.journal.wait(r"appliance ready", 30)
        r.metrics["ready line"] = ready.msg if ready else None
        gauge = boot.journal.find(r"battery gauge|battery: ")
        r.metrics["gauge"] = [e.msg for e in gauge][:3]
        if not any("ina219@0x42" in e.msg for e in gauge):
            raise BenchFailure("the appliance did not find the INA219 at 0x42 on the I2C stub:\n"
                               + "\n".join(e.msg for e in gauge))
        cg = "/sys/fs/cgroup/system.slice/assistant.service/cpu.stat"
        read = f"awk '/usage_usec/ {{print $2}}' {cg}; cat /proc/uptime"
        a = boot.guest.sh(read).check("cpu.stat").out.split()
        time.sleep(60)  # the measurement window itself
        b = boot.guest.sh(read).check("cpu.stat").out.split()
        cpu = (int(b[0]) - int(a[0])) / 1e6
        wall = float(b[1]) - float(a[1])
        pct = 100 * cpu / wall
        factor = self.tcg_factor(boot)
        r.metrics["idle_cpu_pct_of_one_core"] = round(pct, 2)
        r.metrics["tcg_slowdown (pure Python, guest/host)"] = round(factor, 1)
        r.metrics["idle_cpu_pct_native_equivalent"] = round(pct / factor, 2)
        if pct > 80:
            raise BenchFailure(f"the idle appliance used {pct:.1f} % of a core over {wall:.0f} s: a busy loop?")
        led = self.led(boot)
        r.metrics["led_idle"] = led

    def tcg_factor(self, boot: Boot) -> float:
        """How much slower pure Python runs in the guest than on the host (CPU time, same loop)."""
        loop = "import time; t = time.process_time(); sum(i * i for i in range(2000000)); print(time.process_time() - t)"
        guest = float(boot.guest.exec(["python3", "-c", loop], timeout=600).check("calibration").out)
        host = float(subprocess.run([sys.executable, "-c", loop], check=True, capture_output=True, text=True).stdout)
        return guest / host

    def s_turn(self, boot: Boot, r: ScenarioResult) -> None:
        self.wait_ready(boot, 900)
        turn = self.spoken_turn(boot, "turn1")
        self.turn_s = float(turn["press_to_record_s"])  # type: ignore[arg-type]
        record = turn["record"]
        assert isinstance(record, dict)
        r.metrics.update({k: v for k, v in turn.items() if k != "record"})
        r.metrics["record"] = {k: record.get(k) for k in ("tier", "tokens", "words", "asr_final_s", "first_token_s",
                                                          "first_audio_s", "total_s", "cancelled", "error")}
        self.check_answer(turn)

        # Barge-in: ask again and press once more (a short tap) as soon as it speaks; from then on
        # the speaker may only sound the earcons of the press, never the rest of the reply.
        j = boot.journal
        mark = j.mark
        self.ask(boot)
        b = boot.gpio["BUTTON"]
        out = boot.guest.sh(
            "until systemctl show -p StatusText --value assistant.service | grep -qxE 'thinking|speaking'; "
            "do sleep 0.1; done; sleep 0.5; "  # past the end-of-listening earcon
            "arecord -q -D plughw:1,1 -f S16_LE -r 22050 -c 1 -t raw /var/tmp/bargein.raw & rec=$!; "
            "t0=$(cut -d' ' -f1 /proc/uptime); "
            "until systemctl show -p StatusText --value assistant.service | grep -qx speaking; do sleep 0.05; done; "
            f"t1=$(cut -d' ' -f1 /proc/uptime); echo pull-down > {b}/pull; sleep 0.1; echo pull-up > {b}/pull; "
            "sleep 4; kill -INT $rec; wait $rec; echo $t0 $t1", timeout=1200).check("barge-in").out.split()
        t_rec, t_tap = float(out[-2]), float(out[-1])
        # The reply stops at once (the speaker is aborted); the turn's threads stop at their next
        # check, after the sentence being synthesized (one ONNX run cannot be interrupted), which
        # under TCG can take longer than the 10 s the appliance waits before it says so.
        cancel = j.wait(r"cancelled \(barge-in\) in|did not stop within .* after barge-in", 60, after=mark)
        if cancel is None:
            raise BenchFailure(f"a press while speaking did not cancel the reply\n{j.tail(30)}")
        tap_at = t_tap - t_rec
        before, after = self.hear(self.fetch(boot, "/var/tmp/bargein.raw"), split_at=tap_at + 0.35)
        r.metrics["barge_in"] = {"cancel_line": cancel.msg.split(": ", 1)[-1], "tap_after_recording_start_s":
                                 round(tap_at, 2), "sound_before_tap_s": before["sound_s"],
                                 "sound_after_tap_s": after["sound_s"], "heard_before": before["heard"],
                                 "heard_after": after["heard"]}
        if float(before["sound_s"]) <= 0:  # type: ignore[arg-type]
            raise BenchFailure("the reply was not playing when the bench pressed (no sound before the press)")
        if float(after["sound_s"]) > 0.5:  # type: ignore[arg-type]
            raise BenchFailure(f"after the barge-in the speaker still sounded for {after['sound_s']} s: {after}")
        self.wait_state(boot, "idle", 120)

    def s_restart(self, boot: Boot, r: ScenarioResult) -> None:
        props = self.wait_ready(boot, 900)
        pid = props["MainPID"]
        restarts = int(props.get("NRestarts", "0"))
        t0 = time.monotonic()
        boot.guest.exec(["kill", "-9", pid]).check("kill -9")
        props = self.wait_ready(boot, 600, not_pid=pid)
        r.metrics["kill9_to_ready_s"] = round(time.monotonic() - t0, 1)
        if int(props.get("NRestarts", "0")) != restarts + 1:
            raise BenchFailure(f"NRestarts went from {restarts} to {props.get('NRestarts')}")
        turn = self.spoken_turn(boot, "after-kill9")
        r.metrics["answer_after_kill9"] = {"heard": turn["heard"], "reply": turn["reply"],
                                           "answer_audio": turn["answer_audio"]}
        self.check_answer(turn)

        pid = props["MainPID"]
        mark = boot.journal.mark
        t_stop = float(boot.guest.sh(f"kill -STOP {pid} && cut -d' ' -f1 /proc/uptime").check("SIGSTOP").out.split()[0])
        timeout = boot.journal.wait(r"[Ww]atchdog timeout", WATCHDOG_S + 60, after=mark)
        if timeout is None:
            raise BenchFailure(f"no watchdog timeout within {WATCHDOG_S + 60:.0f} s of SIGSTOP\n{boot.journal.tail(30)}")
        fired = timeout.t - t_stop
        r.metrics["sigstop_to_watchdog_s (guest clock)"] = round(fired, 1)
        if fired > WATCHDOG_S + 2:
            raise BenchFailure(f"the watchdog fired {fired:.1f} s after SIGSTOP; WatchdogSec is {WATCHDOG_S:.0f}")
        t1 = time.monotonic()
        props = self.wait_ready(boot, 600, not_pid=pid)
        r.metrics["watchdog_to_ready_s (host)"] = round(time.monotonic() - t1, 1)
        r.metrics["watchdog lines"] = [e.msg for e in boot.journal.find(r"[Ww]atchdog|Main process exited", after=mark)]

    def s_power_external(self, boot: Boot, r: ScenarioResult) -> None:
        """The pack reads low, but the charger is in and current flows into the pack."""
        self.wait_ready(boot, 900)
        mark = boot.journal.mark
        self.set_pack(boot, 6.3, +0.4)
        watch = HOLD_S + 25
        off = boot.guest.wait_exit(watch)
        lines = [e.msg for e in boot.journal.find(r"battery low|" + POWER_OFF, after=mark)]
        r.metrics["external_power"] = {"pack": "6.3 V, +0.4 A (charging)", "watched_s": watch, "lines": lines}
        if off is not None or any(re.search(POWER_OFF, m) for m in lines):
            raise BenchFailure(f"on external power the appliance shut down: {lines}")
        self.set_pack(boot, *HEALTHY_PACK)

    def s_power_nogauge(self, boot: Boot, r: ScenarioResult, what: str) -> None:
        props = self.wait_ready(boot, 900)
        watch = HOLD_S + 25
        mark = boot.journal.mark
        off = boot.guest.wait_exit(watch)
        battery = [e.msg for e in boot.journal.find(r"battery|gauge|SIMULATION|simulated")]
        shut = [e.msg for e in boot.journal.find(POWER_OFF)]
        r.metrics[what] = {"watched_s": watch, "pid": props.get("MainPID"), "battery lines": battery[:6],
                           "shutdown lines": shut}
        del mark
        if off is not None or shut:
            raise BenchFailure(f"with {what} the appliance powered the machine off: {shut or 'QEMU exited'}\n"
                               + "\n".join(battery))

    def s_power_empty(self, boot: Boot, r: ScenarioResult) -> None:
        props = self.wait_ready(boot, 900)
        r.metrics["boot_to_ready_s (second boot)"] = round(int(props["ActiveEnterTimestampMonotonic"]) / 1e6, 1)
        self.record_start(boot, "shutdown")
        boot.guest.exec(["cp", "-f", "/dev/null", "/var/tmp/bench-shutdown.started"])
        mark = boot.journal.mark
        t0 = time.monotonic()
        volts = 7.4
        while volts > 6.19:  # a discharge from 7.4 V to 6.2 V under 0.8 A, 0.1 V a second
            self.set_pack(boot, round(volts, 2), -0.8)
            volts -= 0.1
            time.sleep(1.0)
        ramp_s = time.monotonic() - t0
        code = boot.guest.wait_exit(HOLD_S + 120)
        gone = time.monotonic() - t0
        low = boot.journal.find(r"battery low", after=mark)
        shut = boot.journal.find(r"shutting down: ", after=mark)
        r.metrics["empty"] = {"ramp_s": round(ramp_s, 1), "qemu_exit_after_s": round(gone, 1), "qemu_exit": code,
                              "battery_low": low[0].msg if low else None, "shutting_down": shut[0].msg if shut else None}
        if code is None:
            raise BenchFailure(f"the guest did not power itself off within {HOLD_S + 120:.0f} s of an empty pack\n"
                               f"{boot.journal.tail(40)}")
        console = boot.guest.console_log.read_text(errors="replace")
        if not shut:
            raise BenchFailure(f"QEMU exited ({code}) without the appliance deciding to shut down\n{boot.journal.tail(40)}")
        if "reboot: Power down" not in console:
            raise BenchFailure(f"QEMU exited ({code}) but the console shows no clean power-down")
        r.metrics["empty"]["console"] = "reboot: Power down"  # type: ignore[index]

    def check_previous_shutdown(self, boot: Boot, r: ScenarioResult) -> None:
        """After the empty-pack power-off: its journal reached the disk, and what it said."""
        prev = boot.guest.sh("journalctl -b -1 -u assistant.service -o cat --no-pager | tail -n 30").out
        if "shutting down" not in prev:
            raise BenchFailure(f"the journal of the boot that powered off does not hold its shutdown:\n{prev}")
        said = self.hear(self.fetch(boot, "/var/tmp/shutdown.raw"), reference="The battery is empty. Shutting down now.")[0]
        r.metrics["announcement_heard"] = said
        heard = str(said.get("heard", "")).lower()
        if not any(w in heard for w in ("battery", "empty", "shutting", "down")):
            raise BenchFailure(f"the shutdown announcement was heard as {said.get('heard')!r}")

    # -- power cuts -------------------------------------------------------------------------------

    def fsck_report(self, boot: Boot) -> str:
        return boot.guest.sh("cat /run/initramfs/fsck.log 2>/dev/null; "
                             "journalctl -b -o cat -u systemd-fsck-root.service --no-pager 2>/dev/null; "
                             "dmesg | grep -Ei 'EXT4-fs (vda).*(error|recover|orphan|mounted)' || true").out

    def check_logs(self, boot: Boot, cut: int) -> dict[str, object]:
        found: dict[str, object] = {}
        for path, reported in self.reported.items():
            check = check_turn_log(self.read_lines(boot, path), reported)
            found[path] = {"records": check.records, "reported": len(reported), "unreadable_lines": check.unreadable}
            if check.duplicated or check.missing:
                raise BenchFailure(f"after power cut {cut}: {path}: duplicated {check.duplicated}, reported on disk "
                                   f"but missing {check.missing}")
        return found

    def drain_next(self, boot: Boot) -> int:
        """The sequence number after the last one in the drain run's turn log (0 when none)."""
        return next_seq(self.read_lines(boot, f"{DRAIN_DIR}/turns.jsonl"))

    def drain_command(self, boot: Boot) -> list[str]:
        exists = boot.guest.sh(f"test -s {DRAIN_DIR}/meta.json").rc == 0
        cfg = "/run/bench/drain.yaml"
        boot.guest.sh(f"sed 's/^  kind: auto$/  kind: simulated/' /etc/assistant/config.yaml > {cfg} && "
                      f"chmod 0644 {cfg}").check("drain config")
        cmd = ["systemd-run", "--quiet", "--collect", "--unit=bench-drain", "--uid=assistant", "--gid=assistant",
               f"--working-directory={STATE_DIR}", f"{VENV}/bin/assistant", "--config", cfg, "drain-test"]
        if exists:
            return cmd + ["--resume", DRAIN_DIR, "--max-turns", "100000"]
        boot.guest.sh(f"rm -rf {DRAIN_DIR}")
        return cmd + ["--out", DRAIN_DIR, "--prompts", "/run/bench/disk/guest/drain-prompts.txt",
                      "--capacity-wh", "200", "--max-turns", "100000"]

    def s_cut(self, r: ScenarioResult) -> Boot:
        cuts: list[dict[str, object]] = []
        boot = None
        for n in range(1, self.args.cuts + 1):
            kind = "turn" if n % 2 else "drain"
            boot = self.boot(f"cut{n}-{kind}")
            self.wait_ready(boot, 900)
            entry: dict[str, object] = {"cut": n, "kind": kind}
            if n > 1:
                entry["after_previous"] = self.verify_cut(boot, n - 1)
            mark = boot.journal.mark
            delay = self.rng.uniform(0.0, self.turn_s if kind == "turn" else 2 * self.turn_s)
            if kind == "turn":
                t0 = time.monotonic()
                timer = threading.Timer(delay, boot.guest.power_cut)
                timer.start()
                try:
                    self.ask(boot)
                except GuestError:
                    pass  # the cut came while the question was being asked
            else:
                expect = self.drain_next(boot)
                boot.guest.exec(self.drain_command(boot)).check("start the drain run")
                # The moments are drawn from the run's turns, after its models are loaded (and,
                # the first time, its questions spoken into the cache).
                started = boot.journal.wait(r"resumes at turn|spoke \d+ question|turn record on disk", 1200,
                                            after=mark, alive=boot.guest.alive)
                entry["drain"] = {"expected_next_seq": expect, "line": started.msg.split(": ", 1)[-1] if started else None}
                if started is None:
                    raise BenchFailure(f"the drain run did not start its turns\n{boot.journal.tail(40)}")
                if "resumes at turn" in started.msg:
                    got = int(re.search(r"resumes at turn (\d+)", started.msg).group(1))  # type: ignore[union-attr]
                    if got != expect:
                        raise BenchFailure(f"the drain run resumed at turn {got}; its log ends before turn {expect}")
                t0 = time.monotonic()
                timer = threading.Timer(delay, boot.guest.power_cut)
                timer.start()
            timer.join()
            boot.guest.power_cut()
            written = boot.journal.find(r"turn record on disk: ", after=mark)
            for e in written:
                tid = turn_id_of(e.msg)
                path = e.msg.split("turn record on disk: ", 1)[1].strip()
                self.reported.setdefault(path, set()).add(tid)
            if not written and self.turn_s < MAX_TURN_S:
                # The cut came before any record: turns take longer here than believed (a slower or busier
                # host), so the next moments are drawn from a longer span, to reach the records' writing too.
                self.turn_s = min(MAX_TURN_S, self.turn_s * 1.5)
                entry["turn_s_now"] = self.turn_s
            entry["cut_after_s"] = round(time.monotonic() - t0, 1)
            entry["disk"] = self.host_fsck(n)
            entry["reported_so_far"] = {Path(k).parent.name or k: len(v) for k, v in self.reported.items()}
            cuts.append(entry)
            log(f"  power cut {n}/{self.args.cuts} ({kind}) after {entry['cut_after_s']} s; "
                f"records reported on disk so far: {entry['reported_so_far']}")
        boot = self.boot("after-cuts")
        self.wait_ready(boot, 900)
        last = self.verify_cut(boot, self.args.cuts)
        r.metrics["cuts"] = cuts
        r.metrics["after_last"] = last
        r.metrics["power_cuts_survived"] = self.args.cuts
        return boot

    def host_fsck(self, n: int) -> dict[str, object]:
        """The powered-off disk checked on the host, as a Pi's SD card put in a card reader would be:
        a raw copy of the run's disk (QEMU is gone, so nothing writes it), ``e2fsck -fy`` on the copy
        (which replays the journal as the next mount would), and every line of its output that is
        not ordinary recovery. No kernel module is needed (no loop or nbd device)."""
        assert self.disk is not None
        copy = self.out / "fsck-copy.raw"
        t0 = time.monotonic()
        try:
            subprocess.run(["qemu-img", "convert", "-O", "raw", str(self.disk), str(copy)], check=True)
            res = subprocess.run(["e2fsck", "-fy", str(copy)], capture_output=True, text=True)
        finally:
            copy.unlink(missing_ok=True)
        output = res.stdout + res.stderr
        (self.out / f"cut{n}.e2fsck.log").write_text(output)
        problems = fsck_problems(output)
        if res.returncode & ~1 or problems:
            raise BenchFailure(f"after power cut {n} the file system is damaged (e2fsck exit {res.returncode}):\n"
                               + "\n".join(problems or output.splitlines()[-20:]))
        return {"e2fsck_exit": res.returncode, "seconds": round(time.monotonic() - t0, 1),
                "said": [line for line in output.splitlines() if line.strip()][-1:]}

    def verify_cut(self, boot: Boot, n: int) -> dict[str, object]:
        fsck = self.fsck_report(boot)
        if fsck_problem(fsck):
            raise BenchFailure(f"after power cut {n} the file system was not clean:\n{fsck}")
        logs = self.check_logs(boot, n)
        return {"fsck": [line for line in fsck.splitlines() if line.strip()][-3:], "logs": logs}

    def s_uninstall(self, boot: Boot, r: ScenarioResult) -> None:
        g = boot.guest
        g.sh("cd /home/pi/assistant && bash deploy/uninstall.sh", timeout=300).check("uninstall.sh")
        left = g.sh("ls /etc/systemd/system/assistant.service /opt/assistant "
                    "/etc/polkit-1/rules.d/50-assistant-poweroff.rules 2>/dev/null; "
                    "systemctl list-unit-files assistant.service --no-legend; true").out.strip()
        kept = g.sh("ls -d /etc/assistant/config.yaml /var/lib/assistant/turns.jsonl; id -u assistant").out
        r.metrics["after uninstall"] = {"left": left, "kept": kept.split()}
        if left:
            raise BenchFailure(f"uninstall.sh left behind: {left}")
        if "/etc/assistant/config.yaml" not in kept or "turns.jsonl" not in kept:
            raise BenchFailure(f"uninstall.sh without --purge removed the configuration or the state: {kept}")
        g.sh("cd /home/pi/assistant && bash deploy/uninstall.sh --purge", timeout=300).check("uninstall.sh --purge")
        left = g.sh("ls -d /etc/assistant /var/lib/assistant /opt/assistant 2>/dev/null; "
                    "id assistant 2>/dev/null; true").out.strip()
        r.metrics["after --purge"] = left or "nothing"
        if left:
            raise BenchFailure(f"uninstall.sh --purge left behind: {left}")

    # -- running ------------------------------------------------------------------------------

    def run(self, name: str, fn: Callable[[ScenarioResult], object]) -> object:
        r = ScenarioResult(name)
        self.results.append(r)
        log(f"scenario {name}: start")
        t0 = time.monotonic()
        try:
            value = fn(r)
            r.ok = True
            return value
        except Exception as exc:
            r.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            r.seconds = time.monotonic() - t0
            log(f"scenario {name}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.0f} s")
            for key, value in r.metrics.items():
                log(f"  {key}: {json.dumps(value, default=str)[:600]}")

    def ensure_boot(self, label: str, **kwargs: object) -> Boot:
        """The running guest, or a new boot when the last one ended (or died with a failure)."""
        boot = getattr(self, "current", None)
        if boot is None or not boot.guest.alive():
            boot = self.boot(label, **kwargs)  # type: ignore[arg-type]
        return boot

    def fresh_boot(self, label: str, **kwargs: object) -> Boot:
        boot = getattr(self, "current", None)
        if boot is not None:
            boot.guest.shutdown()
        return self.boot(label, **kwargs)  # type: ignore[arg-type]

    def phase(self, name: str, fn: Callable[[ScenarioResult], object]) -> object:
        """One scenario; on failure the guest's journal is collected, and the run stops unless
        --keep-going (then the guest is cut off and the next scenario boots afresh)."""
        try:
            return self.run(name, fn)
        except Exception as exc:  # a bug of the bench is reported as the scenario's failure too
            if not isinstance(exc, (BenchFailure, GuestError, subprocess.CalledProcessError)):
                traceback.print_exc()
            log(f"FAILED in scenario '{name}': {exc}")
            current = getattr(self, "current", None)
            if current is not None:
                self.collect(current)
                current.guest.power_cut()
            if not self.args.keep_going:
                raise
            return None

    def main(self) -> int:
        wanted = [s for s in SCENARIOS if s in self.args.scenarios]
        t0 = time.monotonic()
        try:
            try:
                self.prepare()
            except (GuestError, subprocess.CalledProcessError) as exc:
                self.results.append(ScenarioResult("preparing the images", error=str(exc)))
                log(f"FAILED while preparing the images: {exc}")
                raise
            for name, fn in (("boot", self.s_boot), ("turn", self.s_turn), ("restart", self.s_restart)):
                if name in wanted:
                    self.phase(name, lambda r, fn=fn: fn(self.ensure_boot("main"), r))
            if "power" in wanted:
                self.phase("power: external power",
                           lambda r: self.s_power_external(self.ensure_boot("main"), r))

                def nogauge(r: ScenarioResult) -> None:
                    boot = self.ensure_boot("main")
                    boot.guest.sh(f"cp -a /etc/assistant/config.yaml /etc/assistant/config.yaml.bench && "
                                  f"{VENV}/bin/python -c \"import yaml; p='/etc/assistant/config.yaml'; "
                                  "c=yaml.safe_load(open(p)); c['battery'].setdefault('simulated', {})"
                                  "['start_soc_pct']=3.0; yaml.safe_dump(c, open(p, 'w'))\"").check("config")
                    r.metrics["config"] = "battery.simulated.start_soc_pct: 3 (what a simulation would start at)"
                    boot = self.fresh_boot("nogauge", gauge="nogauge")
                    self.s_power_nogauge(boot, r, "no gauge on the I2C bus")
                    boot.guest.sh("systemctl stop assistant && rmmod i2c-stub && systemctl start --no-block assistant"
                                  ).check("remove the I2C bus")
                    self.s_power_nogauge(boot, r, "no I2C bus at all")

                try:
                    self.phase("power: no gauge", nogauge)
                finally:
                    boot = self.ensure_boot("restore")
                    boot.guest.sh("test -e /etc/assistant/config.yaml.bench && "
                                  "mv -f /etc/assistant/config.yaml.bench /etc/assistant/config.yaml; true")
                self.phase("power: empty pack, discharging",
                           lambda r: self.s_power_empty(self.fresh_boot("empty"), r))
                self.phase("power: after the power-off",
                           lambda r: self.check_previous_shutdown(self.ensure_boot("after-empty"), r))
            if "cut" in wanted and self.args.cuts > 0:
                current = getattr(self, "current", None)
                if current is not None:
                    current.guest.shutdown()
                self.phase("cut", self.s_cut)
            if "uninstall" in wanted:
                def uninstall(r: ScenarioResult) -> None:
                    boot = self.ensure_boot("uninstall")
                    self.wait_ready(boot, 900)
                    self.s_uninstall(boot, r)
                self.phase("uninstall", uninstall)
        except Exception:  # reported by phase(); the results table follows
            pass
        finally:
            current = getattr(self, "current", None)
            if current is not None:
                current.guest.power_cut()
        ok = bool(self.results) and all(r.ok for r in self.results)
        self.timings["total"] = time.monotonic() - t0
        self.report(ok)
        return 0 if ok else 1

    def collect(self, boot: Boot) -> None:
        """The guest's whole journal into the run directory, and its end on the terminal."""
        dest = self.out / f"{boot.guest.label}.journal-full.log"
        try:
            if boot.guest.alive():
                dest.write_text(boot.guest.sh("journalctl -b -o short-monotonic --no-pager", timeout=120).out)
        except GuestError:
            pass
        log(f"guest journal (last lines; all of it in {boot.guest.journal_log}):\n{boot.journal.tail(60)}")

    def report(self, ok: bool) -> None:
        lines = [f"system bench ({self.arch}, {'PASS' if ok else 'FAIL'}); run directory {self.out}", "",
                 "| scenario | result | seconds |", "|---|---|---|"]
        for r in self.results:
            lines.append(f"| {r.name} | {'ok' if r.ok else 'FAILED'} | {r.seconds:.0f} |")
        lines += ["", "| step | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in self.timings.items()]
        print("\n".join(lines), flush=True)
        (self.out / "results.json").write_text(json.dumps({
            "arch": self.arch, "ok": ok, "timings_s": self.timings,
            "scenarios": [r.__dict__ for r in self.results]}, indent=2, default=str))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="system bench: the appliance in a QEMU VM with real kernel devices")
    p.add_argument("--arch", choices=sorted(ARCHES), default="amd64")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated, from {','.join(SCENARIOS)}; 'quick' = {','.join(QUICK)}")
    p.add_argument("--cuts", type=int, default=10, help="power cuts in the cut scenario (default 10)")
    p.add_argument("--seed", type=int, default=None, help="seed of the power cuts' random moments")
    p.add_argument("--cache", default=os.environ.get("SYSBENCH_CACHE")
                   or str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "assistant-sysbench"))
    p.add_argument("--out", help="run directory (default out/system/ARCH-TIME)")
    p.add_argument("--rebuild", choices=("base", "installed"), help="rebuild the cached image(s)")
    p.add_argument("--wheels", help="a folder of prebuilt wheels for the guest's pip (e.g. llama-cpp-python for arm64)")
    p.add_argument("--keep-going", action="store_true", help="after a failed scenario, go on with the next ones")
    p.add_argument("--model", action="append", default=[], metavar="NAME=FILE",
                   help="install a catalogue model in the guest with --from FILE (repeatable)")
    args = p.parse_args(argv)
    args.scenarios = QUICK if args.scenarios == "quick" else tuple(s.strip() for s in args.scenarios.split(","))
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    for m in args.model:
        if "=" not in m:
            p.error(f"--model {m}: expected NAME=FILE")
    return args


def main() -> int:
    args = parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    log(f"power-cut seed {args.seed} (--seed {args.seed} repeats the same moments)")
    return Bench(args).main()


if __name__ == "__main__":
    sys.exit(main())
