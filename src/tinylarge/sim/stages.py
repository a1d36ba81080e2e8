"""The stages of the main job. Each is a function of (state, context).

A stage reads what earlier stages left in `RunState`, writes its own fields, and returns a
one-line summary for the terminal. To add a stage: write the function, append it to
`PIPELINE` in `tinylarge.sim.pipeline`, and give `tinylarge.report` a section for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import tinylarge
from tinylarge.config.scenario import ModelSpec, Scenario, TaskConfig, TrainingSpec
from tinylarge.data import (
    Task,
    load_npz_task,
    make_digits_task,
    make_radio_task,
    partition_by_snr,
    partition_dirichlet,
    partition_iid,
)
from tinylarge.models.cache import ModelCache, cache_key
from tinylarge.models.evaluation import Evaluation, evaluate, predict_logits
from tinylarge.models.external import check_model_files
from tinylarge.models.persistence import ModelManifest
from tinylarge.models.registry import check_options, count_parameters
from tinylarge.models.rf_transformer import checkpoint_directory
from tinylarge.models.training import (
    BatchLoss,
    ProgressCallback,
    TrainingReport,
    cross_entropy_loss,
    train,
)
from tinylarge.seeding import derive_seed, rng_for
from tinylarge.sim.progress import Reporter
from tinylarge.sim.state import ROLES, TINY_LABELS_ROLE, RunState, TrainedModel

#: Builds a training loss only when a model must really be trained (not on a cache hit).
LossFactory = Callable[[], BatchLoss]

#: Bump when a change to training or data generation makes old cache entries wrong.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class StageContext:
    """What every stage may use besides the state: the model cache and the progress reporter."""

    cache: ModelCache
    reporter: Reporter


def check_scenario(scenario: Scenario) -> None:
    """Fail before any work when the scenario names models or options that do not exist."""
    for role in ROLES:
        spec: ModelSpec = getattr(scenario.models, role)
        try:
            check_options(spec.name, spec.options)
            check_model_files(spec.name, spec.options)
        except ValueError as error:
            raise ValueError(f"models.{role}: {error}") from None
    npz = scenario.task.npz
    if scenario.task.name == "npz" and npz is not None and not Path(npz.path).is_file():
        raise ValueError(f"task.npz.path = {npz.path!r}: no such file")


def build_task(config: TaskConfig, seed: int) -> Task:
    """Generate or load the task a scenario names."""
    if config.name == "radio":
        return make_radio_task(seed, **config.radio.model_dump())
    if config.name == "digits":
        return make_digits_task(seed, test_fraction=config.digits.test_fraction)
    if config.npz is None:  # TaskConfig's validator already rejects this; kept for the type checker
        raise ValueError("task.name = 'npz' needs a [task.npz] section with path = '...'")
    return load_npz_task(config.npz.path)


def task_stage(state: RunState, ctx: StageContext) -> str:
    task = build_task(state.scenario.task, state.scenario.seed)
    state.task = task
    return (
        f"{task.name}: {task.n_train} train / {task.n_test} test samples of shape "
        f"{task.input_shape}, {task.num_classes} classes"
    )


def devices_stage(state: RunState, ctx: StageContext) -> str:
    task, config = state.require_task(), state.scenario.devices
    if config.count > task.n_train:
        raise ValueError(
            f"devices.count = {config.count} exceeds the {task.n_train} training samples to share; "
            "use fewer devices or more training data"
        )
    rng = rng_for(state.scenario.seed, "devices", "partition")
    if config.partition == "iid":
        partition = partition_iid(task.n_train, config.count, rng)
    elif config.partition == "dirichlet":
        partition = partition_dirichlet(task.y_train, config.count, config.dirichlet_alpha, rng)
    else:
        if "snr_db" not in task.meta_train:
            raise ValueError(
                f"devices.partition = 'snr' needs per-sample snr_db metadata, which task "
                f"{task.name!r} lacks; use 'iid' or 'dirichlet'"
            )
        partition = partition_by_snr(
            task.meta_train["snr_db"], config.count, rng, mixing=config.snr_mixing
        )
    state.partition = partition
    sizes = partition.sizes
    return f"{config.count} devices ({config.partition}), {sizes.min()}-{sizes.max()} samples each"


def _task_fingerprint(config: TaskConfig) -> dict[str, object]:
    """The task config, with an npz file's content hash instead of only its path."""
    fingerprint: dict[str, object] = config.model_dump(mode="json")
    if config.name == "npz" and config.npz is not None:
        fingerprint["npz_sha256"] = hashlib.sha256(Path(config.npz.path).read_bytes()).hexdigest()
    return fingerprint


def path_fingerprint(value: object) -> str | None:
    """SHA-256 of what a model option points at (a file, or every file of a directory), or
    None when the option is not a path that exists. Keys the cache on the content of a
    checkpoint or a user's model, not only on its name."""
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode("utf-8"))
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


#: Model options that name a file or a directory (a checkpoint, a user's model).
PATH_OPTIONS = ("path", "checkpoint")


def model_fingerprint(spec: ModelSpec) -> dict[str, object]:
    """The model spec, with the content hash of every option that names a file or directory
    (and of the shipped checkpoint an ``rf_transformer`` loads by default)."""
    fingerprint: dict[str, object] = spec.model_dump(mode="json")
    hashes = {
        k: h
        for k, v in spec.options.items()
        if k in PATH_OPTIONS and (h := path_fingerprint(v)) is not None
    }
    if spec.name == "rf_transformer" and spec.options.get("checkpoint", "builtin") == "builtin":
        size = str(spec.options.get("size", "s"))
        builtin = path_fingerprint(str(checkpoint_directory("builtin", size)))
        if builtin is not None:
            hashes["checkpoint"] = builtin
    if hashes:
        fingerprint["content_sha256"] = hashes
    return fingerprint


#: What fitting a model gives: the trained model, its training report and facts about the
#: fit worth keeping (method, trainable parameters, ...; stored with the cached model).
FitResult = tuple[nn.Module, TrainingReport, dict[str, Any]]
#: Trains a freshly built model: (model, progress) -> `FitResult`.
Fit = Callable[[nn.Module, ProgressCallback], FitResult]


def cached_fit(
    role: str, ctx: StageContext, manifest: ModelManifest, key: str, seed: int, fit: Fit,
    *, epochs: int,
) -> TrainedModel:  # fmt: skip
    """The model under ``key`` from the cache, else built from ``manifest`` (seeded), trained
    by ``fit`` and stored."""
    cached = ctx.cache.get(key)
    if cached is not None:
        model, document = cached
        extra = document.get("extra", {})
        history = extra.get("training")
        report = TrainingReport.from_dict(history) if history else None
        return TrainedModel(
            role, model, manifest, count_parameters(model), key, True, report,
            dict(extra.get("fit", {})),
        )  # fmt: skip

    def progress(epoch: int, batch: int, batches: int, val_acc: float | None) -> None:
        ctx.reporter.training(role, epoch, epochs, batch, batches, val_acc)

    model, report, info = fit(manifest.build(seed=seed), progress)
    for parameter in model.parameters():  # adapters may have frozen some; all are the model's
        parameter.requires_grad_(True)
    model.eval()
    ctx.cache.put(key, model, manifest, {"training": report.to_dict(), "role": role, "fit": info})
    return TrainedModel(role, model, manifest, count_parameters(model), key, False, report, info)


def training_key(
    scenario: Scenario, spec: ModelSpec, training: TrainingSpec, seed: int,
    key_extra: dict[str, object] | None = None,
) -> str:  # fmt: skip
    """Cache key of a model trained on the scenario's task: everything that determines it."""
    return cache_key(
        {
            "cache_format": CACHE_FORMAT,
            "tinylarge": tinylarge.__version__,
            "torch": torch.__version__,
            "task": _task_fingerprint(scenario.task),
            "task_seed": scenario.seed,
            "model": model_fingerprint(spec),
            "training": training.model_dump(mode="json"),
            "model_seed": seed,
            **(key_extra or {}),
        }
    )


def train_or_load(
    role: str,
    state: RunState,
    ctx: StageContext,
    *,
    spec_role: str | None = None,
    loss: LossFactory | None = None,
    key_extra: dict[str, object] | None = None,
) -> TrainedModel:
    """Return the ``role`` model, from the cache when an identical one was trained before.

    ``spec_role`` names the scenario's model/training section (default: ``role``); ``loss``
    builds a custom training loss when training is needed (e.g. distillation), and
    ``key_extra`` adds what that loss depends on to the cache key.
    """
    scenario, task = state.scenario, state.require_task()
    spec_role = spec_role or role
    spec: ModelSpec = getattr(scenario.models, spec_role)
    training: TrainingSpec = getattr(scenario.training, spec_role)
    seed = derive_seed(scenario.seed, "models", spec_role)
    manifest = ModelManifest(spec.name, dict(spec.options), task.input_shape, task.num_classes)
    key = training_key(scenario, spec, training, seed, key_extra)

    def fit(model: nn.Module, progress: ProgressCallback) -> FitResult:
        loss_fn = loss() if loss is not None else cross_entropy_loss
        report = train(
            model, task.x_train, task.y_train, training, seed=seed, progress=progress,
            loss_fn=loss_fn,
        )  # fmt: skip
        return model, report, {}

    return cached_fit(role, ctx, manifest, key, seed, fit, epochs=training.epochs)


def _training_summary(trained: TrainedModel) -> str:
    origin = "from cache" if trained.from_cache else "trained"
    epochs = f", {trained.training.epochs_run} epochs" if trained.training else ""
    return f"{trained.manifest.name}, {trained.params:,} params, {origin}{epochs}"


def train_tiny_stage(state: RunState, ctx: StageContext) -> str:
    """Train the tiny model from labels alone: the deployed tiny model when distillation is off,
    else the baseline (role ``tiny_labels``) that the distilled one is compared with."""
    role = TINY_LABELS_ROLE if state.scenario.tiny.distillation.enabled else "tiny"
    state.models[role] = train_or_load(role, state, ctx, spec_role="tiny")
    return _training_summary(state.models[role])


def evaluate_stage(state: RunState, ctx: StageContext) -> str:
    """Test-set logits and evaluation of every float model of the run."""
    task = state.require_task()
    snr = task.meta_test.get("snr_db")
    parts = []
    for role in ROLES:
        state.require_model(role)
    for role, trained in state.models.items():
        logits = predict_logits(trained.model, task.x_test)
        state.logits[role] = logits
        state.evaluations[role] = evaluate(
            np.argmax(logits, axis=1), task.y_test, task.num_classes, snr
        )
        parts.append(f"{role} {state.evaluations[role].accuracy:.1%}")
    return "test accuracy: " + ", ".join(parts)


#: Frames at or above this SNR (dB) are where the large model's edge over the tiny one is
#: measured (``accuracy_snr_ge_6db`` in the metrics).
HIGH_SNR_DB = 6.0


def snr_key(snr_db: float) -> str:
    """JSON key of an SNR bucket: ``-10``, ``2``, ``7.5``."""
    return f"{snr_db:g}"


def task_metrics(task: Task) -> dict[str, Any]:
    """``task``: its name, sizes, input shape and class names (``task`` stage)."""
    return {
        "name": task.name,
        "n_train": task.n_train,
        "n_test": task.n_test,
        "input_shape": list(task.input_shape),
        "classes": list(task.class_names),
    }


def devices_metrics(state: RunState) -> dict[str, Any] | None:
    """``devices``: how many, how the training data was spread, samples per device
    (``devices`` stage); None before it ran."""
    if state.partition is None:
        return None
    sizes = state.partition.sizes
    return {
        "count": state.partition.n_devices,
        "partition": state.scenario.devices.partition,
        "samples_per_device": {
            "min": int(sizes.min()),
            "median": float(np.median(sizes)),
            "max": int(sizes.max()),
        },
    }


def evaluation_metrics(evaluation: Evaluation, class_names: tuple[str, ...]) -> dict[str, Any]:
    """Test accuracy overall, per SNR bucket, per class, the confusion matrix, and the accuracy
    at SNR >= `HIGH_SNR_DB` when the task has SNRs."""
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


def model_metrics(
    trained: TrainedModel, evaluation: Evaluation, class_names: tuple[str, ...]
) -> dict[str, Any]:
    """``models.<role>`` of a float model: architecture, parameters, its `evaluation_metrics`,
    where it came from and, when trained in this run, how the training went."""
    metrics: dict[str, Any] = {
        "name": trained.manifest.name,
        "options": trained.manifest.options,
        "params": trained.params,
        **evaluation_metrics(evaluation, class_names),
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
