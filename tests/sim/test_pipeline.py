from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylarge.config import load_preset, scenario_from_table, scenario_to_toml, with_seed
from tinylarge.config.loading import scenario_to_table
from tinylarge.models.cache import ModelCache
from tinylarge.sim import PIPELINE, RunResult, run
from tinylarge.sim.state import RunState, StageOrderError


def _small(overrides: dict[str, object]) -> dict[str, object]:
    """The smoke preset with co-learning off unless ``overrides`` turns it on (the smoke run
    and the co-learning tests cover it).

    Its models are the smoke run's (same task, models and training), so tests that do not test
    the cache share them through the session's cache. The smoke sizes learn on every CPU kernel
    set we tried (AVX-512, AVX2, SSE4.1, ATen default: large model 40-46 % on 8 classes); 600
    training frames did not: on some CPUs every model collapsed to one class.
    """
    table = scenario_to_table(load_preset("smoke"))
    table["colearning"]["enabled"] = False  # type: ignore[index]
    table.update(overrides)
    return table


def test_smoke_run_fills_every_part_of_the_result(smoke_result: RunResult) -> None:
    task = smoke_result.require_task()
    assert task.name == "radio"
    assert [s.name for s in PIPELINE] == list(smoke_result.timings_s)
    assert smoke_result.partition is not None and smoke_result.partition.n_devices == 10
    for role in ("tiny", "large"):
        logits = smoke_result.logits[role]
        assert logits.shape == (task.n_test, task.num_classes)
        ev = smoke_result.evaluations[role]
        assert ev.accuracy == pytest.approx(float((logits.argmax(1) == task.y_test).mean()))
        assert ev.confusion.sum() == task.n_test
        assert len(ev.snr_db) == 16  # the default -10..20 dB grid in 2 dB steps
    # Three epochs on toy data still beat chance (1/8) on this 8-class task.
    assert smoke_result.evaluations["large"].accuracy > 0.2


def test_smoke_run_distils_quantizes_and_checks_the_int8_model(smoke_result: RunResult) -> None:
    task = smoke_result.require_task()
    # Labels-only baseline and distilled model: same architecture, same initial weights.
    labels, distilled = smoke_result.models["tiny_labels"], smoke_result.models["tiny"]
    assert labels.manifest == distilled.manifest and labels.cache_key != distilled.cache_key
    model = smoke_result.require_tiny_int8()
    int8_logits = smoke_result.logits["tiny_int8"]
    assert int8_logits.shape == (task.n_test, task.num_classes)
    # The int8 logits are the integer runtime's output, dequantized: on the int8 grid.
    q = int8_logits / model.output_spec.scale + model.output_spec.zero_point
    np.testing.assert_allclose(q, np.round(q), atol=1e-3)
    checks = smoke_result.int8_checks
    assert checks is not None and checks.onnx_arithmetic_equal_frames_fraction == 1.0
    assert checks.onnx_arithmetic_max_abs_diff_lsb == 0
    assert checks.int8_vs_float_same_class_fraction is not None
    assert checks.int8_vs_float_same_class_fraction > 0.9
    assert set(smoke_result.footprints) >= {"stm32l4r5", "nrf52840", "esp32s3"}
    assert smoke_result.quantization is not None
    assert smoke_result.quantization.check_frames == 500


def test_unknown_target_mcu_fails_early_and_custom_mcus_are_costed(tmp_path: Path) -> None:
    table = _small({})
    table["tiny"]["target_mcu"] = "pdp11"  # type: ignore[index]
    with pytest.raises(ValueError, match=r"tiny.target_mcu = 'pdp11' is not a known MCU; known:"):
        run(scenario_from_table(table, "test"), cache=ModelCache())
    profile = {
        "part": "my board",
        "core": "Cortex-M4F",
        "clock_hz": 100e6,
        "sram_bytes": 1024,  # below the ~1.3 KB arena of the smoke tiny model
        "flash_bytes": 1 << 20,
        "active_power_w": 0.01,
        "cycles_per_mac": 4.0,
    }
    table["tiny"]["mcu_profiles"] = {"pdp11": profile}  # type: ignore[index]
    result = run(scenario_from_table(table, "test"), cache=ModelCache())
    fp = result.footprints["pdp11"]
    assert fp.latency_s == pytest.approx(fp.macs * 4.0 / 100e6)
    assert not fp.fits and any(v.startswith("SRAM") for v in fp.violations)


def test_second_identical_run_comes_from_the_cache_with_identical_outputs(tmp_path: Path) -> None:
    scenario = scenario_from_table(_small({}), "test")
    cache = ModelCache(tmp_path)
    first = run(scenario, cache=cache)
    second = run(scenario, cache=cache)
    assert not first.models["tiny"].from_cache and second.models["tiny"].from_cache
    assert second.models["large"].from_cache
    for role in ("tiny", "large"):
        np.testing.assert_array_equal(first.logits[role], second.logits[role])
    assert second.models["tiny"].training == first.models["tiny"].training
    # Network and policies draw from the scenario's seed only: the same numbers again.
    from tinylarge.report.metrics import collect

    a, b = collect(first), collect(second)
    assert a["network"] == b["network"] and a["policies"] == b["policies"]


def test_rerun_from_saved_scenario_without_cache_gives_the_same_numbers(tmp_path: Path) -> None:
    scenario = scenario_from_table(_small({}), "test")
    saved = tmp_path / "scenario.toml"
    saved.write_text(scenario_to_toml(scenario))
    from tinylarge.config import load_scenario

    a = run(scenario, cache=ModelCache(tmp_path / "a", enabled=False))
    b = run(load_scenario(saved), cache=ModelCache(tmp_path / "b", enabled=False))
    for role in ("tiny", "large"):
        np.testing.assert_array_equal(a.logits[role], b.logits[role])
    other = run(with_seed(scenario, 1), cache=ModelCache(tmp_path / "c"))
    assert not np.array_equal(a.logits["tiny"], other.logits["tiny"])


def test_digits_task_runs_end_to_end(tmp_path: Path) -> None:
    table = _small({"task": {"name": "digits"}, "devices": {"count": 10, "partition": "iid"}})
    # images, not IQ frames: the edge model is the ResNet (the foundation model takes IQ)
    table["models"]["large"] = {"name": "large_resnet", "options": {"width": 8}}  # type: ignore[index]
    table["colearning"] = {  # 2-D inputs through every co-learning scheme too
        **table["colearning"],  # type: ignore[dict-item]
        "enabled": True,
        "rounds": 2,
        "closed_loop": {"rounds": 2, "server_samples": 200},
    }
    scenario = scenario_from_table(table, "test")
    result = run(scenario, cache=ModelCache(tmp_path))
    assert result.require_task().input_shape == (1, 8, 8)
    assert result.evaluations["tiny"].snr_db.size == 0
    assert set(result.colearning) == set(scenario.colearning.schemes)
    assert all(len(s["accuracy"]) == 2 for s in result.colearning.values())


def test_bad_model_option_fails_before_any_work(tmp_path: Path) -> None:
    table = _small({})
    table["models"]["tiny"]["options"] = {"widht": 3}  # type: ignore[index]
    scenario = scenario_from_table(table, "test")
    with pytest.raises(ValueError, match=r"models.tiny: model 'tiny_cnn' has no option widht"):
        run(scenario, cache=ModelCache(tmp_path))


def test_snr_partition_needs_snr_metadata(tmp_path: Path) -> None:
    table = _small({"task": {"name": "digits"}, "devices": {"count": 5, "partition": "snr"}})
    table["models"]["large"] = {"name": "large_resnet", "options": {"width": 8}}  # type: ignore[index]
    with pytest.raises(ValueError, match="needs per-sample snr_db metadata"):
        run(scenario_from_table(table, "test"), cache=ModelCache(tmp_path))


def test_more_devices_than_samples_is_an_error(tmp_path: Path) -> None:
    table = _small({"devices": {"count": 100_000}})
    with pytest.raises(
        ValueError, match=r"devices.count = 100000 exceeds the \d+ training samples"
    ):
        run(scenario_from_table(table, "test"), cache=ModelCache(tmp_path))


def test_stages_out_of_order_say_what_is_missing() -> None:
    state = RunState(scenario=load_preset("smoke"))
    with pytest.raises(StageOrderError, match="the 'task' stage must run first"):
        state.require_task()
    with pytest.raises(StageOrderError, match="no 'tiny' model yet"):
        state.require_model("tiny")


def test_radio_config_keys_are_exactly_the_generator_parameters() -> None:
    import inspect

    from tinylarge.config import RadioTaskConfig
    from tinylarge.data import make_radio_task

    parameters = set(inspect.signature(make_radio_task).parameters) - {"seed"}
    assert set(RadioTaskConfig().model_dump()) == parameters


def test_smoke_run_simulates_the_network(smoke_result: RunResult) -> None:
    from tinylarge.report.metrics import collect

    net = collect(smoke_result)["network"]
    assert net["profile"] == "redcap"
    assert set(net["coverage"]) >= {"nb_iot", "lte_m", "redcap", "embb_fr1", "sub_thz"}
    up = net["uplink"]
    messages = smoke_result.require_network().messages
    assert up["messages"] == messages.device.size > 0
    lat = up["latency_s"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    assert up["energy_j_per_message"] > 0
    assert net["edge_server"]["source"].startswith("profile in the scenario")
    assert net["edge_server"]["per_item_s"] == smoke_result.scenario.network.edge_per_item_s


def test_unknown_radio_profile_fails_early(tmp_path: Path) -> None:
    table = _small({})
    table["network"] = {"profile": "6g_magic"}
    with pytest.raises(ValueError, match=r"network: unknown radio profile '6g_magic'"):
        run(scenario_from_table(table, "test"), cache=ModelCache(tmp_path))


def test_smoke_run_compares_the_policies_on_the_same_requests(smoke_result: RunResult) -> None:
    from tinylarge.report.metrics import collect

    pol = collect(smoke_result)["policies"]
    assert {"tiny", "large", "cascade", "router", "oracle", "large_compressed_4b"} <= set(pol)
    assert pol["tiny"]["offload_fraction"] == 0.0 and pol["large"]["offload_fraction"] == 1.0
    assert pol["tiny"]["bytes_up_per_inference"] == 0.0
    # on air: the 256-byte frame + the security layer's header and tag
    assert smoke_result.security is not None
    overhead = smoke_result.security.wire["message_overhead_bytes"]
    assert pol["large"]["bytes_up_per_inference"] == 256.0 + overhead
    assert pol["_unprotected"]["large"]["bytes_up_per_inference"] == 256.0
    # The oracle offloads exactly what the large model fixes: no policy of the run beats it.
    best = max(v["accuracy"] for k, v in pol.items() if not k.startswith("_"))
    assert pol["oracle"]["accuracy"] == best
    # Tuned on validation frames to offload 40 %: close to it on the test requests.
    assert abs(pol["cascade"]["offload_fraction"] - 0.4) < 0.1
    outcomes = smoke_result.require_policies().outcomes
    n = smoke_result.require_policies().requests.device.size
    assert all(o.correct.size == n for o in outcomes.values())
    for key in ("accuracy", "offload_fraction", "energy_j_per_inference", "deadline_met_fraction"):
        assert key in pol["router"]
    assert set(pol["cascade"]["latency_s"]) == {"p50", "p95", "p99"}


def test_edge_service_can_be_measured_on_this_machine(tmp_path: Path) -> None:
    from tinylarge.report.metrics import collect

    table = _small({})
    table["network"] = {"edge_service": "measured"}
    table["deploy"] = {"edge_max_batch": 8}
    result = run(scenario_from_table(table, "test"), cache=ModelCache())
    edge = collect(result)["network"]["edge_server"]
    assert edge["source"].startswith("measured on this machine") and edge["max_batch"] == 8
    assert edge["per_item_s"] > 0


def test_resource_aware_policies_keep_what_cannot_arrive_in_time(tmp_path: Path) -> None:
    from tinylarge.report.metrics import collect

    table = _small({})
    table["policies"] = {"resource_aware": True, "deadline_s": 1e-4}
    pol = collect(run(scenario_from_table(table, "test"), cache=ModelCache()))["policies"]
    # No offload can answer within 0.1 ms: everything stays on the device.
    for name in ("large", "cascade", "router", "oracle"):
        assert pol[name]["offload_fraction"] == 0.0, name
    assert pol["cascade"]["accuracy"] == pol["tiny"]["accuracy"]


def test_smoke_run_splits_and_exits_early(smoke_result: RunResult) -> None:
    from tinylarge.report.metrics import collect

    pol = collect(smoke_result)["policies"]
    assert {"split", "early_exit"} <= set(pol)
    graft = pol["_split_exit"]["graft"]
    points = pol["_split_exit"]["split_points"]
    distribution = pol["_split_exit"]["split_k_distribution"]
    assert sum(distribution.values()) == smoke_result.scenario.devices.count
    assert set(distribution) <= set(points)
    # the smoke large model is the xs transformer: 16 tokens, halved by the encoder ->
    # 4 channels x 8 positions x 4 bits = 16 B + the 8-byte scale/offset header
    assert graft["code_shape"] == [4, 8] and graft["code_bytes"] == 24
    assert points["bottleneck"]["bytes_up"] == 24 and points["k=0"]["bytes_up"] == 256 + 8
    # every split request goes up, at one of the chosen points' sizes
    assert pol["split"]["offload_fraction"] == 1.0
    chosen = {points[label]["bytes_up"] for label in distribution}
    sent = smoke_result.require_policies().outcomes["split"].payload_bytes_up
    assert set(np.unique(sent)) <= chosen
    assert abs(pol["early_exit"]["offload_fraction"] - 0.4) < 0.1
    exit_bytes = smoke_result.require_policies().outcomes["early_exit"].payload_bytes_up
    assert set(np.unique(exit_bytes)) <= {0, 24}
    payload = pol["_payload_accuracy"]
    assert payload["bottleneck"]["bytes_up"] == 24 and payload["large"]["bytes_up"] == 256
    assert payload["large_compressed_4b"]["bytes_up"] < 256


def test_best_policy_within_the_offload_budget_on_a_hand_example() -> None:
    from tinylarge.sim.stage_results import best_within_offload

    def s(acc: float, off: float, energy: float) -> dict[str, float]:
        return {"accuracy": acc, "offload_fraction": off, "energy_j_per_inference": energy}

    summaries = {
        "large": s(0.8, 1.0, 4.0),
        "oracle": s(0.9, 0.1, 1.0),  # the bound never counts
        "cascade": s(0.7, 0.4, 2.0),
        "router": s(0.79, 0.41, 2.0),  # over the budget
        "tiny": s(0.6, 0.0, 1.0),
        "_validation": "ignored",
    }
    best = best_within_offload(summaries, 0.4)
    assert best is not None and best["policy"] == "cascade"
    assert best["accuracy_share_of_large"] == pytest.approx(0.875)
    assert best["energy_share_of_large"] == pytest.approx(0.5)
    assert best_within_offload({"tiny": s(0.6, 0.0, 1.0)}, 0.4) is None


def test_best_policy_breaks_accuracy_ties_by_device_energy_then_order() -> None:
    from tinylarge.sim.stage_results import best_policy

    def s(acc: float, off: float, energy: float) -> dict[str, float]:
        return {"accuracy": acc, "offload_fraction": off, "energy_j_per_inference": energy}

    tie = {"cascade": s(0.7, 0.3, 2.0), "router": s(0.7, 0.2, 1.5), "tiny": s(0.6, 0.0, 1.0)}
    assert best_policy(tie, 0.4) == "router"  # as accurate, less device energy
    full_tie = {"cascade": s(0.7, 0.3, 2.0), "router": s(0.7, 0.2, 2.0)}
    assert best_policy(full_tie, 0.4) == "cascade"  # then the order of the summaries
    assert best_policy(tie, 0.25) == "router"  # exactly at the target counts
    assert best_policy({"oracle": s(1.0, 0.1, 0.1)}, 0.4) is None
