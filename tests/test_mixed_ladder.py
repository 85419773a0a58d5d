"""A ladder whose rungs are other models, not only other quantizations: which files are the same model, what a
tier switch carries over (the conversation, within one model) and what it resets (template, memory)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from assistant.config import AssistantConfig, PathsConfig
from assistant.models.gguf_info import read_gguf_info
from assistant.models.twin_make import TwinBuild
from assistant.sim.pack import SimulatedPack
from assistant.power.tiers import Tier, TierConfig
from assistant.session import Session
from assistant.speech.llm import LlamaResponder
from assistant.speech.speaker import NullSpeaker

OTHER_TEMPLATE = ("{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"
                  "{% if add_generation_prompt %}### assistant:\n{% endif %}")


def with_chat_template(source: Path, dest: Path, template: str) -> Path:
    """A copy of the GGUF ``source`` whose chat template is ``template`` (every other key and tensor as it was):
    the same network behind another conversation format."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(dest), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = template if key == "tokenizer.chat_template" else field.contents()
        sub = field.types[1] if field.types[0] == gguf.GGUFValueType.ARRAY and len(field.types) > 1 else None
        writer.add_key_value(key, value, field.types[0], sub_type=sub)
    for t in reader.tensors:
        writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


@pytest.fixture(scope="module")
def other_template(ladder_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_chat_template(ladder_files["Q2_K"], tmp_path_factory.mktemp("other") / "Other-Chat.Q2_K.gguf",
                              OTHER_TEMPLATE)


def test_quantizations_of_one_model_are_one_family_other_models_are_not(
        ladder_files: dict[str, Path], tiny_twin: TwinBuild, other_template: Path) -> None:
    families = {q: read_gguf_info(p).family for q, p in ladder_files.items()}
    assert len(set(families.values())) == 1 and families["Q8_0"]  # Q4_1, and Q8_0 / Q2_K built from it
    twin = read_gguf_info(tiny_twin.rungs[0].path).family
    assert twin not in families.values()  # other shapes: another model, though its tokenizer is SmolLM2's
    assert {read_gguf_info(r.path).family for r in tiny_twin.rungs} == {twin}
    assert read_gguf_info(other_template).family not in families.values()  # same weights, other template
    assert read_gguf_info(other_template).tensors_by_type == read_gguf_info(ladder_files["Q2_K"]).tensors_by_type


def mixed(files: dict[str, Path], other: Path, twin: Path) -> TierConfig:
    return TierConfig(tiers=[
        Tier(name="smol-q8_0", model=files["Q8_0"], quant="Q8_0", enter_soc_pct=80, n_ctx=512, max_tokens=16),
        Tier(name="smol-q2_k", model=files["Q2_K"], quant="Q2_K", enter_soc_pct=60, n_ctx=512, max_tokens=16),
        Tier(name="other-q2_k", model=other, quant="Q2_K", enter_soc_pct=40, n_ctx=512, max_tokens=16),
        Tier(name="twin-q8_0", model=twin, quant="Q8_0", enter_soc_pct=20, n_ctx=512, max_tokens=8),
        Tier(name="fixed", kind="fixed", enter_soc_pct=10),
        Tier(name="shutdown", kind="shutdown"),
    ])


def test_a_tier_switch_keeps_the_conversation_within_a_model_and_resets_it_for_another(
        tmp_path: Path, ladder_files: dict[str, Path], other_template: Path, tiny_twin: TwinBuild) -> None:
    base = AssistantConfig()
    cfg = replace(base, paths=PathsConfig(state_dir=tmp_path / "state", models_dir=tmp_path / "m"),
                  tiers=mixed(ladder_files, other_template, tiny_twin.rungs[0].path),
                  battery=replace(base.battery, empty_soc_pct=5.0))
    pack = SimulatedPack(capacity_wh=50.0, start_soc_pct=90.0, cpu_time_fn=lambda: 0.0)
    with Session(cfg, with_asr=False, gauge=pack, simulation=True, start_meter=False) as session:

        def ask(tier: str, question: str) -> LlamaResponder | None:
            session.pinned = session.tiers.tier(tier)
            session.run_turn(NullSpeaker(), text=question)
            assert session.tier is not None and session.tier.name == tier
            return session.responder if isinstance(session.responder, LlamaResponder) else None

        q8 = ask("smol-q8_0", "What is the capital of France?")
        assert q8 is not None and [q for q, _ in q8.memory.turns] == ["What is the capital of France?"]
        q2 = ask("smol-q2_k", "And of Italy?")  # another quantization of the same model: the conversation goes on
        assert q2 is not None and q2 is not q8
        assert [q for q, _ in q2.memory.turns] == ["What is the capital of France?", "And of Italy?"]
        assert "capital of France" in q2._llm.detokenize(q2.prompt_tokens("And Spain?")).decode()
        ask("fixed", "How much battery is left?")  # fixed phrases keep no memory, and lose none
        again = ask("smol-q8_0", "And of Spain?")
        assert again is not None and [q for q, _ in again.memory.turns] == [
            "What is the capital of France?", "And of Italy?", "And of Spain?"]

        other = ask("other-q2_k", "What is the largest planet?")  # another template: a new conversation in it
        assert other is not None and [q for q, _ in other.memory.turns] == ["What is the largest planet?"]
        prompt = other._llm.detokenize(other.prompt_tokens("Is it a gas giant?"), special=True).decode()
        assert "### user:" in prompt and "<|im_start|>" not in prompt and "capital" not in prompt

        twin = ask("twin-q8_0", "Is it a gas giant?")  # other shapes: another model again
        assert twin is not None and [q for q, _ in twin.memory.turns] == ["Is it a gas giant?"]
        back = ask("smol-q2_k", "What is the capital of Peru?")  # back to SmolLM2: the planet talk stays behind
        assert back is not None and [q for q, _ in back.memory.turns] == ["What is the capital of Peru?"]
        prompt = back._llm.detokenize(back.prompt_tokens("And Chile?"), special=True).decode()
        assert "<|im_start|>" in prompt and "### user:" not in prompt
        models = [e.model for e in _entries(session)]
    assert models == [ladder_files["Q8_0"].name, ladder_files["Q2_K"].name, "fixed-phrases",
                      ladder_files["Q8_0"].name, other_template.name, tiny_twin.rungs[0].path.name,
                      ladder_files["Q2_K"].name]


def _entries(session: Session) -> list:  # type: ignore[type-arg]
    from assistant.turnlog import read_turns

    return read_turns(session.turn_log.path).entries


def test_build_ladder_makes_one_ladder_of_two_models(tmp_path: Path, smollm2: Path, tiny_twin: TwinBuild,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Two sources: each gets the types leaner than it (the one rule), and the rungs of both are ordered by the
    bytes a token reads, each tier named after its model."""
    import yaml

    from assistant.cli import main

    small = tiny_twin.rungs[0].path  # a much smaller model: its Q8_0 reads fewer bytes than SmolLM2's Q2_K
    conf = tmp_path / "assistant.yaml"
    conf.write_text(f"paths:\n  models_dir: {tmp_path / 'models'}\n  state_dir: {tmp_path / 'state'}\n")
    out = tmp_path / "ladder"
    args = ["--config", str(conf), "models", "build-ladder", "--source", f"{smollm2}:Q8_0,Q2_K", "--source",
            f"{small}:", "--out", str(out), "--write-config", str(conf)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Q8_0 skipped: it is not leaner than the Q4_1 file" in text and "bytes of weights a token reads" in text
    tiers = yaml.safe_load(conf.read_text())["tiers"]["tiers"]
    assert [(t["name"], Path(t["model"]).name if "model" in t else None) for t in tiers] == [
        ("smollm2-135m-instruct-q4_1", smollm2.name),
        ("smollm2-135m-instruct-q2_k", "SmolLM2-135M-Instruct.Q2_K.gguf"),
        ("tiny-test-speed-twin-q8_0", small.name),
        ("fixed", None), ("shutdown", None)]
    assert sorted(p.name for p in out.glob("*.gguf")) == ["SmolLM2-135M-Instruct.Q2_K.gguf"]  # nothing else built
