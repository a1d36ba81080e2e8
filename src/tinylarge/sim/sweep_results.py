"""A sweep's results: each point's record (``point.json``), its scalar metrics, and
``results.csv`` (a row per point and seed, every scalar metric). The comparison report built
from them is `tinylarge.report.sweep_report`."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinylarge.sim.sweep_spec import SweepPoint, SweepSpec

#: A point's record, written last into its directory: a point with one is finished.
POINT_FILE = "point.json"
RESULTS_FILE = "results.csv"


@dataclass
class PointResult:
    """What one point produced: its status, error (if any), wall time and scalar metrics."""

    point: SweepPoint
    status: str
    wall_s: float
    error: str | None = None
    metrics: dict[str, float | int | str | bool | None] = field(default_factory=dict)


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every scalar of a nested ``metrics.json`` as ``{"a.b.c": value}`` (lists skipped)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, str | int | float | bool) or value is None:
            out[name] = value
    return out


def load_point(spec: SweepSpec, point: SweepPoint, out_dir: Path) -> PointResult | None:
    """The result of a point already run into ``out_dir`` (None: not finished)."""
    point_dir = out_dir / "points" / point.key
    try:
        record = json.loads((point_dir / POINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    result = PointResult(point, record["status"], float(record.get("wall_s", 0.0)),
                         record.get("error"))  # fmt: skip
    if result.status == "ok":
        metrics = json.loads((point_dir / "metrics.json").read_text())
        result.metrics = flatten(metrics)
    return result


def _axis_column(key: str) -> str:
    return f"axis.{key}"


def write_results(spec: SweepSpec, results: list[PointResult], out_dir: Path) -> Path:
    """``results.csv`` for the points finished so far (written atomically)."""
    metric_names = sorted({name for r in results for name in r.metrics})
    header = ["point", "seed", "status", "error", "wall_s",
              *(_axis_column(k) for k in spec.axes), *metric_names]  # fmt: skip
    path = out_dir / RESULTS_FILE
    tmp = out_dir / ".results.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in results:
            writer.writerow([r.point.key, r.point.seed, r.status, r.error or "", f"{r.wall_s:.2f}",
                             *(r.point.values[k] for k in spec.axes),
                             *(r.metrics.get(m, "") for m in metric_names)])  # fmt: skip
    tmp.replace(path)
    return path
