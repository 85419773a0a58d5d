"""The ladder an installed LLM offers: built from its file with llama.cpp, or the catalogue's ready rungs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest
from models_fixtures import serve, sha256_of, write_catalogue

from assistant.commands import models as models_cli
from assistant.config import AssistantConfig, load_config
from assistant.models import embedded
from assistant.models.catalogue import load_catalogue
from assistant.models.install import install
from assistant.models.ladder import quantize
from assistant.models.offer import offer_ladder
from assistant.models.tier_ladder import unavailable_tiers
from assistant.session import ladder_for
from assistant.speech.llm import LlamaResponder

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """F16 and Q8_0 files made from the bundled model by llama.cpp (real GGUFs of the same network)."""
    out = tmp_path_factory.mktemp("rebuilt")
    files = {q: out / f"SmolLM2-135M-Instruct.{q}.gguf" for q in ("F16", "Q8_0")}
    for qtype, path in files.items():
        quantize(embedded.smollm2_gguf(), path, qtype)
    return files


def llm_entry(files: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"kind": "llm", "description": "SmolLM2 for the ladder", "licence": "Apache-2.0", "top_dir": "smol",
            "architecture": "llama", "chat_template": "chatml", "files": files, **extra}


def local(path: Path, **extra: Any) -> dict[str, Any]:
    return {"name": path.name, "url": None, "size": path.stat().st_size, "sha256": sha256_of(path), **extra}


def test_a_float_source_builds_the_ladder_and_is_not_itself_a_tier(tmp_path: Path, rebuilt: dict[str, Path]) -> None:
    cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", smol=llm_entry(
        [local(rebuilt["F16"])], quant="F16", ladder=["Q8_0", "Q4_0"])))
    rec = install("smol", models_dir=tmp_path / "models", from_file=rebuilt["F16"], catalogue=cat).model
    offer = offer_ladder(rec, cat["smol"])
    assert offer.built_from == rec.path / rebuilt["F16"].name
    assert [(e.label, e.built) for e in offer.entries] == [("F16", False), ("Q8_0", True), ("Q4_0", True)]
    assert all(e.path.parent == rec.path / "ladder" for e in offer.entries[1:])
    assert [e.info.dominant_type for e in offer.entries[1:]] == ["Q8_0", "Q4_0"]
    assert any("kept as the build source but not offered as a tier" in n for n in offer.notes)
    llm = [t for t in offer.tiers.tiers if t.kind == "llm"]
    assert [(t.name, t.max_tokens, t.reply_words) for t in llm] == [("q8_0", 96, 40), ("q4_0", 40, 15)]
    assert [t.name for t in offer.tiers.tiers[2:]] == ["fixed", "shutdown"]
    again = offer_ladder(rec, cat["smol"])
    assert [e.built for e in again.entries] == [False, False, False] and again.tiers == offer.tiers


def test_ready_quantizations_over_http_are_the_ladder(tmp_path: Path, rebuilt: dict[str, Path]) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / rebuilt["Q8_0"].name).symlink_to(rebuilt["Q8_0"])
    (www / GGUF).symlink_to(embedded.smollm2_gguf())
    with serve(www) as server:
        files = [{**local(www / n), "url": f"{server.url}/{n}", "quant": q}
                 for n, q in ((GGUF, "Q4_1"), (rebuilt["Q8_0"].name, "Q8_0"))]
        cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", smol=llm_entry(files)))
        rec = install("smol", models_dir=tmp_path / "models", catalogue=cat).model
    offer = offer_ladder(rec, cat["smol"])
    assert offer.built_from is None and [e.label for e in offer.entries] == ["Q4_1", "Q8_0"]
    assert not (rec.path / "ladder").exists()
    llm = [t for t in offer.tiers.tiers if t.kind == "llm"]
    assert [(t.name, t.model, t.max_tokens, t.reply_words) for t in llm] == [
        ("q8_0", rec.path / rebuilt["Q8_0"].name, 96, 40), ("q4_1", rec.path / GGUF, 40, 15)]


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    models_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_install_offers_the_ladder_and_writes_it_only_when_asked(tmp_path: Path, tmp_config: AssistantConfig,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bundled = embedded.smollm2_gguf()
    catalogue = write_catalogue(tmp_path / "c.yaml", smol=llm_entry(
        [local(bundled)], quant="Q4_1", ladder=["Q8_0", "Q4_K_M", "Q4_0"], context_length=8192))
    base = ["models", "--catalogue", str(catalogue), "install", "smol", "--from", str(bundled)]
    args = cli(base)
    assert args.func(args, tmp_config) == 0
    out = capsys.readouterr().out
    assert "Q8_0 skipped: it is not leaner than the Q4_1 file" in out
    assert re.search(r"Q4_K_M is not offered as a tier: it came out at 6\.\d\d bits per weight, no leaner than the "
                     r"Q4_1 file", out), out  # SmolLM2's width (576) makes the K-quant fall back to Q5_0
    assert "q4_1       SoC >=   60 %  at most 96 tokens, asks for 40 words" in out
    assert "q4_0       SoC >=   15 %  at most 40 tokens, asks for 15 words" in out
    assert "nothing in your configuration was changed" in out
    assert f"models --catalogue {catalogue} install smol --write-config" in out
    config = tmp_path / "assistant.yaml"
    config.write_text(f"# my settings\nllm:\n  temperature: 0.3\npaths:\n  models_dir: {tmp_config.paths.models_dir}\n")
    args = cli([*base[:5], "--write-config", str(config)])
    assert args.func(args, tmp_config) == 0
    out = capsys.readouterr().out
    assert "already installed" in out and f"tiers section written to {config}" in out
    cfg = load_config(config)
    assert cfg.llm.temperature == 0.3 and "# my settings" in config.read_text()
    tiers = ladder_for(cfg)
    assert cfg.tiers is not None and tiers == cfg.tiers and unavailable_tiers(tiers) == set()
    leanest = [t for t in tiers.tiers if t.kind == "llm"][-1]
    assert leanest.model is not None and leanest.model.parent.name == "ladder" and leanest.quant == "Q4_0"
    responder = LlamaResponder(leanest.model, n_ctx=256, max_tokens=leanest.max_tokens, system_prompt="Answer briefly.")
    assert "".join(responder.respond("What is the capital of France?")).strip()
    responder.close()
    args = cli(["models", "--catalogue", str(catalogue), "remove", "smol"])
    assert args.func(args, cfg) == 0
    assert "the configured tiers q4_1, q4_0 used its files" in capsys.readouterr().out
    assert unavailable_tiers(ladder_for(cfg)) == {"q4_1", "q4_0"}
