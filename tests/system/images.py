"""The bench's disk images, built once and cached under a hash of what went into them.

- base: Debian Bookworm, kernel, headers, gpio-sim, the bench's boot hook (build-base.sh, on the
  host, as root); rebuilt when build-base.sh or the boot hook changes.
- installed: the base booted under QEMU with systemd, the appliance installed in it by
  deploy/install.sh from a clone of this working tree (guest/provision.sh); rebuilt when the
  appliance's files (assistant/, deploy/, models/, pyproject.toml), the provisioning script, the
  offered wheels or the models change. A qcow2 layer over the base. (The bench's other guest
  helpers come from the bench disk at every boot and never need a new image.)
Every run boots a throw-away layer over the installed image, so the cache is never written to.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vm import ARCHES, Guest, GuestError, ext4_disk, overlay

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPLIANCE_PATHS = ("assistant", "deploy", "models", "pyproject.toml")
"""What a clone installs: a change here means a new installed image."""


def log(message: str) -> None:
    print(f"sysbench: {message}", file=sys.stderr, flush=True)


def tracked_files(paths: tuple[str, ...] = ()) -> list[Path]:
    """The files git tracks (as they are in the working tree), under ``paths`` if given."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--", *paths], check=True,
                             capture_output=True).stdout
        files = [REPO / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git clone: every file
        roots = [REPO / p for p in paths] if paths else [REPO]
        files = [f for r in roots for f in ([r] if r.is_file() else r.rglob("*")) if f.is_file()]
        files = [f for f in files if ".venv" not in f.parts and "__pycache__" not in f.parts]
    return sorted(f for f in files if f.is_file() or f.is_symlink())


def digest(*parts: object) -> str:
    """A short hash of files (by content) and other values."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            h.update(str(part.relative_to(REPO) if part.is_relative_to(REPO) else part.name).encode())
            h.update(os.readlink(part).encode() if part.is_symlink() else part.read_bytes())
        else:
            h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


@dataclass
class Base:
    dir: Path
    key: str

    @property
    def disk(self) -> Path:
        return self.dir / "root.raw"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"


@dataclass
class Installed:
    base: Base
    dir: Path
    key: str

    @property
    def disk(self) -> Path:
        return self.dir / "disk.qcow2"


def _prune(parent: Path, prefix: str, keep: Path) -> None:
    """Remove older cached images of the same kind (each is gigabytes)."""
    for old in parent.glob(f"{prefix}-*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def base_image(cache: Path, arch: str, *, rebuild: bool, timings: dict[str, float]) -> Base:
    key = digest(arch, HERE / "build-base.sh", HERE / "guest" / "bench-init.service", HERE / "guest" / "bench-generator")
    parent = cache / arch
    done = parent / f"base-{key}"
    if rebuild and done.exists():
        shutil.rmtree(done)
    if (done / "root.raw").exists():
        log(f"base image {done.name}: cached")
        timings["base image (cached)"] = 0.0
        return Base(done, key)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f"building-base-{key}"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"base image {done.name}: building (debootstrap, kernel, gpio-sim; several minutes)")
    t0 = time.monotonic()
    cmd = ["bash", str(HERE / "build-base.sh"), arch, str(tmp)]
    if os.geteuid() != 0:
        cmd = ["sudo", "--preserve-env=SYSBENCH_CACHE", *cmd]
    subprocess.run(cmd, check=True, env={**os.environ, "SYSBENCH_CACHE": str(cache)})
    timings["base image build"] = time.monotonic() - t0
    tmp.rename(done)
    _prune(parent, "base", done)
    return Base(done, key)


def llama_wheel(cache: Path, arch: str, wheels_from: Path | None) -> Path:
    """A folder of prebuilt wheels to offer the guest's pip, with constraints.txt pinning them.

    amd64: llama-cpp-python as this machine built it (pip's wheel cache holds it after
    deploy/bootstrap.sh; built with GGML_NATIVE=OFF otherwise, about 5 minutes), because compiling
    llama.cpp under TCG would take hours. arm64: the wheels in ``wheels_from`` if given, else none
    (the guest then builds llama.cpp itself, as a Pi does)."""
    out = cache / arch / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pins: list[str] = []
    if wheels_from is not None:
        for wheel in sorted(wheels_from.glob("*.whl")):
            shutil.copy2(wheel, out)
    elif arch == "amd64" and os.uname().machine == "x86_64":
        py = REPO / ".venv" / "bin" / "python"
        version = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('llama_cpp_python'))"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        env = {**os.environ, "CMAKE_ARGS": (os.environ.get("CMAKE_ARGS", "") + " -DGGML_NATIVE=OFF").strip()}
        subprocess.run([str(py), "-m", "pip", "wheel", "-q", "--no-deps", f"llama-cpp-python=={version}", "-w", str(out)],
                       check=True, env=env)
    for wheel in sorted(out.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        pins.append(f"{name.replace('_', '-')}=={version}")
    (out / "constraints.txt").write_text("".join(p + "\n" for p in pins))
    return out


def _stage(dest: Path, wheels: Path, models: dict[str, Path]) -> None:
    """The bench disk's contents for provisioning: the clone, the wheels, the models, guest/."""
    repo = dest / "repo"
    for src in tracked_files():
        rel = src.relative_to(REPO)
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    shutil.copytree(wheels, dest / "wheels")
    shutil.copytree(HERE / "guest", dest / "guest")
    (dest / "models").mkdir()
    lines = []
    for name, path in models.items():
        shutil.copy2(path, dest / "models" / path.name)
        lines.append(f"{name}={path.name}\n")
    (dest / "models" / "models.list").write_text("".join(lines))


def _du_mb(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) // 2**20


def _follow(guest: Guest, stop: threading.Event, marker: str) -> None:
    """Show the guest's journal lines containing ``marker`` as they arrive."""
    pos = 0
    while not stop.wait(1.0):
        try:
            with guest.journal_log.open("rb") as fh:
                fh.seek(pos)
                data = fh.read()
        except OSError:
            continue
        end = data.rfind(b"\n") + 1
        pos += end
        for line in data[:end].decode(errors="replace").splitlines():
            if marker in line:
                log("  guest " + line.split(": ", 1)[-1])


def installed_image(cache: Path, arch: str, base: Base, *, wheels_from: Path | None, models: dict[str, Path],
                    rebuild: bool, timings: dict[str, float], work: Path) -> Installed:
    wheels = llama_wheel(cache, arch, wheels_from)
    key = digest(base.key, HERE / "guest" / "provision.sh", *tracked_files(APPLIANCE_PATHS),
                 *sorted(wheels.iterdir()), *[(n, p.stat().st_size, p.name) for n, p in models.items()])
    parent = cache / arch
    done = parent / f"installed-{key}"
    if rebuild and done.exists():
        shutil.rmtree(done)
    if (done / "disk.qcow2").exists():
        log(f"installed image {done.name}: cached")
        timings["installed image (cached)"] = 0.0
        return Installed(base, done, key)
    tmp = parent / f"building-installed-{key}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stage = work / "provision-disk"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    _stage(stage, wheels, models)
    bench_disk = ext4_disk(stage, work / "provision-disk.img", "bench", _du_mb(stage) + 64)
    disk = overlay(base.disk, tmp / "disk.qcow2")
    guest = Guest(ARCHES[arch], base.kernel, base.initrd, disk, bench_disk, work, "provision",
                  cmdline="bench.gauge=ina219", network=True, dtb=dtb_for(arch, work))
    log(f"installed image {done.name}: booting the base image to run deploy/install.sh in it "
        "(tens of minutes under TCG; progress below)")
    t0 = time.monotonic()
    guest.start()
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(guest, stop, "provision"), daemon=True)
    follower.start()
    try:
        boot_s = guest.wait_agent(900)
        timings["provision: boot"] = boot_s
        t1 = time.monotonic()
        result = guest.exec(["systemd-run", "--quiet", "--wait", "--collect", "--unit=bench-provision",
                             "--property=TimeoutStartSec=infinity", "--setenv=HOME=/root",
                             "/bin/sh", "/run/bench/disk/guest/provision.sh"], timeout=4 * 3600)
        timings["provision: install"] = time.monotonic() - t1
        if result.rc != 0:
            tail = "\n".join(guest.journal().splitlines()[-60:])
            raise GuestError(f"provisioning failed (exit {result.rc}); guest journal (last lines):\n{tail}\n"
                             f"whole journal: {guest.journal_log}")
        guest.shutdown(300)
    finally:
        stop.set()
        guest.power_cut()
    timings["installed image build"] = time.monotonic() - t0
    tmp.rename(done)
    _prune(parent, "installed", done)
    return Installed(base, done, key)


def dtb_for(arch: str, work: Path) -> Path | None:
    """arm64: QEMU's own device tree for the virt machine, with what a Raspberry Pi 5's firmware
    puts there and gpiozero reads (the board revision, /system/linux,revision = 0xd04170), and
    without the machine's PL061 GPIO controller, so that the simulated chip is gpiochip0 as RP1 is
    on a Pi 5. amd64 has no device tree (gpiozero reads the revision from /proc/cpuinfo: see
    guest/init.sh)."""
    if arch != "arm64":
        return None
    plain = work / "virt.dtb"
    made = work / "virt-pi5.dtb"
    if made.exists():
        return made
    a = ARCHES[arch]
    subprocess.run([a.qemu, "-machine", f"{a.machine[1]},dumpdtb={plain}", *a.machine[2:], "-smp", "2",
                    "-m", "2048", "-display", "none"], check=True, capture_output=True)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(plain)], check=True, capture_output=True,
                         text=True).stdout
    dts = _drop_node(dts, "pl061@")
    dts = _drop_node(dts, "gpio-keys")
    dts = dts.rstrip().rstrip(";").rstrip().rstrip("}") + "\n\tsystem {\n\t\tlinux,revision = <0xd04170>;\n\t};\n};\n"
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(made)], input=dts, check=True, text=True)
    return made


def _drop_node(dts: str, name: str) -> str:
    """The device tree source without the node whose name starts with ``name`` (and its children)."""
    lines = dts.splitlines()
    out: list[str] = []
    depth = 0
    for line in lines:
        stripped = line.strip()
        if depth == 0 and stripped.startswith(name) and stripped.endswith("{"):
            depth = 1
            continue
        if depth:
            depth += stripped.count("{") - stripped.count("}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"
