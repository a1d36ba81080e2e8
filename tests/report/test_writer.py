from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tinylarge.config import load_scenario
from tinylarge.models.persistence import load_model
from tinylarge.report import write
from tinylarge.sim import RunResult


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("img", "script") and values.get("src"):
            self.sources.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.links.append(str(values["href"]))


@pytest.fixture(scope="module")
def run_dir(smoke_result: RunResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("run")
    write(smoke_result, directory)
    return directory


def test_run_directory_has_every_artefact(run_dir: Path) -> None:
    for name in ("scenario.toml", "metrics.json", "report.html"):
        assert (run_dir / name).is_file(), name
    # the fitted policies a device can run, for `tinylarge fleet`
    assert {p.name for p in (run_dir / "policies").glob("*.json")} == {
        "tiny.json", "large.json", "cascade.json", "router.json"
    }  # fmt: skip
    pngs = {p.name for p in (run_dir / "plots").glob("*.png")}
    assert {"accuracy_vs_snr.png", "confusion_tiny.png", "confusion_large.png"} <= pngs
    for png in (run_dir / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_json_has_the_contract_keys(run_dir: Path, smoke_result: RunResult) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for role in ("tiny", "large"):
        m = metrics["models"][role]
        assert m["accuracy"] == pytest.approx(smoke_result.evaluations[role].accuracy)
        assert m["params"] == smoke_result.models[role].params
        assert set(m["accuracy_by_snr"]) == {str(s) for s in range(-10, 21, 2)}
        assert 0.0 <= m["accuracy_snr_ge_6db"] <= 1.0
        assert sum(map(sum, m["confusion_matrix"])) == smoke_result.require_task().n_test
    gap = metrics["comparison"]["large_minus_tiny_accuracy_snr_ge_6db"]
    tiny, large = metrics["models"]["tiny"], metrics["models"]["large"]
    assert gap == pytest.approx(large["accuracy_snr_ge_6db"] - tiny["accuracy_snr_ge_6db"])


def test_report_is_self_contained(run_dir: Path) -> None:
    text = (run_dir / "report.html").read_text()
    collector = _Collector()
    collector.feed(text)
    assert collector.sources, "the report shows its plots"
    assert all(src.startswith("data:image/png;base64,") for src in collector.sources)
    assert collector.links == []
    assert "Accuracy" in text and "Summary" in text
    assert not re.search(r"https?://", text)


def test_saved_scenario_and_models_load_back(run_dir: Path, smoke_result: RunResult) -> None:
    assert load_scenario(run_dir / "scenario.toml") == smoke_result.scenario
    model, document = load_model(run_dir / "models" / "tiny")
    assert document["architecture"]["name"] == "tiny_cnn"
    original = smoke_result.models["tiny"].model.state_dict()
    for key, value in model.state_dict().items():
        assert (value == original[key]).all(), key


def test_int8_model_and_its_onnx_export_are_saved_and_agree(
    run_dir: Path, smoke_result: RunResult
) -> None:
    from tinylarge.tiny.model_file import load_tiny_model
    from tinylarge.tiny.onnx_export import run_onnxruntime
    from tinylarge.tiny.runtime import run as run_int8

    model = load_tiny_model(run_dir / "tiny_int8.tlm")
    x = model.quantize_input(smoke_result.require_task().x_test[:64])
    np.testing.assert_array_equal(
        run_onnxruntime(run_dir / "tiny_int8.onnx", x), run_int8(model, x, arithmetic="onnx")
    )


def test_metrics_json_has_the_int8_and_distillation_keys(
    run_dir: Path, smoke_result: RunResult
) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    m = metrics["models"]["tiny_int8"]
    assert m["accuracy"] == pytest.approx(smoke_result.evaluations["tiny_int8"].accuracy)
    fp = smoke_result.footprints[m["target_mcu"]]
    assert (m["flash_bytes"], m["peak_sram_bytes"], m["macs"]) == (
        fp.flash_bytes,
        fp.peak_sram_bytes,
        fp.macs,
    )
    assert set(m["latency_s"]) == set(m["energy_j"]) == set(smoke_result.footprints)
    assert m["energy_j"]["stm32l4r5"] == pytest.approx(
        m["latency_s"]["stm32l4r5"] * smoke_result.footprints["stm32l4r5"].mcu.active_power_w
    )
    d = metrics["distillation"]
    assert d["accuracy_labels_only"] == metrics["models"]["tiny_labels"]["accuracy"]
    assert d["gain_pp"] == pytest.approx(
        100 * (metrics["models"]["tiny"]["accuracy"] - d["accuracy_labels_only"])
    )
    assert (
        "TinyML: distillation, int8 and microcontrollers" in (run_dir / "report.html").read_text()
    )


def test_metrics_json_has_the_colearning_contract(run_dir: Path, smoke_result: RunResult) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = smoke_result.scenario.colearning
    assert list(metrics["colearning"]) == list(config.schemes)
    for name, s in metrics["colearning"].items():
        rounds = config.closed_loop.rounds if name == "closed_loop" else config.rounds
        for key in ("accuracy", "bytes_up", "bytes_down", "device_energy_j", "airtime_s"):
            assert len(s[key]) == rounds == s["rounds"], (name, key)
        assert (
            s["total_bytes_up"] == sum(s["bytes_up"]) and s["final_accuracy"] == s["accuracy"][-1]
        )
        assert all(0.0 <= a <= 1.0 for a in s["accuracy"])
        assert all(e > 0 for e in s["device_energy_j"])
    loop = metrics["colearning"]["closed_loop"]
    assert loop["day0_offload_fraction"] == loop["offload_fraction"][0]
    assert 0.0 <= loop["day0_accuracy"] <= 1.0
    assert metrics["colearning"]["fedavg"]["centralized_accuracy"] == pytest.approx(
        smoke_result.evaluations["tiny_labels"].accuracy, abs=0.15
    )


def test_report_shows_colearning_curves_and_the_closed_loop(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    assert "Co-learning: federated, distillation, split, closed loop" in html
    assert "The closed loop." in html
    pngs = {p.name for p in (run_dir / "plots").glob("*.png")}
    assert {"colearning.png", "closed_loop.png"} <= pngs


def test_metrics_json_has_the_security_contract(run_dir: Path, smoke_result: RunResult) -> None:
    sec = json.loads((run_dir / "metrics.json").read_text())["security"]
    config = smoke_result.scenario.security
    assert sec["fuzz"]["messages"] == config.fuzz_messages and sec["fuzz"]["accepted"] == 0
    assert sum(sum(v.values()) for v in sec["fuzz"]["rejections"].values()) == config.fuzz_messages
    assert sec["wire"]["message_overhead_bytes"] == 27 + sec["wire"]["device_id_bytes"]
    rows = sec["aggregation_under_attack"]
    settings = 1 + len(config.attacks) * sum(f > 0 for f in config.malicious_fractions)
    assert len(rows) == settings * len(config.aggregators)
    assert {r["aggregator"] for r in rows} == set(config.aggregators)
    assert config.dp and sec["dp"]["epsilon"] > 0 and sec["dp"]["delta"] == config.dp_delta
    html = (run_dir / "report.html").read_text()
    assert "Security: what it costs and what it stops" in html
    assert (run_dir / "plots" / "attacks.png").is_file()


def test_the_security_layer_is_charged_on_the_policies_and_colearning(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    wire, policies = metrics["security"]["wire"], metrics["policies"]
    frame = policies["_unprotected"]["large"]["bytes_up_per_inference"]
    large = policies["large"]
    # large offloads everything: every request carries the header and tag
    assert large["bytes_up_per_inference"] == frame + wire["message_overhead_bytes"]
    assert large["security"]["handshakes"] > 0
    plain = policies["_unprotected"]["large"]
    assert large["energy_j_per_inference"] > plain["energy_j_per_inference"]
    assert large["latency_s"]["p50"] > plain["latency_s"]["p50"]
    assert policies["tiny"]["security"]["handshakes"] == 0  # never talks, never pays
    loop = metrics["colearning"]["closed_loop"]
    pushes = [b for b in loop["update_bytes_per_device"] if b > 0]
    assert pushes and loop["security"]["sessions"] > 0
    # each push is a signed bundle: an int8 model of about the deployed size + threshold +
    # the bundle's overhead (exact sizes: tests/integrate/test_closed_loop.py)
    unsigned = np.array(pushes) - wire["bundle_overhead_bytes"] - 4
    assert (np.abs(unsigned - wire["model_bytes"]) < 0.05 * wire["model_bytes"]).all()
    html = (run_dir / "report.html").read_text()
    assert "What it costs the inference policies" in html
    assert "What it costs co-learning" in html


def test_report_sets_bold_text_and_escapes_everything_else(run_dir: Path) -> None:
    from tinylarge.report.html import paragraph

    assert paragraph("**x < y** & <b>") == "<p><b>x &lt; y</b> &amp; &lt;b&gt;</p>"
    assert paragraph("run `tl_invoke()` & `a<b`") == (
        "<p>run <code>tl_invoke()</code> &amp; <code>a&lt;b</code></p>"
    )
    html = (run_dir / "report.html").read_text()
    assert "<b>Fuzzing:</b>" in html and "<b>The closed loop.</b>" in html
    assert "&lt;b&gt;" not in html.replace("large_compressed_&lt;b&gt;b", "")
