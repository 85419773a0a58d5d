"""The speed twin: made by the same code as the 2.1 GB one (a small shape), labelled, measured, never talked to."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import TINY_TWIN_TYPES
from drain_helpers import write_prompts

from assistant.cli import main
from assistant.config import load_config
from assistant.drain.begin import start_run
from assistant.drain.options import DrainOptions
from assistant.drain.report import write_report
from assistant.errors import ConfigError, ModelError, ModelNotFound
from assistant.models.gguf_info import read_gguf_info, read_kv
from assistant.models.ladder import LadderEntry
from assistant.models.twin import LABEL, find_twin, twin_info, twin_ladder, twin_tiers_file
from assistant.models.twin_make import LLAMA_3_2_1B, TwinBuild, TwinShape, WordsPerToken, k_quant_problems, make_twin
from assistant.turnlog import read_turns
from assistant.session import Session
from assistant.speech.speaker import NullSpeaker

SHAPE = TwinShape("Tiny-Test", hidden=256, layers=2, ffn=512, heads=4, kv_heads=2)


def models_dir(build: TwinBuild) -> Path:
    return build.folder.parent


def test_the_twin_has_the_shapes_random_weights_the_tokenizer_and_the_marker(tiny_twin: TwinBuild,
                                                                             smollm2: Path) -> None:
    src = tiny_twin.source_info
    vocab = 49152  # SmolLM2's
    assert src.parameters == SHAPE.parameters(vocab) == vocab * 256 + 2 * (256 * 256 * 2 + 128 * 256 * 2 + 3 * 512 * 256
                                                                           + 2 * 256) + 256
    assert src.tensors_by_type == {"F16": 1 + 2 * 7, "F32": 2 * 2 + 1} and src.file_type == "MOSTLY_F16"
    assert not tiny_twin.source.exists() and not tiny_twin.source_kept  # deleted: the ladder does not need it
    template = read_kv(smollm2, frozenset({"tokenizer.chat_template"}))["tokenizer.chat_template"]
    for rung in tiny_twin.rungs:
        info = twin_info(rung.path)
        assert info is not None and info.label == LABEL and info.shapes_of == "Tiny-Test"
        assert info.words_per_token == pytest.approx(0.75) and info.words_basis == "given by the test"
        kv = read_kv(rung.path, frozenset({"tokenizer.chat_template", "llama.embedding_length", "general.description"}))
        assert kv == {"tokenizer.chat_template": template, "llama.embedding_length": 256, "general.description": LABEL}
    assert twin_info(smollm2) is None  # a real model is not a twin


def test_every_k_quant_rung_really_is_k_quant(tiny_twin: TwinBuild) -> None:
    by_type = {e.requested: e.info.tensors_by_type for e in tiny_twin.rungs}
    assert list(by_type) == list(TINY_TWIN_TYPES)
    for qtype in ("Q4_K_M", "Q2_K"):
        quantized = {t for t in by_type[qtype] if t not in ("F32", "F16")}
        assert quantized and all(t.endswith("_K") for t in quantized), (qtype, by_type[qtype])
    assert by_type["Q4_K_M"].get("Q4_K", 0) >= 10 and by_type["Q2_K"].get("Q2_K", 0) >= 6
    assert by_type["Q8_0"] == {"Q8_0": 15, "F32": 5}
    assert by_type["TQ2_0"].get("TQ2_0") == 14  # every layer matrix ternary; the embedding stays Q6_K
    assert all(not k_quant_problems(e) for e in tiny_twin.rungs)


def test_the_k_quant_check_catches_a_model_whose_widths_do_not_fit(ladder_files: dict[str, Path]) -> None:
    path = ladder_files["Q2_K"]  # SmolLM2, hidden 576: its "Q2_K" is mostly Q4_0
    entry = LadderEntry("Q2_K", path, read_gguf_info(path), "", built=True, seconds=0.0, fallback_tensors=180)
    problems = k_quant_problems(entry)
    assert any("Q4_0 tensor" in p for p in problems) and any("180 fallback" in p for p in problems)


def test_shapes_that_would_not_measure_the_ladder_are_refused(tmp_path: Path, smollm2: Path) -> None:
    words = WordsPerToken(0.75, "test")
    with pytest.raises(ModelError, match="multiples of 256"):
        make_twin(tmp_path, words, tokenizer_from=smollm2, shape=replace(SHAPE, hidden=576))
    with pytest.raises(ModelError, match="heads must divide"):
        make_twin(tmp_path, words, tokenizer_from=smollm2, shape=replace(SHAPE, heads=3))
    assert LLAMA_3_2_1B.parameters(49152) == pytest.approx(1.074e9, rel=1e-3)  # 2.15 GB as F16


def test_a_remake_reuses_the_rungs_and_can_keep_the_source(tiny_twin: TwinBuild, smollm2: Path) -> None:
    again = make_twin(models_dir(tiny_twin), WordsPerToken(0.75, "given by the test"), tokenizer_from=smollm2,
                      shape=SHAPE, types=TINY_TWIN_TYPES, keep_source=True)
    assert [e.built for e in again.rungs] == [False] * 4  # same seed, same file, same rungs
    assert again.source.is_file() and again.source_kept and twin_info(again.source) is not None
    again.source.unlink()


def test_the_twin_ladder_is_a_tiers_file_of_twins(tiny_twin: TwinBuild, tmp_path: Path) -> None:
    ladder = twin_ladder(models_dir(tiny_twin))
    llm = [t for t in ladder.tiers if t.kind == "llm"]
    assert [t.quant for t in llm] == list(TINY_TWIN_TYPES[:1]) + [t.quant for t in llm[1:]]
    assert all(t.model is not None and twin_info(t.model) is not None for t in llm)
    assert [t.max_tokens for t in llm][0] == 96 and llm[-1].max_tokens == 40
    found = find_twin(models_dir(tiny_twin))
    assert found is not None and found.tiers_file == twin_tiers_file(models_dir(tiny_twin)) and len(found.files) == 4
    with pytest.raises(ModelNotFound, match="make-twin"):
        twin_ladder(tmp_path)


def twin_config(tiny_twin: TwinBuild, tmp_path: Path, **extra: object) -> Path:
    data: dict[str, object] = {"paths": {"state_dir": str(tmp_path / "state"), "models_dir": str(models_dir(tiny_twin))},
                               "asr": {"engine": "pocketsphinx"}, "battery": {"kind": "simulated"}, **extra}
    path = tmp_path / "assistant.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_twin_turn_generates_the_budget_and_its_words_are_estimated(tiny_twin: TwinBuild, tmp_path: Path) -> None:
    cfg = replace(load_config(twin_config(tiny_twin, tmp_path)), tiers=twin_ladder(models_dir(tiny_twin)))
    log = tmp_path / "turns.jsonl"
    with Session(cfg, with_asr=False, turn_log=log, start_meter=False, pin_tier="q2_k") as session:
        speaker = NullSpeaker()
        record = session.run_turn(speaker, text="What is the capital of France?")
        tier = session.tier
    assert tier is not None and tier.name == "q2_k"
    assert record.tokens == tier.max_tokens  # the whole budget, whatever the random weights say
    assert record.words == round(tier.max_tokens * 0.75) and record.words_estimate is not None
    assert LABEL in record.words_estimate and "0.750 words per token" in record.words_estimate
    assert speaker.seconds > 1.0  # the stand-in reply was spoken, as a real reply of that length would be
    [entry] = read_turns(log).entries
    assert entry.words_estimated is True and LABEL in (entry.words_basis or "") and entry.tokens == tier.max_tokens


def test_the_commands_that_talk_refuse_a_twin(tiny_twin: TwinBuild, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.device.hardware import build_appliance

    rung = tiny_twin.rungs[0].path
    as_model = twin_config(tiny_twin, tmp_path, llm={"model": str(rung)})
    assert main(["--config", str(as_model), "ask", "--text", "Hello?"]) == 2
    err = capsys.readouterr().err
    assert LABEL in err and "cannot answer a person" in err and "drain-test --twin" in err
    cfg = replace(load_config(as_model), tiers=twin_ladder(models_dir(tiny_twin)))
    with pytest.raises(ConfigError, match="assistant run: tier 'q8_0'"):
        build_appliance(cfg, sim=True)


def test_models_list_labels_the_twin_and_make_twin_reuses_it(tiny_twin: TwinBuild,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(models_dir(tiny_twin))
    assert main(["models", "list", "--dir", folder]) == 0
    out = capsys.readouterr().out
    assert "SPEED TWIN" in out and LABEL in out and "Tiny-Test" in out and "never used to answer a person" in out.lower()
    assert main(["models", "make-twin", "--dir", folder, "--types", ",".join(TINY_TWIN_TYPES)]) == 0
    out = capsys.readouterr().out
    assert "already made" in out and "Q4_K_M" in out and "yes" in out and "drain-test --twin" in out


def test_a_drain_on_the_twin_is_labelled_and_counts_answers_per_charge(tiny_twin: TwinBuild, tmp_path: Path) -> None:
    cfg = load_config(twin_config(tiny_twin, tmp_path))
    out = tmp_path / "run"
    result = start_run(cfg, DrainOptions(tier="q4_k_m", twin=True, max_turns=2, prompts=write_prompts(tmp_path),
                                         capacity_wh=0.5), out)
    assert result.status == "stopped" and result.turns == 2
    meta = json.loads((out / "meta.json").read_text())
    assert meta["mode"] == "pinned q4_k_m on the speed twin" and meta["models"]["q4_k_m"]["twin"] == LABEL
    records = read_turns(out / "turns.jsonl").entries
    assert all(r.words_estimated and r.tokens == 77 and r.words == round(77 * 0.75) for r in records)
    dialogue = [json.loads(x) for x in (out / "dialogue.jsonl").read_text().splitlines()]
    assert all(d["reply_is_stand_in"] and LABEL in d["reply_is_stand_in"] for d in dialogue)
    write_report(out)
    report = json.loads((out / "report.json").read_text())
    assert report["answers"] == 2 and report["words_estimated"] is True
    assert report["answers_per_charge_whole"] == pytest.approx(
        2 / (report["pack_drawn_j"] / meta["pack"]["time_scale"]) * report["usable_j"])
    assert report["tiers"]["q4_k_m"]["twin"] == LABEL
    text = (out / "report.md").read_text()
    assert f"**{LABEL[:1].upper()}{LABEL[1:]}.**" in text and "Speed twin: speed twin" not in text and "answers per charge" in text and "(estimated)" in text


def test_read_kv_skips_arrays_and_stops_at_a_cut(tmp_path: Path, smollm2: Path) -> None:
    kv = read_kv(smollm2, frozenset({"general.architecture", "tokenizer.ggml.tokens", "llama.context_length"}))
    assert kv == {"general.architecture": "llama", "llama.context_length": 8192}  # the vocabulary is an array
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2.read_bytes()[:50_000])  # inside the vocabulary
    with pytest.raises(ModelError, match="cut short"):
        read_kv(cut, frozenset({"tokenizer.chat_template"}))


def test_a_twin_remembers_what_it_generated_not_the_stand_in(tiny_twin: TwinBuild) -> None:
    """A real model's next prompt starts with the reply it has just evaluated, so llama.cpp reuses it; the twin
    remembers the text of its own tokens for the same reason (as far as that text tokenizes back to the same
    tokens, which random tokens often do not), never the stand-in prose it speaks."""
    from assistant.models.twin import twin_info
    from assistant.speech.twin_responder import TwinResponder

    path = tiny_twin.rungs[0].path
    info = twin_info(path)
    assert info is not None
    r = TwinResponder(path, twin=info, n_ctx=512, threads=1, max_tokens=24, history_turns=4, system_prompt="Be brief.")
    try:
        spoken = "".join(r.respond("What is the capital of France?"))
        first = r.last.prompt_total
        (_, remembered), = r.memory.turns
        assert remembered != spoken.strip() and r.last.text == spoken.strip()  # the stand-in is spoken, not kept
        evaluated = r._llm.detokenize(list(r._llm._input_ids)[first:]).decode("utf-8", "replace")
        assert evaluated and remembered.startswith(evaluated)  # the generated tokens (all but the last evaluated)
        list(r.respond("And of Italy?"))
        assert r.last.prompt_tokens <= r.last.prompt_total - first + 1  # the first prompt was not evaluated again
    finally:
        r.close()
