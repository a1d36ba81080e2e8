from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

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
