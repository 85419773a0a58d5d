"""A Debian Bookworm root without a running systemd, to run deploy/install.sh in for real.

It is what an SD-card image being built in a chroot is, and what Raspberry Pi OS Lite is made of:
debootstrap's minimal base plus systemd (installed, not running) and python3-venv. Built once with
debootstrap from this machine's own apt mirror and kept as a tar under the repository's ignored
``var/`` (about 300 MB, 1-2 minutes to build, seconds to unpack); every test run unpacks a
fresh copy. Only a procfs is mounted inside (and this machine's pip cache, so that wheels are not
downloaded twice); nothing is loaded into the kernel.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "var" / "test-roots"
SUITE = "bookworm"
INCLUDE = ["systemd", "python3-venv", "ca-certificates"]
"""On top of debootstrap's minbase: an init that is installed but not running, and a Python 3.11
that can make a venv. The installer's own apt step brings the rest."""
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COPY_IGNORE = shutil.ignore_patterns(".venv", "var", ".git", "__pycache__", "*.egg-info", "build", ".pytest_cache",
                                     ".hypothesis", ".mypy_cache", "out", "*.pyc")


def missing_tools() -> str | None:
    """Why a root cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mount)"
    for tool in ("debootstrap", "chroot", "mount", "umount", "tar"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (bash deploy/bootstrap.sh test installs debootstrap)"
    return None


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            if line.startswith("deb ") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def cached_base() -> Path:
    """The tar of the base root, built with debootstrap when it is not cached yet."""
    recipe = f"{SUITE} {_arch()} minbase {','.join(INCLUDE)}"
    tar = CACHE / f"{SUITE}-{_arch()}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.tar"
    if tar.exists():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    build = CACHE / f".build-{os.getpid()}"
    try:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(build),
                        apt_mirror()], check=True, capture_output=True, text=True, timeout=1200)
        subprocess.run(["tar", "-C", str(build), "-cf", f"{tar}.part", "."], check=True, timeout=600)
        os.replace(f"{tar}.part", tar)
    finally:
        _remove(build)
    return tar


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1].replace("\\040", " ") for line in fh]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _remove(path: Path) -> None:
    """Delete a root, never through a mount that is still there."""
    if not path.exists():
        return
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    if _mounts_under(path):
        raise RuntimeError(f"{path} still has mounts; not deleting it")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


class Root:
    """An unpacked root; ``run`` executes a shell command in it through chroot."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = dict(env)

    def __truediv__(self, inner: str) -> Path:
        return self.path / inner.lstrip("/")

    def run(self, command: str, *, env: Mapping[str, str | None] | None = None, timeout: float = 1800,
            ) -> subprocess.CompletedProcess[str]:
        """``env`` adds to the root's environment; a None value leaves that variable out."""
        merged: dict[str, str | None] = {**self.env, **(env or {})}
        full = {k: v for k, v in merged.items() if v is not None}
        args = ["chroot", str(self.path), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in full.items()),
                "bash", "-c", command]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)

    @contextmanager
    def bind(self, source: Path, inner: str) -> Iterator[None]:
        """``source`` mounted over ``inner`` for a while (e.g. a /proc file as another machine has it)."""
        target = self / inner
        subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", str(target)], check=True)


def _pip_settings(root: Path) -> dict[str, str]:
    """What pip needs inside to reach the registry as it does out here (CA bundle, proxies)."""
    env: dict[str, str] = {}
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        inside = root / "etc/ssl/host-ca-bundle.crt"
        shutil.copy(bundle, inside)
        env["PIP_CERT"] = "/etc/ssl/host-ca-bundle.crt"
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                "PIP_INDEX_URL", "PIP_DEFAULT_TIMEOUT"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def llama_wheel(into: Path, version: str) -> Path:
    """llama-cpp-python ``version`` as a wheel for this machine: pip's cache holds the one the test
    setup built; otherwise pip builds it here (minutes) and caches it for the next time."""
    into.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CMAKE_ARGS=os.environ.get("CMAKE_ARGS", "") + " -DGGML_NATIVE=OFF")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", f"llama-cpp-python=={version}",
                    "-w", str(into)], check=True, env=env, timeout=3600)
    return next(into.glob(f"llama_cpp_python-{version}-*.whl"))


@contextmanager
def bookworm_root(where: Path) -> Iterator[Root]:
    """A fresh root at ``where``: the cached base unpacked, /proc mounted, DNS and pip's CA bundle
    copied in, this machine's pip cache mounted at /root/.cache/pip."""
    base = cached_base()
    where.mkdir(parents=True)
    try:
        subprocess.run(["tar", "-C", str(where), "-xf", str(base)], check=True, timeout=600)
        shutil.copy("/etc/resolv.conf", where / "etc/resolv.conf")
        subprocess.run(["mount", "-t", "proc", "proc", str(where / "proc")], check=True)
        cache = Path(os.environ.get("PIP_CACHE_DIR") or Path.home() / ".cache/pip")
        cache.mkdir(parents=True, exist_ok=True)
        (where / "root/.cache/pip").mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(cache), str(where / "root/.cache/pip")], check=True)
        env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", **_pip_settings(where)}
        yield Root(where, env)
    finally:
        _remove(where)


def copy_source(root: Root, inside: str, owner: str) -> None:
    """This working tree (without venvs, caches and git) at ``inside``, owned by ``owner``."""
    shutil.copytree(REPO, root / inside, ignore=COPY_IGNORE, symlinks=True)
    result = root.run(f"chown -R {owner}: {inside}")
    assert result.returncode == 0, result.stderr
