"""A QEMU guest the system bench drives: booted from the Debian image's own kernel, controlled
through the QEMU guest agent (commands, files) and QMP, its console and live journal kept on the
host. Standard library only (the host needs nothing but python3 and QEMU)."""

from __future__ import annotations

import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class GuestError(Exception):
    """The guest did not do what the bench asked (timeout, agent failure, unexpected exit)."""


@dataclass(frozen=True)
class Arch:
    """How QEMU runs one architecture."""

    name: str
    """Debian's name: amd64 or arm64."""
    qemu: str
    machine: list[str]
    console: str
    """The kernel's serial console device."""


ARCHES = {
    "amd64": Arch("amd64", "qemu-system-x86_64",
                  ["-machine", "pc", "-cpu", "max", "-accel", "tcg,thread=multi"], "ttyS0"),
    "arm64": Arch("arm64", "qemu-system-aarch64",
                  ["-machine", "virt", "-cpu", "cortex-a76", "-accel", "tcg,thread=multi"], "ttyAMA0"),
}


@dataclass
class Result:
    """What a command in the guest did."""

    rc: int
    out: str
    err: str

    def check(self, what: str) -> Result:
        if self.rc != 0:
            raise GuestError(f"{what}: exit {self.rc}\n{(self.out + self.err).strip()[-2000:]}")
        return self


class _JsonSocket:
    """One line-delimited JSON connection (QMP and the guest agent both speak it)."""

    def __init__(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise GuestError(f"cannot connect to {path}") from None
                time.sleep(0.05)
        self.buf = b""

    def send(self, obj: dict) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self, timeout: float) -> dict:
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise GuestError("no answer in time") from None
            if not chunk:
                raise GuestError("connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        line = line.rsplit(b"\xff", 1)[-1].strip()  # the agent's sync delimiter
        if not line:
            return self.recv(timeout)
        return json.loads(line)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Guest:
    """One boot of the image. ``start()`` boots, ``exec``/``sh`` run commands as root in it."""

    arch: Arch
    kernel: Path
    initrd: Path
    disk: Path
    bench_disk: Path
    run_dir: Path
    label: str
    cmdline: str = ""
    network: bool = False
    memory_mb: int = 2048
    cpus: int = 2
    dtb: Path | None = None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    _qga: _JsonSocket | None = field(default=None, repr=False)

    @property
    def console_log(self) -> Path:
        return self.run_dir / f"{self.label}.console.log"

    @property
    def journal_log(self) -> Path:
        return self.run_dir / f"{self.label}.journal.log"

    def _sock(self, name: str) -> Path:
        return self.run_dir / f"{self.label}.{name}.sock"

    def command(self) -> list[str]:
        append = f"root=/dev/vda ro console={self.arch.console} panic=-1 {self.cmdline}".strip()
        cmd = [self.arch.qemu, *self.arch.machine, "-smp", str(self.cpus), "-m", str(self.memory_mb),
               "-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", append,
               "-drive", f"file={self.disk},if=none,id=root,format=qcow2,cache=writeback",
               "-device", "virtio-blk-pci,drive=root",
               "-drive", f"file={self.bench_disk},if=none,id=bench,format=raw,readonly=on",
               "-device", "virtio-blk-pci,drive=bench",
               "-device", "virtio-serial-pci",
               "-chardev", f"socket,id=qga,path={self._sock('qga')},server=on,wait=off",
               "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
               "-chardev", f"file,id=journal,path={self.journal_log}",
               "-device", "virtserialport,chardev=journal,name=bench.journal",
               "-qmp", f"unix:{self._sock('qmp')},server=on,wait=off",
               "-serial", f"file:{self.console_log}",
               "-display", "none", "-no-reboot",
               "-device", "virtio-rng-pci"]
        if self.network:
            cmd += ["-nic", "user,model=virtio-net-pci"]
        else:
            cmd += ["-nic", "none"]
        if self.dtb is not None:
            cmd += ["-dtb", str(self.dtb)]
        return cmd

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for path in (self._sock("qga"), self._sock("qmp")):
            path.unlink(missing_ok=True)
        with open(self.run_dir / f"{self.label}.qemu.log", "wb") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_agent(self, timeout: float) -> float:
        """Wait until the guest agent answers; returns seconds since QEMU started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise GuestError(f"QEMU exited ({self.proc.returncode if self.proc else '?'}) before the agent answered")
            try:
                self._agent_sync(min(5.0, max(0.5, deadline - time.monotonic())))
                return time.monotonic() - self.started_at
            except GuestError:
                self._drop_agent()
                time.sleep(0.5)
        raise GuestError(f"the guest agent did not answer within {timeout:.0f} s")

    def wait_exit(self, timeout: float) -> int | None:
        """QEMU's exit code once the guest is off, None if it is still running after ``timeout``."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def power_cut(self) -> None:
        """Pull the plug: QEMU is killed, whatever the guest had not written to its disk is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._drop_agent()

    def shutdown(self, timeout: float = 120.0) -> None:
        """A clean power-off from inside; a power cut if it does not happen in time."""
        if not self.alive():
            return
        try:
            self.exec(["systemctl", "poweroff", "--no-block"], timeout=30)
        except GuestError:
            pass
        self._drop_agent()
        if self.wait_exit(timeout) is None:
            self.power_cut()

    # -- the guest agent ---------------------------------------------------------------------

    def _drop_agent(self) -> None:
        if self._qga is not None:
            self._qga.close()
            self._qga = None

    def _agent_sync(self, timeout: float) -> None:
        if self._qga is None:
            self._qga = _JsonSocket(self._sock("qga"), timeout)
        token = int(time.monotonic() * 1000) % 2**31
        self._qga.sock.sendall(b"\xff")
        self._qga.send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._qga.recv(max(0.1, deadline - time.monotonic()))
            except (GuestError, json.JSONDecodeError, OSError) as exc:
                raise GuestError(f"agent sync: {exc}") from None
            if reply.get("return") == token:
                return
            if time.monotonic() > deadline:
                raise GuestError("agent sync: no matching answer")

    def _agent(self, command: str, arguments: dict | None = None, timeout: float = 30.0) -> object:
        if self._qga is None:
            self._agent_sync(timeout)
        assert self._qga is not None
        message: dict = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        try:
            self._qga.send(message)
            reply = self._qga.recv(timeout)
        except (GuestError, OSError) as exc:
            self._drop_agent()
            raise GuestError(f"guest agent, {command}: {exc}") from None
        if "error" in reply:
            raise GuestError(f"guest agent, {command}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def exec(self, argv: list[str], timeout: float = 120.0, stdin: bytes | None = None) -> Result:
        """Run ``argv`` as root in the guest and wait for it."""
        args: dict = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if stdin is not None:
            args["input-data"] = base64.b64encode(stdin).decode()
        pid = self._agent("guest-exec", args)["pid"]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            status = self._agent("guest-exec-status", {"pid": pid})
            assert isinstance(status, dict)
            if status.get("exited"):
                out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
                err = base64.b64decode(status.get("err-data", "")).decode(errors="replace")
                return Result(int(status.get("exitcode", -1 if "signal" not in status else 128 + status["signal"])),
                              out, err)
            if time.monotonic() > deadline:
                raise GuestError(f"{shlex.join(argv)[:200]}: still running after {timeout:.0f} s")
            if not self.alive():
                raise GuestError(f"{shlex.join(argv)[:200]}: the guest went away")
            time.sleep(delay)
            delay = min(0.5, delay * 1.5)

    def sh(self, script: str, timeout: float = 120.0) -> Result:
        """Run a shell script as root in the guest."""
        return self.exec(["/bin/sh", "-c", script], timeout=timeout)

    def read_file(self, path: str) -> bytes:
        handle = self._agent("guest-file-open", {"path": path, "mode": "r"})
        data = b""
        try:
            while True:
                chunk = self._agent("guest-file-read", {"handle": handle, "count": 1 << 20}, timeout=60)
                assert isinstance(chunk, dict)
                data += base64.b64decode(chunk.get("buf-b64", ""))
                if chunk.get("eof") or not chunk.get("count"):
                    return data
        finally:
            self._agent("guest-file-close", {"handle": handle})

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically (a rename, so readers never see half of it)."""
        tmp = f"{path}.bench-tmp"
        handle = self._agent("guest-file-open", {"path": tmp, "mode": "w"})
        try:
            for at in range(0, len(data), 1 << 20):
                self._agent("guest-file-write", {"handle": handle,
                                                  "buf-b64": base64.b64encode(data[at:at + (1 << 20)]).decode()})
        finally:
            self._agent("guest-file-close", {"handle": handle})
        self.exec(["/bin/mv", "-f", tmp, path]).check(f"mv {tmp}")

    def journal(self) -> str:
        """What the guest's journal said this boot, as the host received it."""
        try:
            return self.journal_log.read_text(errors="replace")
        except OSError:
            return ""


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, stdout=subprocess.DEVNULL)


def overlay(backing: Path, path: Path) -> Path:
    """A copy-on-write disk over ``backing``: the cached image itself is never written."""
    path.unlink(missing_ok=True)
    fmt = "qcow2" if backing.suffix == ".qcow2" else "raw"
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(backing.resolve()), "-F", fmt, str(path))
    return path


def ext4_disk(source: Path, path: Path, label: str, size_mb: int) -> Path:
    """An ext4 image holding ``source``'s files (no loop mount, no root needed)."""
    path.unlink(missing_ok=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", label, "-d", str(source), str(path), f"{size_mb}M"],
                   check=True, env={**os.environ, "E2FSPROGS_FAKE_TIME": ""})
    return path
