"""The report's opening summary: the best policy within the offload target against the
baselines, and what the run skipped or missed, from a metrics document."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tinylarge.report import write
from tinylarge.report.html import Section, page
from tinylarge.report.notes import missed_parts, part_in_words
from tinylarge.report.summary import (
    SUMMARY_COLUMNS,
    best_within_target,
    summary_block,
    summary_rows,
)
from tinylarge.sim import RunResult


def _policy(
    accuracy: float, offload: float, energy_j: float, bytes_up: float, p99_s: float | None
) -> dict[str, Any]:
    return {
        "requests": 200,
        "accuracy": accuracy,
        "offload_fraction": offload,
        "energy_j_per_inference": energy_j,
        "bytes_up_per_inference": bytes_up,
        "latency_s": {"p50": None if p99_s is None else p99_s / 2, "p99": p99_s},
        "deadline_met_fraction": 1.0,
    }


@pytest.fixture
def metrics() -> dict[str, Any]:
    """A fabricated metrics document: router and cascade tie on accuracy within the 40 %
    target (router spends less energy), early_exit is more accurate but offloads 41 %, the
    oracle is a bound and split was skipped."""
    return {
        "models": {"large": {"accuracy": 0.81}, "tiny": {"accuracy": 0.49}},
        "policies": {
            "tiny": _policy(0.50, 0.0, 100e-6, 0.0, 0.002),
            "large": _policy(0.80, 1.0, 600e-6, 300.0, 0.010),
            "cascade": _policy(0.72, 0.40, 300e-6, 120.0, 0.012),
            "router": _policy(0.72, 0.35, 250e-6, 105.0, 0.011),
            "early_exit": _policy(0.76, 0.41, 280e-6, 40.0, 0.0125),
            "oracle": _policy(0.90, 0.20, 150e-6, 60.0, 0.009),
            "split": {"skipped": "the large model has no cut to split at"},
            "_validation": "fresh frames",
        },
        "skipped": {"policies.split": "the large model has no cut to split at"},
        "warnings": {
            "colearning.closed_loop": "in round(s) 2 no threshold kept the day-0 accuracy"
        },
    }


def _cells_of(html: str) -> list[list[str]]:
    """The rows of the first table of ``html``, as cell texts (header row first)."""
    table = html[html.index("<table>") : html.index("</table>")]
    return [re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in table.split("<tr>")[1:]]


def test_best_is_the_most_accurate_within_target_and_a_tie_goes_to_less_energy(
    metrics: dict[str, Any],
) -> None:
    policies = metrics["policies"]
    # cascade and router: 72 % each; router uses 250 uJ, cascade 300 uJ
    assert best_within_target(policies, 0.4) == "router"
    # a full tie (accuracy and energy): the first in the metrics' order
    policies["router"]["energy_j_per_inference"] = 300e-6
    assert best_within_target(policies, 0.4) == "cascade"
    # offloading exactly the target is within it; the oracle (90 % at 20 %) never counts
    assert best_within_target(policies, 0.41) == "early_exit"
    assert best_within_target(policies, 1.0) == "large"
    # only tiny-only offloads nothing
    assert best_within_target(policies, 0.0) == "tiny"


def test_no_policy_within_target() -> None:
    policies = {"large": _policy(0.8, 1.0, 6e-4, 300.0, 0.01)}
    assert best_within_target(policies, 0.4) is None
    html = summary_block({"policies": policies}, 0.4)
    assert "No policy offloads at most 40 % of its requests" in html
    assert [row[0] for row in _cells_of(html)[1:]] == ["large-only"]


@pytest.mark.parametrize("target", [-0.1, 1.5, float("nan")])
def test_a_target_outside_0_to_1_is_refused(target: float, metrics: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="target_offload must be a fraction of requests from 0"):
        best_within_target(metrics["policies"], target)


def test_summary_numbers_match_a_hand_computation(metrics: dict[str, Any]) -> None:
    html = summary_block(metrics, 0.4)
    rows = _cells_of(html)
    assert tuple(rows[0]) == tuple(c.replace("'", "&#x27;") for c in SUMMARY_COLUMNS)
    # router: 0.72 / 0.80 = 90.0 % kept, 35 % offloaded, 250 uJ, 105 B, p99 11 ms
    assert rows[1] == [
        "router (best within target)", "72.0", "90.0", "35.0", "250.0", "105", "11.00"
    ]  # fmt: skip
    # tiny-only keeps 0.50 / 0.80 = 62.5 %
    assert rows[2] == ["tiny-only", "50.0", "62.5", "0.0", "100.0", "0", "2.00"]
    assert rows[3] == ["large-only", "80.0", "100.0", "100.0", "600.0", "300", "10.00"]
    text = re.sub(r"<[^>]+>", "", html)
    # energy 250 / 600 = 42 %, bytes 105 / 300 = 35 % of large-only's
    assert (
        "Best within the 40 % offload target: router. It keeps 90.0 % of large-only&#x27;s "
        "accuracy (tiny-only keeps 62.5 %) while offloading 35.0 % of requests, with 42 % of "
        "large-only&#x27;s device energy and 35 % of its bytes on air per request." in text
    ), text
    # early_exit is more accurate (76 %) but offloads 41 %; the oracle is a bound, not listed
    assert "More accurate but over the offload target: early_exit (76.0 % accurate" in text
    assert "oracle" not in text
    assert "the same 200 requests" in text


def test_every_summary_column_but_the_name_has_a_unit() -> None:
    assert all(re.search(r"\((%|µJ|B|ms)[^)]*\)$", c) for c in SUMMARY_COLUMNS[1:])


def test_skipped_and_missed_parts_are_listed_in_words(metrics: dict[str, Any]) -> None:
    parts = missed_parts(metrics)
    assert [(p.kind_in_words, p.where) for p in parts] == [
        ("Skipped", "Collaborative inference, split"),
        ("Missed its target", "Co-learning, closed_loop"),
    ]
    html = summary_block(metrics, 0.4)
    assert "Parts of this run were left out or missed their target" in html
    assert "<b>Skipped</b> Collaborative inference, split: the large model has no cut" in html
    assert part_in_words("models.tiny_int8.tflm_check") == "Models, tiny_int8 / tflm_check"
    assert part_in_words("newstage.x") == "newstage, x"
    clean = {**metrics, "skipped": {}, "warnings": {}}
    assert "Nothing was skipped, and every part met its target." in summary_block(clean, 0.4)


def test_when_tiny_only_is_best_the_summary_says_so(metrics: dict[str, Any]) -> None:
    for name in ("cascade", "router", "early_exit"):
        metrics["policies"][name]["accuracy"] = 0.40
    html = summary_block(metrics, 0.4)
    assert "no policy beats tiny-only" in html
    assert [row[0] for row in _cells_of(html)[1:]] == [
        "tiny-only (best within target)",
        "large-only",
    ]


def test_a_run_without_policies_or_without_large_only(metrics: dict[str, Any]) -> None:
    without = {k: v for k, v in metrics.items() if k != "policies"}
    html = summary_block(without, 0.4)
    assert "This run compared no inference policies" in html
    assert "Test accuracy: large 81.0 %, tiny 49.0 %." in html
    assert "<table>" not in html and "Skipped" in html  # the skipped list still follows
    # a policies section where every part was skipped counts as no policies
    only_skipped = {**metrics, "policies": {"router": {"skipped": "no"}, "_validation": "x"}}
    assert "compared no inference policies" in summary_block(only_skipped, 0.4)
    no_large = copy.deepcopy(metrics)
    del no_large["policies"]["large"]
    rows = summary_rows(no_large["policies"], 0.4)
    assert [(r.policy, r.accuracy_kept) for r in rows] == [("router", None), ("tiny", None)]
    assert "(no large-only accuracy to compare with)" in summary_block(no_large, 0.4)


def test_lead_sections_open_the_page_above_the_contents() -> None:
    html = page(
        "t", "s", [Section("Task", "<p>task</p>"), Section("Summary", "<p>answer</p>", lead=True)]
    )
    assert html.index("answer") < html.index('<nav class="contents">') < html.index("task")
    assert '<a href="#s0">Task</a>' in html and 'href="#s1"' not in html


class _Tables(HTMLParser):
    """Where each table starts, and the text of its header cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[int, list[str]]] = []
        self.lead_at: int | None = None
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        offset = self.getpos()
        if tag == "section" and ("class", "lead") in attrs and self.lead_at is None:
            self.lead_at = offset[0] * 10**6 + offset[1]
        if tag == "table":
            self.tables.append((offset[0] * 10**6 + offset[1], []))
        self._in_th = tag == "th"

    def handle_data(self, data: str) -> None:
        if self._in_th and self.tables:
            self.tables[-1][1].append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_th = False if tag == "th" else self._in_th


def test_the_smoke_reports_summary_comes_before_any_model_table(
    smoke_result: RunResult, tmp_path: Path
) -> None:
    report = write(smoke_result, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    parser = _Tables()
    parser.feed(report.read_text())
    assert parser.lead_at is not None
    model_tables = [at for at, header in parser.tables if "architecture" in header]
    assert model_tables and parser.lead_at < min(model_tables)
    first_header = parser.tables[0][1]
    assert first_header[0] == "policy" and "p99 latency (ms)" in first_header
    # the summary's best is the best within the scenario's target, by the documented rule
    target = smoke_result.scenario.policies.target_offload
    policies = {
        k: v for k, v in metrics["policies"].items() if not k.startswith("_") and "skipped" not in v
    }
    eligible = {
        k: v for k, v in policies.items() if k != "oracle" and v["offload_fraction"] <= target
    }
    top = max(v["accuracy"] for v in eligible.values())
    best = min(
        (v["energy_j_per_inference"], k) for k, v in eligible.items() if v["accuracy"] == top
    )[1]
    html = report.read_text()
    lead = html[html.index('<section class="lead"') : html.index("</section>")]
    kept = 100 * policies[best]["accuracy"] / policies["large"]["accuracy"]
    # a baseline that is itself the best is labelled by its plain name (summary_rows)
    plain = {"tiny": "tiny-only", "large": "large-only"}.get(best, best)
    assert f"<td>{plain} (best within target)</td>" in lead
    assert f"<td>{kept:.1f}</td>" in lead
