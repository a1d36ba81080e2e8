"""The comparison report of a sweep (`tinylarge.sim.sweep.run_sweep`): the sweep's points and
failures, each metric against each axis with error bars over seeds, and the Pareto front of
accuracy vs device energy vs p99 latency across points and policies (``report.html`` beside
``results.csv``)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tinylarge.report.html import Section, image, page, paragraph, table
from tinylarge.report.plots import save_figure
from tinylarge.sim.sweep_results import PointResult
from tinylarge.sim.sweep_spec import SweepSpec

#: The three objectives of the front: (metric under ``policies.<name>.``, label, better).
OBJECTIVES = (
    ("accuracy", "accuracy (%)", "max"),
    ("energy_j_per_inference", "device energy per inference (mJ)", "min"),
    ("latency_s.p99", "p99 latency (ms)", "min"),
)
_SCALE = {"accuracy": 100.0, "energy_j_per_inference": 1e3, "latency_s.p99": 1e3}


def _value(r: PointResult, policy: str, metric: str) -> float:
    raw = r.metrics.get(f"policies.{policy}.{metric}")
    return float(raw) * _SCALE[metric] if isinstance(raw, int | float) else math.nan


def axis_summary(
    spec: SweepSpec, results: list[PointResult], axis: str, policy: str, metric: str
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Per value of ``axis``: the mean over seeds of the per-seed mean (over the other axes)
    of ``metric`` for ``policy``, and the standard deviation across seeds (0 with one)."""
    values = spec.axes[axis]
    means, stds = [], []
    for value in values:
        per_seed: dict[int, list[float]] = defaultdict(list)
        for r in results:
            if r.status == "ok" and r.point.values[axis] == value:
                per_seed[r.point.seed].append(_value(r, policy, metric))
        seed_means = [float(np.nanmean(v)) for v in per_seed.values() if np.isfinite(v).any()]
        means.append(float(np.mean(seed_means)) if seed_means else math.nan)
        stds.append(float(np.std(seed_means)) if len(seed_means) > 1 else 0.0)
    return values, np.array(means), np.array(stds)


def pareto_front(candidates: list[tuple[str, np.ndarray]]) -> list[int]:
    """Indices of the candidates no other one beats on every objective (accuracy up, energy
    and p99 down) and strictly on one; candidates are ``(label, [acc, energy, p99])``."""
    sign = np.array([-1.0 if better == "max" else 1.0 for _, _, better in OBJECTIVES])
    costs = np.array([c[1] for c in candidates]) * sign  # all to minimise
    front = []
    for i, cost in enumerate(costs):
        if not np.isfinite(cost).all():
            continue
        others = costs[np.isfinite(costs).all(axis=1)]
        dominated = np.any(np.all(others <= cost, axis=1) & np.any(others < cost, axis=1))
        if not dominated:
            front.append(i)
    return front


def candidates(spec: SweepSpec, results: list[PointResult]) -> list[tuple[str, np.ndarray]]:
    """Every (point without its seed, policy): the seed-mean of each objective."""
    by_point: dict[int, list[PointResult]] = defaultdict(list)
    for r in results:
        if r.status == "ok":
            by_point[r.point.index].append(r)
    out = []
    for index, rows in sorted(by_point.items()):
        label = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in rows[0].point.values.items())
        for policy in spec.policies:
            values = [np.nanmean([_value(r, policy, m) for r in rows]) for m, _, _ in OBJECTIVES]
            out.append((f"{policy} @ {label or index}", np.array(values)))
    return out


def _axis_figure(spec: SweepSpec, results: list[PointResult], axis: str, path: Path) -> Path:
    fig = Figure(figsize=(9.6, 3.0))
    for k, (metric, label, _) in enumerate(OBJECTIVES):
        ax = fig.add_subplot(1, len(OBJECTIVES), k + 1)
        for policy in spec.policies:
            values, mean, std = axis_summary(spec, results, axis, policy, metric)
            x = np.arange(len(values))
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=policy)
            ax.set_xticks(x, [str(v) for v in values], fontsize=8)
        ax.set_xlabel(axis, fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def _front_figure(cands: list[tuple[str, np.ndarray]], front: list[int], path: Path) -> Path:
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    values = np.array([c[1] for c in cands])
    points = ax.scatter(values[:, 1], values[:, 0], c=values[:, 2], cmap="viridis", s=28)
    ax.scatter(values[front, 1], values[front, 0], facecolors="none", edgecolors="red", s=90,
               label="Pareto front")  # fmt: skip
    fig.colorbar(points, ax=ax, label=OBJECTIVES[2][1])
    ax.set_xlabel(OBJECTIVES[1][1])
    ax.set_ylabel(OBJECTIVES[0][1])
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_report(spec: SweepSpec, results: list[PointResult], out_dir: Path) -> Path:
    """``report.html`` of the sweep (self-contained): failures, each axis, the Pareto front."""
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    ok = [r for r in results if r.status == "ok"]
    failed = [r for r in results if r.status != "ok"]
    body = paragraph(
        f"{len(results)} runs ({len(spec.points) // max(len(spec.seeds), 1)} points x "
        f"{len(spec.seeds)} seeds): {len(ok)} finished, {len(failed)} failed. Axes: "
        + "; ".join(f"{k} = {v}" for k, v in spec.axes.items())
        + ". Every scalar metric of every run is in results.csv; each run's own report is in "
        "points/<point>/report.html."
    )
    if failed:
        rows = [[r.point.key, str(r.point.values), r.error or ""] for r in failed]
        body += table(["point", "axis values", "error"], rows)
    sections = [Section("Sweep", body)]
    if spec.policies and ok:
        for axis in spec.axes:
            name = axis.replace(".", "_")
            sections.append(Section(f"Against {axis}", image(
                _axis_figure(spec, results, axis, plots / f"axis_{name}.png"),
                f"Mean over seeds of each policy's accuracy, device energy and p99 latency per "
                f"value of {axis} (averaged over the other axes); bars: one standard deviation "
                "across seeds.",
            )))  # fmt: skip
        cands = candidates(spec, results)
        front = pareto_front(cands)
        rows = [[cands[i][0], *(f"{v:.3g}" for v in cands[i][1])] for i in front]
        text = image(_front_figure(cands, front, plots / "pareto.png"),
                     "Every point and policy (seed means): accuracy against device energy, "
                     "colour p99 latency; circled: the Pareto front.")  # fmt: skip
        text += table(["point and policy", *(label for _, label, _ in OBJECTIVES)], rows)
        sections.append(Section("Pareto front: accuracy vs device energy vs p99 latency", text))
    report = out_dir / "report.html"
    report.write_text(page(f"tinylarge sweep: {spec.name}", "sweep comparison", sections), "utf-8")
    return report
