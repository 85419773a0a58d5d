"""The whole benchmark on a tiny configuration: real engines, two tiers; the JSON's shape and its arithmetic."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from assistant.bench.plot import write_plot
from assistant.bench.runner import SCHEMA, json_ready, run_bench
from assistant.bench.settings import TINY
from assistant.bench.table import render
from assistant.config import AssistantConfig
from assistant.models.twin import LABEL
from assistant.models.twin_make import TwinBuild
from assistant.power.tiers import Tier, TierConfig

pytestmark = pytest.mark.slow


def close(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    assert a is not None and b is not None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


@pytest.fixture(scope="module")
def bench(ladder_files: dict[str, Path], tiny_twin: TwinBuild, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny run over a Q8_0 tier and the Q4_1 source tier, and the speed twin's ladder beside them, as the CLI
    writes it (strict JSON)."""
    from assistant.config import PathsConfig

    root = tmp_path_factory.mktemp("bench")
    cfg = replace(AssistantConfig(), paths=PathsConfig(state_dir=root / "state", models_dir=tiny_twin.folder.parent))
    tiers = TierConfig(tiers=[
        Tier(name="q8_0", model=ladder_files["Q8_0"], quant="Q8_0", enter_soc_pct=50.0, max_tokens=48,
             threads=1),
        Tier(name="q4_1", model=ladder_files["Q4_1"], quant="Q4_1", enter_soc_pct=20.0, max_tokens=32,
             threads=1),
        Tier(name="fixed", kind="fixed", enter_soc_pct=5.0),
        Tier(name="shutdown", kind="shutdown"),
    ])
    result = run_bench(cfg, TINY, tiers=tiers, twin=True)
    return dict(json.loads(json.dumps(json_ready(result), allow_nan=False)))


def test_every_part_is_present_and_labelled(bench: dict[str, Any]) -> None:
    assert bench["schema"] == SCHEMA
    assert bench["settings"]["name"] == "tiny"
    for part in ("tiers", "engine_overhead", "speech", "e2e", "idle", "published", "targets", "machine"):
        assert bench[part], part
        assert "error" not in bench[part], (part, bench[part])
    assert bench["machine"]["cores"] >= 1 and bench["machine"]["load_average_end"] is not None
    assert "power model, not measured" in bench["labels"]["energy"]
    assert bench["missing_tiers"] == []
    assert len(bench["published"]["llmpi"]["rows"]) == 27


def test_every_tier_is_measured_in_ladder_order(bench: dict[str, Any]) -> None:
    assert [t["name"] for t in bench["tiers"]] == ["q8_0", "q4_1"]
    q8, q4 = bench["tiers"]
    assert q8["bits_per_weight"] > q4["bits_per_weight"] > 4.0
    assert q8["file_mb"] > q4["file_mb"] > 50
    assert q8["dominant_type"] == "Q8_0" and q4["dominant_type"] == "Q4_1"
    for t in bench["tiers"]:
        assert t["load_s"] > 0 and t["prompt_tps"] > 0 and t["gen_tps"] > 0
        assert 50 < t["peak_rss_mb"] < 1000
        assert t["published"]["label"].startswith("LLMPi") and t["published"]["quant"] in ("Q8", "Q4")


def test_energy_figures_are_consistent(bench: dict[str, Any]) -> None:
    for t in bench["tiers"]:
        e = t["energy"]
        runs = t["speed_runs"]
        assert e["tokens"] == sum(r["tokens"] for r in runs) > 0
        assert close(e["joules"], sum(r["joules"] for r in runs))
        assert close(e["tpj"], e["tokens"] / e["joules"])
        assert e["gen_tokens"] == sum(r["tokens"] - 1 for r in runs)
        assert close(e["gen_joules"], sum(r["joules"] * r["decode_s"] / r["seconds"] for r in runs))
        assert close(e["gen_tpj"], e["gen_tokens"] / e["gen_joules"])
        assert close(e["words_per_token"], e["words"] / e["tokens"])
        assert close(e["wbl"], e["tpj"] * e["words_per_token"] * e["usable_pack_j"], rel=1e-9)
        assert close(e["usable_pack_j"], 19.24 * 0.85 * 3600)
        assert e["measured"] is False
        # the power model: pack power = (idle + per-core x busy cores) / boost efficiency
        for r in runs:
            model_w = (2.8 + 1.7 * r["busy_cores"]) / 0.9
            assert close(r["joules"] / r["seconds"], model_w, rel=0.05)
        assert close(t["gen_tps"], statistics.median(r["tps"] for r in runs))


def test_the_twin_ladder_is_measured_beside_the_real_one(bench: dict[str, Any]) -> None:
    twin = bench["twin"]
    assert twin["label"] == LABEL and twin["shapes_of"] == "Tiny-Test" and twin["missing_tiers"] == []
    assert [t["name"] for t in twin["tiers"]] == ["q8_0", "q4_k_m", "q2_k", "tq2_0"]
    for t in twin["tiers"]:
        e = t["energy"]
        assert t["twin"] == LABEL and t["quality"] == {"none": LABEL}  # random weights: no quality figure
        assert all(r["words"] == round(r["tokens"] * 0.75) for r in t["speed_runs"])  # estimated, and said so
        assert "estimated: tokens x 0.750" in e["words_estimated"] and t["gen_tps"] > 0 and t["prompt_tps"] > 0
        assert t["gen_cpu_ms_per_token"] is not None and t["gen_cpu_ms_per_token"] > 0
        cpu = sum(r["cpu_s"] * r["decode_s"] / r["seconds"] for r in t["speed_runs"])
        assert close(t["gen_cpu_ms_per_token"], 1000 * cpu / e["gen_tokens"])
    assert len(twin["findings"]) == 3 and twin["ladder"].startswith("TPJ q8_0")
    assert all(t["gen_cpu_ms_per_token"] > 0 and t["twin"] is None for t in bench["tiers"])


def test_quality_is_relative_to_the_top_tier(bench: dict[str, Any]) -> None:
    top = bench["tiers"][0]["quality"]
    assert top["perplexity_rel"] == 1.0 and top["reference_tier"] == "q8_0"
    for t in bench["tiers"]:
        q = t["quality"]
        assert 1.0 < q["perplexity"] < 1000 and q["ppl_tokens"] == 96
        assert q["ppl_windows"] == 2  # 96 tokens, windows of 63 text tokens every 48
        assert close(q["perplexity_rel"], q["perplexity"] / top["perplexity"])
        assert q["qa_asked"] == 2 == len(q["qa_answers"])
        assert close(q["qa_share"], q["qa_correct"] / q["qa_asked"])
        assert q["qa_correct"] == sum(a["correct"] for a in q["qa_answers"])


def test_engine_overhead_ratios(bench: dict[str, Any]) -> None:
    o = bench["engine_overhead"]
    assert o["tier"] == "q8_0"
    for key in ("ours", "raw", "raw_same_sampler", "ours_greedy"):
        assert len(o[f"{key}_tps"]) == 1 and o[f"{key}_tps_median"] == o[f"{key}_tps"][0] > 0
    assert close(o["ratio"], o["ours_tps_median"] / o["raw_tps_median"])  # one round: paired = plain ratio
    assert close(o["greedy_ratio"], o["ours_greedy_tps_median"] / o["raw_tps_median"])
    assert close(o["same_sampler_ratio"], o["ours_tps_median"] / o["raw_same_sampler_tps_median"])
    assert close(o["sampler_cost_ratio"], o["raw_same_sampler_tps_median"] / o["raw_tps_median"])
    assert o["tokens"][0] >= 2 and 0.3 < o["ratio"] < 3


def test_speech_and_end_to_end(bench: dict[str, Any]) -> None:
    asr = bench["speech"]["asr"]
    assert [a["engine"] for a in asr] == ["pocketsphinx (fallback, en-US)"]
    a = asr[0]
    assert 0 < a["rtf"] < 1 and 0 <= a["final_latency_median_s"] < 1 and a["wer"] is not None
    tts = bench["speech"]["tts"]
    assert 0 < tts["rtf"] < 1 and 0 < tts["first_audio_median_s"] < tts["runs"][0]["synth_s"] + 1e-9
    e = bench["e2e"]
    assert e["tier"] == "q8_0" and e["streaming"]["turns"] == e["blocking"]["turns"] == 1
    assert close(e["ratio_median"], e["streaming"]["first_audio_median_s"] / e["blocking"]["first_audio_median_s"])
    for turn in e["turns"]:
        assert turn["first_audio_s"] > 0 and turn["reply"]


def test_cold_and_warm_accuracy_and_the_answer_share(bench: dict[str, Any]) -> None:
    acc = bench["speech"]["accuracy"]
    assert [a["engine"] for a in acc] == ["pocketsphinx (fallback, en-US)"]
    sets = acc[0]["sets"]
    assert sets["piper"]["utterances"] == 3, "one question in three formats"
    assert sets["people"]["utterances"] == 2
    for row in sets.values():
        assert set(row["wer"]) == {"cold_file", "warm_file", "cold_stream_prior", "cold_stream_saved", "warm_stream"}
        assert all(0.0 <= w <= 2.0 for w in row["wer"].values())
        assert row["wer"]["cold_file"] == row["wer"]["warm_file"], "a file decoded whole does not depend on the past"
        for wait in row["final_wait_s"].values():
            assert wait["total"] > 0 and wait["ms_per_audio_s"] > 0
    ans = bench["speech"]["answers"]
    assert ans["questions"] == 2 and set(ans["share"]) == {"text", "text_lower", "text_normalised", "spoken_raw",
                                                           "spoken"}
    for run in ans["runs"]:
        assert run["asked"]["spoken"][0].isupper() and run["asked"]["spoken"].endswith("?")


def test_idle_appliance(bench: dict[str, Any]) -> None:
    idle = bench["idle"]
    assert idle["tier"] == "q8_0"  # the full simulated pack picks the top tier
    assert close(idle["cpu_pct_of_one_core"], 100 * idle["cpu_s"] / idle["window_s"])
    assert 1.5 < idle["window_s"] < 5
    assert idle["peak_rss_mb"] >= idle["rss_mb"] > 100


def test_targets_and_report(bench: dict[str, Any], tmp_path: Path) -> None:
    statuses = {v["target"].split(" ")[0]: v["status"] for v in bench["targets"]}
    assert len(bench["targets"]) == 10
    assert set(statuses.values()) <= {"PASS", "MISS", "NOT CHECKED"}
    text = render(bench)
    for needle in ("q8_0", "q4_1", "LLMPi", "Engine overhead", "pocketsphinx", "streaming", "Idle", "Targets",
                   "power model, not measured", "first utterance after a start", "answered right",
                   f"SPEED TWIN of Tiny-Test ({LABEL})", "Words of the twin are estimated", "CPU ms"):
        assert needle in text, needle
    png = tmp_path / "bench.png"
    write_plot(bench, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_cli_refuses_a_plot_that_is_not_png_before_measuring(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.cli import main

    assert main(["bench", "--quick", "--plot", str(tmp_path / "figure.jpg")]) == 2
    assert "figure.jpg" in capsys.readouterr().err
