"""Building the quantization ladder from the embedded SmolLM2, and `assistant models build-ladder`."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from assistant.config import AssistantConfig, PathsConfig, build
from assistant.errors import ConfigError, ModelError, ModelNotFound
from assistant.messages import BatteryReading
from assistant.models.digest import file_sha256
from assistant.models.ladder import LadderEntry, build_ladder, expected_tensor_type, ladder_file
from assistant.models.tier_ladder import default_ladder, ladder_to_tiers, offered, unavailable_tiers
from assistant.power.cutoff import DEFAULT_EMPTY
from assistant.power.tiers import TierConfig, choose_tier
from assistant.speech.llm import LlamaResponder

pytestmark = pytest.mark.slow


def soc_reading(soc: float) -> BatteryReading:
    return BatteryReading(t_monotonic=0.0, voltage_v=7.4, current_a=-0.5, power_w=-3.7, soc_pct=soc,
                          charging=False, external_power=False, source="test")


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> tuple[Path, list[LadderEntry], list[str]]:
    """The default ladder built once into MODELS_DIR/ladder (about 3 s of quantizing)."""
    models_dir = tmp_path_factory.mktemp("models")
    handler = ListHandler()
    logger = logging.getLogger("assistant.models.ladder")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        entries = build_ladder(smollm2, models_dir / "ladder", threads=2)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return models_dir, entries, handler.messages


def test_real_tensor_types(built: tuple[Path, list[LadderEntry], list[str]], smollm2: Path) -> None:
    _, entries, warnings = built
    by = {e.requested: e for e in entries}
    # the default types are Q8_0, Q6_K, Q4_K_M and Q2_K: the first two are not leaner than the Q4_1 source
    assert [e.requested for e in entries] == ["source", "Q4_K_M", "Q2_K"]
    assert sum("re-quantizing up adds size, not quality" in w for w in warnings) == 2
    assert by["source"].path == smollm2 and not by["source"].built and by["source"].label == "Q4_1"
    # what llama.cpp really writes for a model whose hidden size (576) is not a multiple of 256
    assert by["Q4_K_M"].info.tensors_by_type == {"Q5_0": 166, "Q8_0": 15, "Q6_K": 14, "Q4_K": 16, "F32": 61}
    assert by["Q2_K"].info.tensors_by_type == {"Q4_0": 180, "Q3_K": 30, "Q8_0": 1, "F32": 61}
    assert "Q2_K" not in by["Q2_K"].info.tensors_by_type
    assert [by[t].info.dominant_type for t in ("Q4_K_M", "Q2_K")] == ["Q5_0", "Q4_0"]
    assert [by[t].type_mismatch for t in ("Q4_K_M", "Q2_K")] == [True, True]
    assert len([w for w in warnings if "fell back" in w]) == 2
    bpw = {t: e.info.bits_per_weight for t, e in by.items()}
    assert bpw["Q4_K_M"] > bpw["source"] > bpw["Q2_K"]  # the K-quant fallback makes "Q4_K_M" the biggest file
    assert bpw["source"] == pytest.approx(5.744, abs=0.01) and bpw["Q2_K"] == pytest.approx(5.139, abs=0.01)
    for e in entries[1:]:
        assert e.built and e.seconds > 0 and e.fallback_tensors is not None
        assert e.path == ladder_file(e.path.parent, smollm2, e.requested) and e.path.is_file()
        side = json.loads(e.path.with_name(e.path.name + ".json").read_text())
        assert side["source_sha256"] == file_sha256(smollm2) == e.source_sha256 and side["type"] == e.requested
        assert side["bits_per_weight"] == pytest.approx(e.info.bits_per_weight, abs=1e-3)
        assert side["source_bits_per_weight"] == pytest.approx(bpw["source"], abs=1e-3)
    assert not list(entries[1].path.parent.glob(".*tmp*"))  # no temp files left behind


def test_built_file_answers(built: tuple[Path, list[LadderEntry], list[str]]) -> None:
    _, entries, _ = built
    q4km = next(e for e in entries if e.requested == "Q4_K_M")
    r = LlamaResponder(q4km.path, n_ctx=512, max_tokens=24, threads=2,
                       system_prompt="Answer in one short sentence.", history_turns=0)
    try:
        answer = "".join(r.respond("What is the capital of France?"))
    finally:
        r.close()
    assert "Paris" in answer and r.last.tokens > 0


def test_up_to_date_files_are_reused_and_stale_ones_rebuilt(built: tuple[Path, list[LadderEntry], list[str]],
                                                            smollm2: Path) -> None:
    models_dir, _, _ = built
    out = models_dir / "ladder"
    again = build_ladder(smollm2, out, ["q2_k"])  # case-insensitive
    assert [e.built for e in again] == [False, False] and again[1].requested == "Q2_K"
    assert again[1].info.tensors_by_type == {"Q4_0": 180, "Q3_K": 30, "Q8_0": 1, "F32": 61}
    # a sidecar naming another source hash means the file is stale: it is rebuilt
    side = out / "SmolLM2-135M-Instruct.Q2_K.gguf.json"
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "source_sha256": "0" * 64}))
    rebuilt = build_ladder(smollm2, out, ["Q2_K"])
    assert rebuilt[1].built and json.loads(side.read_text())["source_sha256"] == meta["source_sha256"]


def test_default_ladder_once_built(built: tuple[Path, list[LadderEntry], list[str]]) -> None:
    models_dir, _, _ = built
    cfg = default_ladder(models_dir)
    # Q4_K_M came out bigger than its source: built, but not a rung; what is left is the source and Q2_K
    assert [t.name for t in cfg.tiers] == ["q4_1", "q2_k", "fixed", "shutdown"]
    assert unavailable_tiers(cfg) == set()
    assert choose_tier(soc_reading(90), cfg, None, empty=DEFAULT_EMPTY).name == "q4_1"
    assert choose_tier(soc_reading(45), cfg, None, empty=DEFAULT_EMPTY).name == "q2_k"
    assert choose_tier(soc_reading(20), cfg, None, empty=DEFAULT_EMPTY).name == "q2_k"
    assert choose_tier(soc_reading(10), cfg, None, empty=DEFAULT_EMPTY).name == "fixed"


def test_ladder_to_tiers(built: tuple[Path, list[LadderEntry], list[str]]) -> None:
    _, entries, _ = built
    cfg = ladder_to_tiers(entries)  # every file, richest real bits per weight first
    assert [t.name for t in cfg.tiers] == ["q4_k_m", "q4_1", "q2_k", "fixed", "shutdown"]
    llm = [t for t in cfg.tiers if t.kind == "llm"]
    assert [t.enter_soc_pct for t in llm] == [60.0, 37.5, 15.0]
    assert [t.max_tokens for t in llm] == [96, 68, 40]
    assert [t.reply_words for t in llm] == [40, 28, 15]
    assert llm[1].model == entries[0].path and llm[1].quant == "Q4_1"
    rungs, notes = offered(entries)  # a file no leaner than its source is not a rung
    assert [e.requested for e in rungs] == ["source", "Q2_K"]
    assert any("Q4_K_M is not offered as a tier" in n for n in notes)
    assert [t.name for t in ladder_to_tiers(rungs).tiers] == ["q4_1", "q2_k", "fixed", "shutdown"]
    with pytest.raises(ModelError):
        ladder_to_tiers([])


def test_never_re_quantized_up(tmp_path: Path, smollm2: Path) -> None:
    """Q8_0 and Q6_K from a Q4_1 file add size, not quality: nothing is written for them."""
    entries = build_ladder(smollm2, tmp_path / "up", ["Q8_0", "Q6_K", "Q4_1"])
    assert [e.requested for e in entries] == ["source"]
    assert not list((tmp_path / "up").iterdir())


def test_refusals(tmp_path: Path, smollm2: Path) -> None:
    with pytest.raises(ModelError, match="garbage"):
        build_ladder(smollm2, tmp_path, ["Q8_0", "TQ1_0"])
    with pytest.raises(ModelError, match="unknown quantization type 'Q9_9'"):
        build_ladder(smollm2, tmp_path, ["Q9_9"])
    with pytest.raises(ModelNotFound):
        build_ladder(tmp_path / "absent.gguf", tmp_path, ["Q8_0"])
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(ModelError):
        build_ladder(fake, tmp_path / "out", ["Q8_0"])
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert expected_tensor_type("q4_k_m") == "Q4_K" and expected_tensor_type("Q8_0") == "Q8_0"


def _cli(argv: list[str], cfg: AssistantConfig) -> int:
    from assistant.commands.ladder import add_build_ladder

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    models = sub.add_parser("models").add_subparsers()
    add_build_ladder(models)
    args = parser.parse_args(["models", "build-ladder", *argv])
    result: int = args.func(args, cfg)
    return result


CONFIG = """# my appliance
llm:
  max_tokens: 50   # short answers

tiers:
  tiers:
    - {name: old, model: /x.gguf, enter_soc_pct: 50}
    - {name: fixed, kind: fixed, enter_soc_pct: 5}

# speech
tts:
  length_scale: 1.1
"""


def test_cli_table_and_write_config(built: tuple[Path, list[LadderEntry], list[str]], smollm2: Path,
                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models_dir, _, _ = built
    cfg = replace(AssistantConfig(), paths=PathsConfig(state_dir=tmp_path, models_dir=models_dir))
    conf = tmp_path / "assistant.yaml"
    conf.write_text(CONFIG)
    assert _cli(["--types", "Q8_0,Q2_K", "--write-config", str(conf)], cfg) == 0
    out = capsys.readouterr().out
    assert "Q2_K       Q4_0" in out and "reused" in out and "Q4_0:180 Q8_0:1 Q3_K:30 F32:61 *" in out
    assert "Q8_0 skipped: it is not leaner than the Q4_1 file" in out
    text = conf.read_text()
    assert text.startswith("# my appliance\nllm:\n  max_tokens: 50   # short answers\n")
    assert "# speech\ntts:\n  length_scale: 1.1\n" in text and "name: old" not in text
    data = yaml.safe_load(text)
    assert data["llm"] == {"max_tokens": 50} and data["tts"] == {"length_scale": 1.1}
    tiers: TierConfig = build(TierConfig, data["tiers"], str(conf), "tiers.")
    assert [t.name for t in tiers.tiers] == ["q4_1", "q2_k", "fixed", "shutdown"]
    assert tiers.tiers[0].model == smollm2
    # writing again replaces the section (and its label) instead of adding a second one
    assert _cli(["--types", "Q4_K_M", "--write-config", str(conf), "--json"], cfg) == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["requested"] for e in report["entries"]] == ["source", "Q4_K_M"]
    assert any("Q4_K_M is not offered as a tier" in n for n in report["notes"])
    text2 = conf.read_text()
    assert text2.count("tiers:\n") == 2 and text2.count("# tier ladder written by") == 1  # "tiers:" and its "  tiers:" list
    assert [t["name"] for t in yaml.safe_load(text2)["tiers"]["tiers"]] == ["q4_1", "fixed", "shutdown"]
    fresh = tmp_path / "new.yaml"  # a config file that does not exist yet
    assert _cli(["--types", "Q8_0", "--write-config", str(fresh)], cfg) == 0
    assert set(yaml.safe_load(fresh.read_text())) == {"tiers"}


def test_cli_refuses_to_touch_a_broken_config(built: tuple[Path, list[LadderEntry], list[str]],
                                              tmp_path: Path) -> None:
    models_dir, _, _ = built
    cfg = replace(AssistantConfig(), paths=PathsConfig(state_dir=tmp_path, models_dir=models_dir))
    conf = tmp_path / "broken.yaml"
    conf.write_text("llm: [unclosed\n")
    with pytest.raises(ConfigError, match="not touching it"):
        _cli(["--types", "Q8_0", "--write-config", str(conf)], cfg)
    assert conf.read_text() == "llm: [unclosed\n"
    with pytest.raises(ConfigError, match="--types"):
        _cli(["--types", " , "], cfg)
