"""The sweep's comparison report: the Pareto front, the per-axis summary and the page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylarge.report.sweep_report import axis_summary, pareto_front, write_report
from tinylarge.sim.sweep_results import PointResult
from tinylarge.sim.sweep_spec import SweepSpec


def test_the_pareto_front_by_hand() -> None:
    # (accuracy up, energy down, p99 down)
    cands = [
        ("a", np.array([80.0, 1.0, 10.0])),
        ("b", np.array([70.0, 2.0, 20.0])),  # worse than a everywhere
        ("c", np.array([90.0, 3.0, 10.0])),  # more accurate, more energy
        ("d", np.array([80.0, 1.0, 10.0])),  # equal to a: neither dominates
        ("e", np.array([np.nan, 0.5, 1.0])),  # incomplete: never on the front
    ]
    assert pareto_front(cands) == [0, 2, 3]


def _spec() -> SweepSpec:
    table = {
        "sweep": {"name": "t", "base": "smoke", "seeds": [0, 1], "policies": ["cascade"]},
        "axes": {"devices.count": [10, 20]},
    }
    return SweepSpec.from_table(table, "test sweep", Path("."))


def _result(spec: SweepSpec, index: int, accuracy: float) -> PointResult:
    prefix = "policies.cascade."
    metrics: dict[str, float | int | str | bool | None] = {
        f"{prefix}accuracy": accuracy,
        f"{prefix}energy_j_per_inference": 1e-3,
        f"{prefix}latency_s.p99": 0.02,
    }
    return PointResult(spec.points[index], "ok", 1.0, None, metrics)


def test_axis_summary_averages_each_seed_then_the_seeds() -> None:
    spec = _spec()  # points: (10 devices, seed 0), (10, 1), (20, 0), (20, 1)
    results = [_result(spec, i, a) for i, a in enumerate([0.5, 0.7, 0.8, 0.8])]
    values, mean, std = axis_summary(spec, results, "devices.count", "cascade", "accuracy")
    assert values == [10, 20]
    np.testing.assert_allclose(mean, [60.0, 80.0])  # accuracy in %
    np.testing.assert_allclose(std, [10.0, 0.0])


def test_the_report_names_failed_points_and_draws_the_front(tmp_path: Path) -> None:
    spec = _spec()
    results = [_result(spec, i, a) for i, a in enumerate([0.5, 0.7, 0.8])]
    results.append(PointResult(spec.points[3], "error", 0.0, "ValueError: no such profile"))
    page = write_report(spec, results, tmp_path).read_text()
    assert "4 runs (2 points x 2 seeds): 3 finished, 1 failed" in page
    assert "ValueError: no such profile" in page and spec.points[3].key in page
    assert "Pareto front" in page and "cascade @ count=20" in page
    assert (tmp_path / "plots" / "pareto.png").is_file()
    assert (tmp_path / "plots" / "axis_devices_count.png").is_file()


@pytest.mark.parametrize("policies", [[], ["cascade"]])
def test_a_sweep_where_nothing_finished_still_gets_a_report(
    tmp_path: Path, policies: list[str]
) -> None:
    spec = SweepSpec.from_table(
        {"sweep": {"name": "t", "base": "smoke", "policies": policies}}, "s", Path(".")
    )
    failed = [PointResult(p, "error", 0.0, "boom") for p in spec.points]
    page = write_report(spec, failed, tmp_path).read_text()
    assert "0 finished, 1 failed" in page and "Pareto" not in page
