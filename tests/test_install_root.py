"""deploy/install.sh and uninstall.sh run for real in a Debian Bookworm root without a running
systemd (an SD-card image being built, a container): twice each, changing nothing the second time.

The llama-cpp-python wheel is offered through PIP_FIND_LINKS as a Pi's prebuilt one would be
(pip's own cache holds the one the test setup built); everything else comes from the registry.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from assistant.device import sound_cards
from bookworm_root import Root, bookworm_root, copy_source, llama_wheel, missing_tools

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]

REPO = Path(__file__).resolve().parents[1]
CLONE = "/home/maker/assistant"  # a maker's clone, as the README has them make it
LLAMA = re.search(r'"llama-cpp-python==([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)  # type: ignore[union-attr]
INSTALL = f"umask 077; bash {CLONE}/deploy/install.sh --no-models"  # the strictest root umask
UNINSTALL = f"bash {CLONE}/deploy/uninstall.sh"
WANTS = "/etc/systemd/system/multi-user.target.wants/assistant.service"
WATCHED = ["/etc", "/opt", "/usr/local", "/var/lib/assistant", "/home"]
"""What an install may change; the second run must leave every file there as it was."""


class Installed:
    def __init__(self, root: Root, first: str, first_rc: int) -> None:
        self.root, self.first, self.first_rc = root, first, first_rc


class LoggedRoot(Root):
    """Keeps the output of every command next to the root (pytest keeps its last temp dirs)."""

    def __init__(self, root: Root, logs: Path) -> None:
        super().__init__(root.path, root.env)
        self.logs, self.count = logs, 0

    def run(self, command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = super().run(command, **kwargs)  # type: ignore[arg-type]
        self.count += 1
        (self.logs / f"{self.count:02d}.log").write_text(
            f"$ {command}\n# exit {result.returncode} after {time.monotonic() - started:.1f} s\n"
            f"{result.stdout}\n--- stderr ---\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    where = tmp_path_factory.mktemp("install")
    with bookworm_root(where / "root") as plain:
        root = LoggedRoot(plain, where)
        assert root.run("useradd --create-home --shell /bin/bash maker").returncode == 0
        copy_source(root, CLONE, "maker")
        llama_wheel(root / "/var/cache/wheels", LLAMA)
        root.env["PIP_FIND_LINKS"] = "/var/cache/wheels"
        result = root.run(INSTALL)
        yield Installed(root, result.stdout + result.stderr, result.returncode)


def manifest(root: Root) -> dict[str, tuple[object, ...]]:
    """Every file under WATCHED: type, mode, owner, and content hash or link target."""
    out: dict[str, tuple[object, ...]] = {}
    for top in WATCHED:
        base = root / top
        for dirpath, dirnames, filenames in os.walk(base):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    what: object = os.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    what = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    what = None
                out[str(path.relative_to(root.path))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                                         st.st_uid, st.st_gid, what)
    return out


def test_install_without_systemd_enables_the_unit_for_the_next_boot(installed: Installed) -> None:
    root, log = installed.root, installed.first
    assert installed.first_rc == 0, log[-3000:]
    assert "Traceback" not in log
    assert "systemd is not running here" in log and "starts at the next boot" in log
    assert os.readlink(root / WANTS) == "/etc/systemd/system/assistant.service"
    assert (root / "/etc/systemd/system/assistant.service").read_bytes() == (REPO / "deploy/assistant.service").read_bytes()
    rule = (root / "/etc/polkit-1/rules.d/50-assistant-poweroff.rules").read_text()
    assert '"org.freedesktop.login1.power-off-ignore-inhibit"' in rule and 'subject.user == "assistant"' in rule
    # the real apt step ran in the root, and no build was needed: the offered wheel was taken
    assert "install: apt packages: libgomp1 libportaudio2 i2c-tools polkitd" in log
    assert f"llama-cpp-python {LLAMA}: using the prebuilt wheel from /var/cache/wheels" in log
    assert "building llama-cpp-python" not in log
    assert "deprecated" not in log.lower()  # e.g. setuptools' licence-table warning
    assert "time per step:" in log and re.search(r"\d+\.\d s  Python packages", log)


def test_the_command_is_on_the_path_and_readable_under_a_strict_umask(installed: Installed) -> None:
    root = installed.root
    assert os.readlink(root / "/usr/local/bin/assistant") == "/opt/assistant/venv/bin/assistant"
    version = root.run("runuser -u maker -- assistant --version")
    assert version.returncode == 0 and version.stdout.startswith("assistant "), version.stderr
    # installed under umask 077, yet every file of the venv is readable by the service user
    unreadable = root.run("find /opt/assistant ! -perm -o+r -print -quit")
    assert unreadable.returncode == 0 and unreadable.stdout == "", unreadable.stdout
    config = (root / "/etc/assistant/config.yaml").stat()
    assert stat.S_IMODE(config.st_mode) == 0o640 and config.st_uid == 0
    service = root.run("runuser -u assistant -- assistant config check")
    assert service.returncode == 0 and "configuration OK (/etc/assistant/config.yaml)" in service.stdout, service.stderr
    ladder = root.run("ls /var/lib/assistant/models/ladder")
    assert ladder.returncode == 0 and ".gguf" in ladder.stdout  # the model step ran as the service user


def test_a_login_user_gets_one_line_saying_how_to_run_it(installed: Installed) -> None:
    result = installed.root.run("cd /home/maker && runuser -u maker -- assistant check")
    assert result.returncode == 2  # a configuration error
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "assistant: error: cannot read config file /etc/assistant/config.yaml: permission denied (only root and "
        "group assistant may); run it as the service user: sudo -u assistant assistant check "
        "(or: sudo assistant check)"]


def test_installing_again_changes_nothing(installed: Installed) -> None:
    root = installed.root
    before = manifest(root)
    again = root.run(INSTALL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "/opt/assistant/venv is up to date with this clone" in again.stderr
    assert "apt packages:" not in again.stderr
    after = manifest(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []


@contextmanager
def systemd_stand_in(root: Root, *, active: bool, failing: str = "") -> Iterator[list[str]]:
    """A running systemd, as the scripts see it: /run/systemd/system, not a chroot, and a
    systemctl that records its calls (``is-active`` answers ``active``; the ``failing`` verb fails
    with systemd's message). The list fills in when the block ends."""
    shims, log = root / "/usr/local/sbin", "/run/systemctl.calls"
    fail = f'[ "$1" = "{failing}" ] && {{ echo "Failed to {failing}: Access denied" >&2; exit 1; }}; ' if failing else ""
    scripts = {"systemctl": f'echo "$*" >> {log}; {fail}[ "$1" = is-active ] && exit {0 if active else 3}; exit 0',
               "systemd-detect-virt": "exit 1"}
    for name, body in scripts.items():
        (shims / name).write_text(f"#!/bin/sh\n{body}\n")
        (shims / name).chmod(0o755)
    (root / "/run/systemd/system").mkdir(parents=True)
    calls: list[str] = []
    try:
        yield calls
    finally:
        for name in scripts:
            (shims / name).unlink()
        (root / "/run/systemd/system").rmdir()
        if (root / log).exists():
            calls.extend((root / log).read_text().splitlines())
            (root / log).unlink()


def test_with_systemd_running_it_reloads_enables_and_checks_the_sound_cards(installed: Installed) -> None:
    """Nothing changed in the clone, so the service is not stopped, yet daemon-reload runs. The
    sound cards are this machine's (the root's /proc is its kernel's): with none to use, the install
    ends with the refusal that names what to plug in, and starts nothing."""
    root = installed.root
    choice = sound_cards.choose(sound_cards.list_cards())
    if choice.mic is not None and choice.speaker is not None:
        pytest.skip("this machine has a microphone and a speaker: the refusal cannot be seen here")
    with systemd_stand_in(root, active=False) as calls:
        result = root.run(INSTALL)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "assistant: error: no microphone and no speaker" in result.stderr
    assert "Plug in a USB microphone" in result.stderr
    assert "installed, but not started" in result.stderr.splitlines()[-2]
    assert calls == ["daemon-reload", "enable --quiet assistant.service"]  # no stop, no start


def test_building_is_announced_only_when_it_builds(installed: Installed) -> None:
    """No wheel offered for the pinned version (no index, no PIP_FIND_LINKS): the build tools are
    asked of apt (a recording stand-in here), the build is announced with two jobs on a 4 GB Pi,
    and pip, offline, then fails. The next run, on a running system whose service is up and whose
    config names its sound devices, stops the service, takes the wheel again, and starts it."""
    root = installed.root
    apt = root / "/usr/local/sbin/apt-get"
    apt.write_text('#!/bin/sh\necho "$*" >> /run/apt.calls\n')
    apt.chmod(0o755)
    meminfo = root / "/run/meminfo-4gb"  # a 4 GB Pi 4's
    meminfo.write_text("MemTotal:        3882752 kB\nMemFree:         3273244 kB\n")
    assert root.run("/opt/assistant/venv/bin/python -m pip uninstall --quiet --yes llama-cpp-python").returncode == 0
    try:
        with root.bind(meminfo, "/proc/meminfo"):
            offline = root.run(INSTALL, env={"PIP_FIND_LINKS": None, "PIP_NO_INDEX": "1"})
    finally:
        apt.unlink()
    apt_calls = (root / "/run/apt.calls").read_text().splitlines()
    assert offline.returncode != 0
    assert f"building llama-cpp-python {LLAMA} from source (once; about 45 minutes on a Pi 4, 2 parallel jobs" \
        in offline.stderr
    assert apt_calls[-1].endswith("install -y --no-install-recommends python3-dev build-essential cmake")

    config = root / "/etc/assistant/config.yaml"
    config.write_text(config.read_text().replace("device: default", "device: USB"))
    with systemd_stand_in(root, active=True) as calls:
        again = root.run(INSTALL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "building llama-cpp-python" not in again.stderr and "using the prebuilt wheel" in again.stderr
    assert "stopping assistant while its venv is replaced" in again.stderr
    assert calls == ["is-active --quiet assistant.service", "stop assistant.service", "daemon-reload",
                     "enable --quiet assistant.service", "start assistant.service"]


def test_uninstall_twice_then_purge_twice(installed: Installed) -> None:
    root = installed.root
    first = root.run(UNINSTALL)
    assert first.returncode == 0, first.stderr
    for gone in (WANTS, "/etc/systemd/system/assistant.service", "/usr/local/bin/assistant", "/opt/assistant",
                 "/etc/polkit-1/rules.d/50-assistant-poweroff.rules"):
        assert not os.path.lexists(root / gone), gone
    assert (root / "/etc/assistant/config.yaml").exists() and root.run("id -u assistant").returncode == 0
    before = manifest(root)
    second = root.run(UNINSTALL)
    assert second.returncode == 0 and "nothing to remove" in second.stderr, second.stderr
    assert manifest(root) == before
    purge = root.run(UNINSTALL + " --purge")
    assert purge.returncode == 0, purge.stderr
    assert not (root / "/etc/assistant").exists() and not (root / "/var/lib/assistant").exists()
    assert root.run("id -u assistant").returncode != 0
    again = root.run(UNINSTALL + " --purge")
    assert again.returncode == 0 and "no configuration, state or user assistant left" in again.stderr, again.stderr


def test_uninstall_with_systemd_running_says_why_disable_failed(installed: Installed) -> None:
    """A unit left behind, and a systemctl that refuses: the refusal is shown as it is, and the
    unit is removed all the same."""
    root = installed.root
    (root / "/etc/systemd/system/assistant.service").write_bytes((REPO / "deploy/assistant.service").read_bytes())
    with systemd_stand_in(root, active=True, failing="disable") as calls:
        result = root.run(UNINSTALL)
    assert result.returncode == 0, result.stderr
    assert "systemctl disable --now assistant.service failed: Failed to disable: Access denied" in result.stderr
    assert not (root / "/etc/systemd/system/assistant.service").exists()
    assert calls == ["disable --now --quiet assistant.service", "daemon-reload", "reset-failed assistant.service"]
