"""The text run end to end (the hybrid-lm preset at test sizes): every scheme's figures, what
each scheme must be by construction, calibration, the sweep, the goals, and bad scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinylarge.config import load_preset, scenario_from_table
from tinylarge.config.loading import scenario_to_table
from tinylarge.integrate.hybrid_lm.payload import full_payload_bytes
from tinylarge.report import collect, write
from tinylarge.sim import RunResult, run
from tinylarge.sim.hybrid_lm_results import SCHEME_KEYS
from tinylarge.sim.pipeline import TEXT_PIPELINE


def _hybrid(result: RunResult) -> dict[str, object]:
    return dict(json.loads(json.dumps(collect(result)))["hybrid_lm"])


def test_every_scheme_reports_the_contract_keys(hybrid_lm_result: RunResult) -> None:
    assert list(hybrid_lm_result.timings_s) == [s.name for s in TEXT_PIPELINE]
    hybrid = _hybrid(hybrid_lm_result)
    for scheme in ("slm", "llm", "hlm", "u_hlm", "cu_hlm"):
        figures = hybrid[scheme]
        assert isinstance(figures, dict)
        for key in SCHEME_KEYS:
            assert isinstance(figures[key], float), (scheme, key)
        assert (
            figures["tokens_per_s"] > 0
            and figures["p99_token_latency_s"] >= figures["p50_token_latency_s"]
        )


def test_schemes_are_what_they_are_by_construction(hybrid_lm_result: RunResult) -> None:
    h = _hybrid(hybrid_lm_result)
    slm, llm, hlm, u, cu = (h[s] for s in ("slm", "llm", "hlm", "u_hlm", "cu_hlm"))
    assert isinstance(slm, dict) and isinstance(llm, dict) and isinstance(hlm, dict)
    assert isinstance(u, dict) and isinstance(cu, dict)
    # the device alone sends nothing; the LLM alone and HLM send every token
    assert slm["uplink_fraction"] == 0.0 and slm["bytes_per_token"] == 0.0
    assert slm["llm_calls_fraction"] == 0.0
    assert llm["uplink_fraction"] == 1.0 and hlm["uplink_fraction"] == 1.0
    # greedy speculative verification emits the LLM's greedy token: exactly its quality
    assert llm["quality_vs_llm"] == 1.0 and hlm["quality_vs_llm"] == 1.0
    # HLM sends the full distribution: 2 bytes per vocabulary entry at least
    vocab = hybrid_lm_result.hybrid_lm.corpus["vocab_size"]  # type: ignore[union-attr]
    assert hlm["bytes_up_per_token"] >= full_payload_bytes(vocab)
    # U-HLM sends a subset of HLM's tokens; CU-HLM's truncated payloads are smaller
    assert u["uplink_fraction"] <= 1.0 and u["bytes_per_token"] <= hlm["bytes_per_token"]
    if cu["uplink_fraction"] > 0:
        per_upload_cu = cu["bytes_up_per_token"] / cu["uplink_fraction"]
        assert per_upload_cu < full_payload_bytes(vocab) / 4
    # verified tokens cost the device the radio: the device alone is cheapest per token
    assert slm["device_energy_per_token_j"] < hlm["device_energy_per_token_j"]


def test_calibration_sweep_and_goals_are_recorded(hybrid_lm_result: RunResult) -> None:
    h = _hybrid(hybrid_lm_result)
    calibration = h["calibration"]
    assert isinstance(calibration, dict)
    assert calibration["u_hlm"]["measure"] == "temperature"
    assert -1.0 <= calibration["u_hlm"]["r"] <= 1.0
    sweep = h["threshold_sweep"]
    assert isinstance(sweep, dict) and sweep["measure"] == "temperature"
    for measure in ("temperature", "entropy", "max_probability"):
        uplinks = np.array(sweep[measure]["uplink_fraction"])
        # a higher threshold keeps more drafts on the device; the largest keeps every one
        assert (np.diff(uplinks) <= 1e-12).all() and uplinks[-1] == 0.0
        quality = np.array(sweep[measure]["quality_vs_llm"])
        assert quality[0] == pytest.approx(1.0, abs=0.02)
        best = sweep[measure]["most_skipped_at_goal_quality"]
        assert best == pytest.approx(1 - uplinks[quality >= 0.97].min())
    goals = h["goals"]
    assert isinstance(goals, dict)
    assert isinstance(goals["skipped_uplinks"]["met"], bool)
    assert goals["throughput_over_hlm_on_weak_link"]["link"] == "-15db"
    links = h["link_quality"]
    assert isinstance(links, dict) and set(links) == {"+0db", "-15db"}
    # the same devices over a weaker channel: HLM's 2 kB distributions take longer on air,
    # while LLM-only's few bytes barely notice; nobody falls back for want of coverage
    weak, strong = links["-15db"], links["+0db"]
    assert weak["hlm"]["tokens_per_s"] < strong["hlm"]["tokens_per_s"]
    assert weak["hlm"]["tokens_per_s"] / strong["hlm"]["tokens_per_s"] < (
        weak["llm"]["tokens_per_s"] / strong["llm"]["tokens_per_s"]
    )
    assert weak["llm"]["fallback_fraction"] == 0.0
    assert set(h["profiles"]) == {"redcap", "nb_iot"}  # type: ignore[arg-type]


def test_the_text_report_has_its_section_and_no_classification_parts(
    hybrid_lm_result: RunResult, tmp_path: Path
) -> None:
    report = write(hybrid_lm_result, tmp_path / "run").read_text()
    assert "Hybrid language models over the 6G link" in report
    assert "U-HLM" in report and "quality vs LLM (%)" in report
    assert "Inference policies" not in report
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"]["name"] == "text" and "models" not in metrics


def _text_table(**hybrid: object) -> dict[str, object]:
    table = scenario_to_table(load_preset("hybrid-lm"))
    table["hybrid_lm"].update(hybrid)  # type: ignore[union-attr]
    return table


def test_a_model_hub_id_is_refused_before_any_work() -> None:
    scenario = scenario_from_table(_text_table(target="meta-llama/Llama-2-7b"), "t")
    with pytest.raises(ValueError, match="never fetched"):
        run(scenario)


def test_a_missing_corpus_file_is_named(tmp_path: Path) -> None:
    table = _text_table()
    table["task"]["text"] = {"corpus": [str(tmp_path / "nope.txt")]}  # type: ignore[index]
    with pytest.raises(ValueError, match=r"nope\.txt"):
        run(scenario_from_table(table, "t"))
