"""The package as pip builds it for the Pi: no build warnings, and the pins the installer relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_builds_without_warnings_and_carries_the_pins(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "assistant", source / "assistant", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", str(source), "-w", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "Warning" not in output and "deprecated" not in output, output  # e.g. the licence table's
    wheel = next(tmp_path.glob("assistant-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    lines = metadata.splitlines()
    assert "License-Expression: MIT" in lines
    assert "Requires-Dist: gpiozero>=2.0.1.post3" in lines
    assert 'Requires-Dist: llama-cpp-python==0.3.36; extra == "engines"' in lines
