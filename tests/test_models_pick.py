"""The device's own models: the catalogue's Pi 5 pins fail closed, install when the hash is right, and the choice by RAM."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from models_fixtures import serve, sha256_of

from assistant.cli import main
from assistant.errors import InstallError, ModelError
from assistant.models import embedded
from assistant.models.catalogue import default_catalogue_text, load_catalogue
from assistant.models.install import install
from assistant.models.inventory import list_models, mem_total_mb
from assistant.models.ladder import quantize
from assistant.models.offer import offer_ladder
from assistant.models.pick import SYSTEM_MB, plan_for_device

READY = ("Llama-3.2-1B-Instruct-Q8_0.gguf", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Llama-3.2-1B-Instruct-Q4_0.gguf")


def packaged_entry(name: str) -> dict[str, Any]:
    """The packaged catalogue's YAML fields of one entry (a copy to edit)."""
    data = yaml.safe_load(default_catalogue_text()[0])
    return copy.deepcopy(data["models"][name])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real GGUFs made here from the bundled model under the names of the 1B files: what a pin cannot match."""
    out = tmp_path_factory.mktemp("built")
    files = {}
    for name, qtype in zip(READY, ("Q8_0", "Q4_K_M", "Q4_0")):
        files[name] = out / name
        quantize(embedded.smollm2_gguf(), files[name], qtype)
    return files


def test_the_packaged_pins_refuse_files_made_here(tmp_path: Path, built: dict[str, Path]) -> None:
    """The real pins fail closed: a wrong size, or (where no size is pinned) a wrong hash, installs nothing."""
    cat = load_catalogue()
    folder = tmp_path / "from"
    folder.mkdir()
    for name, path in built.items():
        shutil.copy(path, folder / name)
    models = tmp_path / "models"
    with pytest.raises(InstallError, match=r"is \d+ bytes, the catalogue says 1321083008"):
        install("llama-3.2-1b-ready", models_dir=models, from_file=folder, catalogue=cat)
    base = folder / "bitnet_b1_58-large-TQ2_0.gguf"
    shutil.copy(built[READY[2]], base)  # no size is pinned for it: the hash alone decides
    with pytest.raises(InstallError, match=r"the catalogue pins 281aafb18a9f4a31"):
        install("bitnet-b1.58-large", models_dir=models, from_file=base, catalogue=cat)
    status = {m.name: m.status for m in list_models(models_dir=models, catalogue=cat)}
    assert status["llama-3.2-1b-ready"] == status["bitnet-b1.58-large"] == "not installed"
    assert base.is_file() and all((folder / n).is_file() for n in READY)  # the person's files are left alone


def _with_files(entry: dict[str, Any], files: dict[str, Path], url: str) -> dict[str, Any]:
    """The packaged entry with each file's size and SHA-256 replaced by those of the file built here."""
    for f in entry["files"]:
        name = f["url"].rsplit("/", 1)[-1]
        f.update(url=f"{url}/{name}", size=files[name].stat().st_size, sha256=sha256_of(files[name]))
    return entry


def test_the_ready_1b_entry_installs_when_the_hashes_match_and_refuses_a_changed_byte(
        tmp_path: Path, built: dict[str, Path]) -> None:
    www = tmp_path / "www"
    www.mkdir()
    for name, path in built.items():
        (www / name).symlink_to(path)
    with serve(www) as server:
        entry = _with_files(packaged_entry("llama-3.2-1b-ready"), built, server.url)
        catalogue = tmp_path / "c.yaml"
        catalogue.write_text(yaml.safe_dump({"models": {"llama-3.2-1b-ready": entry}}), encoding="utf-8")
        cat = load_catalogue(catalogue)
        rec = install("llama-3.2-1b-ready", models_dir=tmp_path / "models", catalogue=cat).model
        assert sorted(rec.files) == sorted(READY) and all(d.origin == "catalogue" for d in rec.downloads)
        offer = offer_ladder(rec, cat["llama-3.2-1b-ready"])
        assert offer.built_from is None and [e.label for e in offer.entries] == ["Q8_0", "Q4_K_M", "Q4_0"]
        assert len([t for t in offer.tiers.tiers if t.kind == "llm"]) == 3

        changed = bytearray(built[READY[1]].read_bytes())
        changed[-1] ^= 0xFF  # same size, one byte different: only the hash can tell
        (www / READY[1]).unlink()
        (www / READY[1]).write_bytes(bytes(changed))
        with pytest.raises(InstallError, match="catalogue pins"):
            install("llama-3.2-1b-ready", models_dir=tmp_path / "other", catalogue=cat)
    assert not (tmp_path / "other" / "llama-3.2-1b-instruct-ready").exists()


def test_a_base_model_installs_but_offers_no_tier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gguf
    import numpy as np

    base = tmp_path / "bitnet_b1_58-large-TQ2_0.gguf"
    w = gguf.GGUFWriter(str(base), "bitnet")
    w.add_tensor("a.weight", np.ones((2, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    entry = packaged_entry("bitnet-b1.58-large")
    entry["files"][0]["sha256"] = sha256_of(base)
    catalogue = tmp_path / "c.yaml"
    catalogue.write_text(yaml.safe_dump({"models": {"bitnet-b1.58-large": entry}}), encoding="utf-8")
    args = ["models", "--catalogue", str(catalogue), "install", "bitnet-b1.58-large", "--from", str(base),
            "--dir", str(tmp_path / "models")]
    assert main(args) == 0
    assert "base model (no chat template): no tier is offered" in capsys.readouterr().out
    cat = load_catalogue(catalogue)
    rec = install("bitnet-b1.58-large", models_dir=tmp_path / "models", catalogue=cat).model
    with pytest.raises(ModelError, match="base model"):
        offer_ladder(rec, cat["bitnet-b1.58-large"])


def meminfo(tmp_path: Path, kib: int) -> Path:
    path = tmp_path / f"meminfo-{kib}"
    path.write_text(f"MemTotal:       {kib} kB\nMemFree:         123456 kB\nMemAvailable:   {kib // 2} kB\n")
    return path


@pytest.mark.parametrize(("board", "kib", "llm", "asr"), [
    ("Pi 4, 1 GB", 948_000, "smollm2-135m", "pocketsphinx-en-us"),
    ("Pi 4, 2 GB", 1_899_000, "qwen2.5-0.5b", "vosk-en"),
    ("Pi 5, 4 GB", 4_045_000, "llama-3.2-1b", "vosk-en-lgraph"),
    ("Pi 5, 8 GB", 8_245_000, "llama-3.2-1b", "vosk-en-lgraph"),
    ("Pi 5, 16 GB", 16_608_000, "llama-3.2-1b", "vosk-en-lgraph"),
])
def test_the_choice_by_ram(tmp_path: Path, board: str, kib: int, llm: str, asr: str) -> None:
    total = mem_total_mb(meminfo(tmp_path, kib))
    assert total == kib // 1024
    plan = plan_for_device(load_catalogue(), total)
    assert [c.name for c in plan.choices] == [llm, asr, "piper-joe"], board
    assert plan.ram_mb <= plan.budget_mb == total - SYSTEM_MB  # the three engines fit together
    assert [e.name for e in plan.to_install] == [n for n in (llm, asr) if n not in ("smollm2-135m",
                                                                                  "pocketsphinx-en-us")]


def test_picks_disk_and_unreadable_memory(tmp_path: Path) -> None:
    cat = load_catalogue()
    plan = plan_for_device(cat, 3950, picks=["qwen2.5-1.5b", "piper-amy-low"])
    assert [(c.name, c.picked) for c in plan.choices] == [("qwen2.5-1.5b", True), ("vosk-en-lgraph", False),
                                                           ("piper-amy-low", True)]
    tight = plan_for_device(cat, 1900, picks=["llama-3.2-1b"])
    assert tight.choices[0].name == "llama-3.2-1b" and "may not load" in tight.warnings[0]
    small_disk = plan_for_device(cat, 8000, disk_free=2_000_000_000)
    assert small_disk.choices[0].name == "qwen2.5-0.5b" and "GB of disk" in small_disk.choices[0].why
    with pytest.raises(InstallError, match="no such model"):
        plan_for_device(cat, 8000, picks=["gpt-5"])
    with pytest.raises(InstallError, match="two language models"):
        plan_for_device(cat, 8000, picks=["qwen2.5-1.5b", "llama-3.2-1b"])
    unknown = plan_for_device(cat, mem_total_mb(tmp_path / "absent"))
    assert [c.name for c in unknown.choices] == ["smollm2-135m", "pocketsphinx-en-us", "piper-joe"]
    assert "could not be read" in unknown.warnings[0]


def test_install_for_this_device_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "install", "--for-this-device", "--dry-run", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "of RAM" in out and "language model" in out and "nothing installed (--dry-run)" in out
    assert not any(tmp_path.iterdir())
    assert main(["models", "install", "--for-this-device", "vosk-en"]) == 2
    assert main(["models", "install"]) == 2
    assert "--for-this-device" in capsys.readouterr().err
