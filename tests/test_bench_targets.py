"""Target verdicts, tier findings, the published figures, /proc readings and the energy probe's power model."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from assistant.bench.energy_probe import EnergyProbe
from assistant.bench.machine import CpuWatch, cpu_seconds, peak_rss_mb, rss_mb
from assistant.stats import median, p95, ratio
from assistant.bench.published import LLMPI, study_quant, study_row
from assistant.bench.targets import (
    answer_share_target,
    asr_target,
    cold_warm_target,
    engine_target,
    idle_targets,
    ladder_target,
    people_cold_target,
    piper_cold_target,
    streaming_target,
    tier_findings,
)
from assistant.power.battery_config import BatteryConfig


def tier(name: str, quant: str, dominant: str, bpw: float, tpj: float, tps: float,
         ppl_rel: float = 1.0) -> dict[str, Any]:
    return {"name": name, "quant": quant, "dominant_type": dominant, "bits_per_weight": bpw,
            "type_mismatch": dominant != quant.replace("_K_M", "_K"), "gen_tps": tps,
            "energy": {"gen_tpj": tpj}, "quality": {"perplexity_rel": ppl_rel}}


def test_ladder_passes_when_each_tier_is_cheaper() -> None:
    tiers = [tier("q8_0", "Q8_0", "Q8_0", 8.5, 10.0, 100), tier("q4_0", "Q4_0", "Q4_0", 4.5, 12.0, 120, 1.1)]
    verdict = ladder_target(tiers)
    assert verdict.status == "PASS" and "q8_0 10.00 -> q4_0 12.00" in verdict.detail
    assert tier_findings(tiers) == ["q4_0 earns its place: TPJ 12.00 is 20 % above q8_0's 10.00, at perplexity "
                                    "1.10 x the top tier's."]


def test_a_tier_with_fallback_types_is_named_with_the_reason() -> None:
    tiers = [tier("q4_1", "Q4_1", "Q4_1", 5.74, 21.8, 160),
             tier("q2_k", "Q2_K", "Q4_0", 5.14, 21.9, 161, 1.36)]  # K-quant fell back to Q4_0
    verdict = ladder_target(tiers)
    assert verdict.status == "MISS"
    (finding,) = tier_findings(tiers)
    assert finding.startswith("q2_k does NOT earn its place")
    assert "most of its weights are Q4_0, not Q2_K" in finding and "llama.cpp fell back" in finding
    assert "5.14 vs 5.74 real bits per weight" in finding
    assert "perplexity 1.36 x" in finding


def test_a_smaller_tier_that_decodes_slower_is_explained() -> None:
    tiers = [tier("q8_0", "Q8_0", "Q8_0", 8.5, 22.0, 160), tier("q4_k_m", "Q4_K_M", "Q5_0", 6.2, 20.0, 150)]
    (finding,) = tier_findings(tiers)
    assert "most of its weights are Q5_0, not Q4_K_M" in finding
    assert "decode no faster" in finding and "150 vs 160 tok/s" in finding


def test_streaming_engine_asr_and_idle_verdicts() -> None:
    half = {"first_audio_median_s": 0.3, "first_audio_p95_s": 0.4}
    full = {"first_audio_median_s": 1.0, "first_audio_p95_s": 1.2}
    e2e = {"long_replies": {"min_sentences": 3, "pairs": 4, "streaming": half, "blocking": full,
                            "ratio_median": 0.3, "ratio_p95": 0.4 / 1.2}}
    assert streaming_target(e2e).status == "PASS"
    e2e["long_replies"] = {**e2e["long_replies"], "ratio_median": 0.6}
    assert streaming_target(e2e).status == "MISS"
    e2e["long_replies"] = {**e2e["long_replies"], "pairs": 0, "ratio_median": None}
    assert streaming_target(e2e).status == "NOT CHECKED"
    assert streaming_target(None).status == "NOT CHECKED"
    over = {"ratio": 0.96, "ours_tps_median": 96.0, "raw_tps_median": 100.0, "tier": "q8_0", "threads": 2,
            "greedy_ratio": 0.99, "same_sampler_ratio": 1.0}
    assert engine_target(over).status == "PASS"
    assert engine_target({**over, "ratio": 0.9}).status == "MISS"
    asr = {"asr": [{"engine": "pocketsphinx", "english": True, "final_latency_median_s": 0.05,
                    "final_latency_p95_s": 0.3, "latency_method": "chunks delivered at microphone pace"},
                   {"engine": "vosk (Korean)", "english": False, "final_latency_median_s": 0.9,
                    "final_latency_p95_s": 1.0, "latency_method": "chunks delivered at microphone pace"}]}
    assert asr_target(asr).status == "PASS"  # the Korean model is not an English engine: not judged
    cpu, rss = idle_targets({"cpu_pct_of_one_core": 0.4, "peak_rss_mb": 1200.0, "window_s": 30.0,
                             "command": "assistant run --sim", "tier": "q8_0"})
    assert (cpu.status, rss.status) == ("PASS", "MISS")


def test_published_figures_and_quant_levels() -> None:
    assert len(LLMPI) == 27
    assert study_quant("Q4_K_M") == "Q4" and study_quant("Q8_0") == "Q8" and study_quant("BF16") == "FP"
    assert study_quant("Q5_0") is None and study_quant("TQ1_0") == "ternary"
    row = study_row("Q2_K")
    assert row is not None and (row.model, row.tps, row.tpj) == ("Llama-3.2-1B", 14.78, 5.18)
    for r in LLMPI:  # the study's mean power while generating is TPS / TPJ = 2.8 to 4.1 W
        if r.tpj >= 0.1:
            assert 2.7 < r.tps / r.tpj < 4.2, r


def test_statistics_helpers() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([]) is None
    assert p95([1.0, 2.0]) == pytest.approx(1.95) and p95([]) is None
    assert math.isclose(p95([float(i) for i in range(101)]) or 0.0, 95.0)
    assert ratio(1.0, 0.0) is None and ratio(None, 2.0) is None and ratio(1.0, 4.0) == 0.25


def test_proc_readings_of_a_child_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                              "while time.process_time() - t < 0.4: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while (cpu_seconds(child.pid) or 0.0) < 0.35 and time.monotonic() < deadline:
            time.sleep(0.05)
        used = cpu_seconds(child.pid)
        assert used is not None and 0.35 <= used < 1.5
        peak, now = peak_rss_mb(child.pid), rss_mb(child.pid)
        assert peak is not None and now is not None and 1 < now <= peak < 200
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds(child.pid) is None  # gone
    own = peak_rss_mb()
    assert own is not None and own > 10


def test_cpu_watch_sees_another_busy_process() -> None:
    watch = CpuWatch()
    watch.start()
    child = subprocess.run([sys.executable, "-c", "import time\nt=time.process_time()\n"
                            "while time.process_time() - t < 0.5: pass"], check=True)
    assert child.returncode == 0
    assert watch.others_cores() > 0.3


def test_energy_probe_integrates_the_simulated_packs_power_model() -> None:
    battery = BatteryConfig(kind="simulated")
    probe = EnergyProbe(battery)
    try:
        assert probe.modelled and "power model, not measured" in probe.source
        probe.start()
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass
        span = probe.stop()
    finally:
        probe.close()
    assert span.busy_cores is not None and 0.05 < span.busy_cores <= (os.cpu_count() or 1) + 0.1  # < 1 when others run
    expected_w = (battery.simulated.idle_w + battery.simulated.w_per_busy_core * span.busy_cores) / 0.9
    assert math.isclose(span.joules / span.seconds, expected_w, rel_tol=0.03)
    assert not span.measured


def test_a_tier_that_is_hardly_faster_gets_a_fix() -> None:
    tiers = [tier("q8_0", "Q8_0", "Q8_0", 8.5, 19.5, 141), tier("q4_k_m", "Q4_K_M", "Q5_0", 6.2, 19.2, 142)]
    (finding,) = tier_findings(tiers)
    assert "hardly faster (142 vs 141 tok/s)" in finding
    assert finding.endswith("or drop this tier.")


def accuracy(file_cold: float, saved: float, warm: float, read: float) -> dict[str, Any]:
    wer = {"cold_file": file_cold, "warm_file": file_cold, "cold_stream_prior": 0.5, "cold_stream_saved": saved,
           "warm_stream": warm}
    return {"accuracy": [{"engine": "pocketsphinx", "english": True, "sets": {
        "piper": {"wer": wer},
        "people": {"wer": wer, "wer_by_kind": {"read speech": {**wer, "cold_file": read}}}}},
        {"engine": "vosk (Korean)", "english": False, "sets": {"piper": {"wer": {}}}}]}


def test_cold_warm_targets() -> None:
    good = accuracy(0.16, 0.17, 0.16, 0.24)
    assert cold_warm_target(good).status == "PASS" and "prior only 0.50" in cold_warm_target(good).detail
    assert cold_warm_target(accuracy(0.16, 0.20, 0.16, 0.2)).status == "MISS", "saved state 0.04 above warm"
    assert piper_cold_target(good).status == "PASS"
    assert piper_cold_target(accuracy(0.23, 0.2, 0.2, 0.2)).status == "MISS"
    assert people_cold_target(good).status == "PASS"
    assert people_cold_target(accuracy(0.1, 0.1, 0.1, 0.26)).status == "MISS"
    assert cold_warm_target({}).status == piper_cold_target(None).status == "NOT CHECKED"


def test_answer_share_target() -> None:
    share = {"text": 0.8, "text_lower": 0.7, "text_normalised": 0.8, "spoken_raw": 0.6, "spoken": 0.75}
    answers = {"questions": 20, "share": share, "asr": "pocketsphinx", "tier": "q8_0"}
    v = answer_share_target({"answers": answers})
    assert v.status == "PASS" and "spoken 75 % vs typed 80 %" in v.detail
    assert answer_share_target({"answers": {**answers, "share": {**share, "spoken": 0.65}}}).status == "MISS"
    assert answer_share_target({}).status == "NOT CHECKED"
