"""`metrics.json`: the run's numbers as plain JSON.

Each stage's result owns the metrics it produces (``NetworkResult.metrics``,
``PoliciesResult.metrics``, `tinylarge.sim.tiny_stages.tiny_int8_metrics`, ...); this module
only assembles them in one document, marks the skipped and warned parts, and makes the values
JSON (NumPy to Python, NaN and infinities to null).

Keys are a contract (``models.<role>.accuracy``, ``.params``, ``.accuracy_by_snr``, ...): keep
them stable and add new ones beside them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import tinylarge
from tinylarge.sim.large_stages import pretrained_metrics
from tinylarge.sim.stages import (
    HIGH_SNR_DB,
    devices_metrics,
    model_metrics,
    snr_key,
    task_metrics,
)
from tinylarge.sim.state import TINY_INT8_ROLE, RunResult
from tinylarge.sim.tiny_stages import distillation_metrics, tiny_int8_metrics

__all__ = ["HIGH_SNR_DB", "collect", "snr_key"]


def _clean(value: Any) -> Any:
    """Recursively turn NumPy scalars/arrays into JSON types and NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _comparison(models: dict[str, Any]) -> dict[str, Any] | None:
    """``comparison``: the large model's accuracy minus the tiny one's (overall and at high
    SNR), from their ``models`` entries; None without both."""
    if "tiny" not in models or "large" not in models:
        return None
    tiny, large = models["tiny"], models["large"]
    comparison = {"large_minus_tiny_accuracy": large["accuracy"] - tiny["accuracy"]}
    key = f"accuracy_snr_ge_{HIGH_SNR_DB:g}db"
    if key in tiny:
        comparison[f"large_minus_tiny_{key}"] = large[key] - tiny[key]
    return comparison


def _text_run(result: RunResult) -> dict[str, Any]:
    """The metrics document of a text run (hybrid language models; no classification task)."""
    scenario = result.scenario
    metrics: dict[str, Any] = {
        "tinylarge_version": tinylarge.__version__,
        "scenario": {"name": scenario.name, "seed": scenario.seed},
        "task": {"name": "text"},
        "timing_s": {**result.timings_s, "total": sum(result.timings_s.values())},
    }
    if result.hybrid_lm is not None:
        metrics["task"].update(result.hybrid_lm.corpus)
        metrics["hybrid_lm"] = result.hybrid_lm.metrics()
    _mark_parts(metrics, result.skipped, "skipped")
    _mark_parts(metrics, result.warnings, "warning")
    metrics["skipped"] = dict(result.skipped)
    metrics["warnings"] = dict(result.warnings)
    return dict(_clean(metrics))


def collect(result: RunResult) -> dict[str, Any]:
    """Build the metrics document of a finished run."""
    if result.scenario.task.name == "text":
        return _text_run(result)
    task = result.require_task()
    scenario = result.scenario
    models = {
        role: model_metrics(result.models[role], result.evaluations[role], task.class_names)
        for role in result.models
        if role in result.evaluations
    }
    metrics: dict[str, Any] = {
        "tinylarge_version": tinylarge.__version__,
        "scenario": {"name": scenario.name, "seed": scenario.seed},
        "task": task_metrics(task),
        "models": models,
        "timing_s": {**result.timings_s, "total": sum(result.timings_s.values())},
    }
    parts: dict[str, dict[str, Any] | None] = {
        "devices": devices_metrics(result),
        "policies": (
            result.policies.metrics(scenario.policies.target_offload)
            if result.policies is not None
            else None
        ),
        "colearning": result.colearning or None,
        "security": result.security.metrics() if result.security is not None else None,
        "network": (
            result.network.metrics(scenario.network) if result.network is not None else None
        ),
        "distillation": distillation_metrics(result),
        "foundation": result.foundation.metrics() if result.foundation is not None else None,
    }
    if "large" in models:
        large = result.models["large"]
        if large.info:
            models["large"]["adaptation"] = dict(large.info)
        pretrained = pretrained_metrics(scenario.models.large)
        if pretrained is not None:
            models["large"]["pretrained"] = pretrained
    tiny_int8 = tiny_int8_metrics(result)
    if tiny_int8 is not None:
        models[TINY_INT8_ROLE] = tiny_int8
    metrics.update({name: part for name, part in parts.items() if part is not None})
    comparison = _comparison(models)
    if comparison is not None:
        metrics["comparison"] = comparison
    _mark_parts(metrics, result.skipped, "skipped")
    _mark_parts(metrics, result.warnings, "warning")
    metrics["skipped"] = dict(result.skipped)
    metrics["warnings"] = dict(result.warnings)
    return dict(_clean(metrics))


def _mark_parts(metrics: dict[str, Any], parts: dict[str, str], key: str) -> None:
    """Write each message at its metrics path: ``policies.router`` -> ``{"skipped": ...}``
    (beside the part's numbers when it has some)."""
    for path, message in parts.items():
        *parents, leaf = path.split(".")
        node = metrics
        for part in parents:
            node = node.setdefault(part, {})
        entry = node.get(leaf)
        if not isinstance(entry, dict):
            entry = node[leaf] = {}
        entry[key] = message
