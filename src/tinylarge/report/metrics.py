"""`metrics.json`: the run's numbers as plain JSON.

Keys named by issues are a contract (``models.<role>.accuracy``, ``.params``,
``.accuracy_by_snr``, ...): keep them stable and add new ones beside them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import tinylarge
from tinylarge.models.evaluation import Evaluation
from tinylarge.sim.net_stages import network_metrics
from tinylarge.sim.policy_stages import policy_metrics
from tinylarge.sim.state import TINY_INT8_ROLE, TINY_LABELS_ROLE, RunResult, TrainedModel
from tinylarge.tiny.graph import WEIGHTED

#: Frames at or above this SNR are where the large model's edge is measured (issue 2).
HIGH_SNR_DB = 6.0


def snr_key(snr_db: float) -> str:
    """JSON key of an SNR bucket: ``-10``, ``2``, ``7.5``."""
    return f"{snr_db:g}"


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


def _evaluation_metrics(evaluation: Evaluation, class_names: tuple[str, ...]) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "accuracy": evaluation.accuracy,
        "accuracy_by_snr": {
            snr_key(s): a
            for s, a in zip(evaluation.snr_db, evaluation.accuracy_by_snr, strict=True)
        },
        "count_by_snr": {
            snr_key(s): c for s, c in zip(evaluation.snr_db, evaluation.count_by_snr, strict=True)
        },
        "accuracy_by_class": dict(zip(class_names, evaluation.accuracy_by_class, strict=True)),
        "confusion_matrix": evaluation.confusion,
    }
    if len(evaluation.snr_db):
        metrics[f"accuracy_snr_ge_{HIGH_SNR_DB:g}db"] = evaluation.accuracy_where(HIGH_SNR_DB)
    return metrics


def _model_metrics(
    trained: TrainedModel, evaluation: Evaluation, class_names: tuple[str, ...]
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "name": trained.manifest.name,
        "options": trained.manifest.options,
        "params": trained.params,
        **_evaluation_metrics(evaluation, class_names),
        "from_cache": trained.from_cache,
        "cache_key": trained.cache_key,
    }
    if trained.training is not None:
        history = trained.training.history
        best = history[trained.training.best_epoch] if history else None
        metrics["training"] = {
            "epochs_run": trained.training.epochs_run,
            "best_epoch": trained.training.best_epoch,
            "stopped_early": trained.training.stopped_early,
            "train_time_s": trained.training.train_time_s,
            "best_val_accuracy": best.val_accuracy if best else None,
        }
    return metrics


def collect(result: RunResult) -> dict[str, Any]:
    """Build the metrics document of a finished run."""
    task = result.require_task()
    scenario = result.scenario
    metrics: dict[str, Any] = {
        "tinylarge_version": tinylarge.__version__,
        "scenario": {"name": scenario.name, "seed": scenario.seed},
        "task": {
            "name": task.name,
            "n_train": task.n_train,
            "n_test": task.n_test,
            "input_shape": list(task.input_shape),
            "classes": list(task.class_names),
        },
        "models": {
            role: _model_metrics(result.models[role], result.evaluations[role], task.class_names)
            for role in result.models
            if role in result.evaluations
        },
        "timing_s": {**result.timings_s, "total": sum(result.timings_s.values())},
    }
    if result.partition is not None:
        sizes = result.partition.sizes
        metrics["devices"] = {
            "count": result.partition.n_devices,
            "partition": scenario.devices.partition,
            "samples_per_device": {
                "min": int(sizes.min()),
                "median": float(np.median(sizes)),
                "max": int(sizes.max()),
            },
        }
    models = metrics["models"]
    if result.tiny_int8 is not None and TINY_INT8_ROLE in result.evaluations:
        models[TINY_INT8_ROLE] = tiny_int8_metrics(result, task.class_names)
    policies = policy_metrics(result)
    if policies is not None:
        metrics["policies"] = policies
    if result.colearning:
        metrics["colearning"] = result.colearning
    if result.security:
        metrics["security"] = result.security
    network = network_metrics(result)
    if network is not None:
        metrics["network"] = network
    distillation = distillation_metrics(result)
    if distillation is not None:
        metrics["distillation"] = distillation
    if "tiny" in models and "large" in models:
        comparison = {
            "large_minus_tiny_accuracy": models["large"]["accuracy"] - models["tiny"]["accuracy"]
        }
        key = f"accuracy_snr_ge_{HIGH_SNR_DB:g}db"
        if key in models["tiny"]:
            comparison[f"large_minus_tiny_{key}"] = models["large"][key] - models["tiny"][key]
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


def tiny_int8_metrics(result: RunResult, class_names: tuple[str, ...]) -> dict[str, Any]:
    """``models.tiny_int8``: accuracy of the integer runtime plus footprint and MCU costs."""
    model = result.require_tiny_int8()
    target = result.scenario.tiny.target_mcu
    fp = result.footprints[target]
    params = sum(
        model.constants[f"{op.name}.{part}"].size
        for op in model.ops
        if op.kind in WEIGHTED
        for part in ("weight", "bias")
    )
    return {
        **_evaluation_metrics(result.evaluations[TINY_INT8_ROLE], class_names),
        "params": params,
        "macs": fp.macs,
        "flash_bytes": fp.flash_bytes,
        "peak_sram_bytes": fp.peak_sram_bytes,
        "target_mcu": target,
        "latency_s": {name: f.latency_s for name, f in result.footprints.items()},
        "energy_j": {name: f.energy_j for name, f in result.footprints.items()},
        "fits": {name: f.fits for name, f in result.footprints.items()},
        "footprint": fp.to_dict(),
        "quantization": result.quantization,
        "onnxruntime_check": result.int8_checks,
        "tflm_check": result.tflm_check,
        **({"c_check": result.c_check.to_dict()} if result.c_check is not None else {}),
        "source_model_sha256": model.manifest.get("source_model_sha256"),
    }


def distillation_metrics(result: RunResult) -> dict[str, Any] | None:
    """``distillation``: the tiny model from labels alone vs distilled (same data and seed)."""
    config = result.scenario.tiny.distillation
    evaluations = result.evaluations
    if not config.enabled or TINY_LABELS_ROLE not in evaluations or "tiny" not in evaluations:
        return None
    labels, distilled = evaluations[TINY_LABELS_ROLE], evaluations["tiny"]
    metrics: dict[str, Any] = {
        "temperature": config.temperature,
        "alpha": config.alpha,
        "accuracy_labels_only": labels.accuracy,
        "accuracy_distilled": distilled.accuracy,
        "gain_pp": 100.0 * (distilled.accuracy - labels.accuracy),
    }
    if len(labels.snr_db):
        key = f"accuracy_snr_ge_{HIGH_SNR_DB:g}db"
        metrics[f"{key}_labels_only"] = labels.accuracy_where(HIGH_SNR_DB)
        metrics[f"{key}_distilled"] = distilled.accuracy_where(HIGH_SNR_DB)
    return metrics
