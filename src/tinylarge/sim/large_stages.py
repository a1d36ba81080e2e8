"""The large model of a run: trained from scratch, adapted from a pretrained checkpoint, or a
user's model used as it is.

Which one follows from the scenario: a pretrained model (``rf_transformer`` loading a
checkpoint, a Hugging Face directory) is adapted by ``training.large.adaptation`` (probe, LoRA
or full fine-tuning) on ``labelled_pool`` — the labelled frames the edge has, by default far
fewer than the task's training set; a model without weights to train (an ONNX file) is used
as it is; anything else (``large_resnet``) trains from scratch on the same labelled pool.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from torch import nn

from tinylarge.config.scenario import ModelSpec, Scenario, TrainingSpec
from tinylarge.models.adaptation import AdaptationSettings, adapt
from tinylarge.models.checkpoints import read_checkpoint_config
from tinylarge.models.external import is_inference_only
from tinylarge.models.persistence import ModelManifest
from tinylarge.models.registry import check_options
from tinylarge.models.rf_transformer import RfTransformer, checkpoint_directory
from tinylarge.models.training import ProgressCallback, TrainingReport, train
from tinylarge.seeding import derive_seed, rng_for
from tinylarge.sim.stages import Fit, FitResult, StageContext, cached_fit, training_key
from tinylarge.sim.state import RunState, TrainedModel

LargeKind = Literal["pretrained", "scratch", "inference_only"]

#: Registered models whose weights come pretrained and are adapted rather than trained.
PRETRAINED_MODELS = ("rf_transformer",)


def large_kind(spec: ModelSpec) -> LargeKind:
    """How the pipeline gets the large model ``spec`` names (see the module docstring)."""
    if spec.name in ("onnx",):
        return "inference_only"
    if spec.name == "rf_transformer" and spec.options.get("checkpoint", "builtin") == "none":
        return "scratch"
    return "pretrained" if spec.name in PRETRAINED_MODELS else "scratch"


def check_large_config(scenario: Scenario) -> None:
    """Fail before any work when the adaptation method does not fit the large model or the
    foundation stage's baseline names a model or options that do not exist."""
    baseline = scenario.foundation.baseline
    try:
        check_options(baseline.name, baseline.options)
    except ValueError as error:
        raise ValueError(f"foundation.baseline: {error}") from None
    spec, method = scenario.models.large, scenario.training.large.adaptation.method
    if spec.name == "rf_transformer" and scenario.task.name == "digits":
        raise ValueError(
            "models.large = 'rf_transformer' takes IQ frames of shape (2, samples); task "
            "'digits' has 8x8 images: use e.g. name = 'large_resnet'"
        )
    kind = large_kind(spec)
    if kind == "inference_only" and method != "none":
        raise ValueError(
            f"models.large = {spec.name!r} cannot be trained; set "
            "training.large.adaptation.method = 'none'"
        )
    if kind == "scratch" and method not in ("full", "none"):
        raise ValueError(
            f"training.large.adaptation.method = {method!r} needs a pretrained large model; "
            f"{spec.name!r} with these options trains from scratch: use 'full'"
        )


def labelled_pool(state: RunState, limit: int | None) -> npt.NDArray[np.int64]:
    """Indices of the training frames with labels at the edge: the first ``limit`` of a seeded
    permutation (all frames when ``limit`` is None). The same pool serves the large model and
    the from-scratch baseline it is compared with."""
    task = state.require_task()
    order = rng_for(state.scenario.seed, "large", "labelled-pool").permutation(task.n_train)
    return np.sort(order[:limit] if limit is not None else order).astype(np.int64)


def adaptation_settings(scenario: Scenario, method: str | None = None) -> AdaptationSettings:
    """`AdaptationSettings` of ``training.large.adaptation`` (``method`` overrides it)."""
    spec = scenario.training.large.adaptation
    return AdaptationSettings(
        method=method or spec.method,  # type: ignore[arg-type]
        lora_rank=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        snr_loss_weight=spec.snr_loss_weight,
    )


def _fit(
    state: RunState, kind: LargeKind, method: str, pool: npt.NDArray[np.int64],
    training: TrainingSpec, seed: int,
) -> Fit:  # fmt: skip
    """How a freshly built large model learns the task from the labelled ``pool``."""
    task, scenario = state.require_task(), state.scenario
    x, y = task.x_train[pool], task.y_train[pool]
    snr = task.meta_train.get("snr_db")
    snr_pool = None if snr is None else np.asarray(snr)[pool]
    spec = training.model_copy(update={"max_train_samples": None})

    def fit(model: nn.Module, progress: ProgressCallback) -> FitResult:
        total = sum(p.numel() for p in model.parameters())
        if method == "none":
            return model, TrainingReport(0, 0, False, 0.0, 0, 0), {
                "method": "none", "trainable_parameters": 0, "total_parameters": total,
                "labelled_frames": 0,
            }  # fmt: skip
        if kind == "pretrained":
            if not isinstance(model, RfTransformer):
                raise TypeError(f"a pretrained large model must be an RfTransformer, not {model}")
            result = adapt(
                model, x, y, snr_pool, spec, adaptation_settings(scenario, method), seed=seed,
                progress=progress,
            )  # fmt: skip
            model, report, trainable = result.model, result.report, result.trainable_parameters
        else:
            report = train(model, x, y, spec, seed=seed, progress=progress)
            trainable = total
        return model, report, {
            "method": method if kind == "pretrained" else "scratch",
            "trainable_parameters": trainable, "total_parameters": total,
            "labelled_frames": len(pool),
        }  # fmt: skip

    return fit


def fit_large(
    state: RunState,
    ctx: StageContext,
    *,
    role: str,
    spec: ModelSpec,
    training: TrainingSpec,
    pool: npt.NDArray[np.int64],
    method: str,
) -> TrainedModel:
    """A large model (``spec``) fitted to the labelled ``pool`` by ``method`` (``full``,
    ``lora``, ``probe``, ``none``; a from-scratch model always trains fully), from the cache
    when an identical one was fitted before."""
    scenario, task = state.scenario, state.require_task()
    kind = large_kind(spec)
    seed = derive_seed(scenario.seed, "models", role)
    manifest = ModelManifest(spec.name, dict(spec.options), task.input_shape, task.num_classes)
    key = training_key(
        scenario, spec, training, seed,
        {"labelled_pool": [len(pool), int(pool.sum())], "method": method,
         "adaptation": scenario.training.large.adaptation.model_dump()},
    )  # fmt: skip
    fit = _fit(state, kind, method, pool, training, seed)
    return cached_fit(role, ctx, manifest, key, seed, fit, epochs=training.epochs)


def train_large_stage(state: RunState, ctx: StageContext) -> str:
    """The run's large model: adapted, trained or loaded (see the module docstring)."""
    scenario = state.scenario
    training = scenario.training.large
    pool = labelled_pool(state, training.max_train_samples)
    method = training.adaptation.method
    trained = fit_large(
        state, ctx, role="large", spec=scenario.models.large, training=training, pool=pool,
        method=method if large_kind(scenario.models.large) != "scratch" else "full",
    )  # fmt: skip
    state.models["large"] = trained
    if is_inference_only(trained.model):
        return f"{trained.manifest.name}, {trained.params:,} params, used as it is"
    origin = "from cache" if trained.from_cache else str(trained.info.get("method", "trained"))
    epochs = f", {trained.training.epochs_run} epochs" if trained.training else ""
    return (
        f"{trained.manifest.name}, {trained.params:,} params, {origin} on {len(pool):,} "
        f"labelled frames{epochs}"
    )


def pretrained_metrics(spec: ModelSpec) -> dict[str, Any] | None:
    """``models.large.pretrained``: the checkpoint an ``rf_transformer`` started from (where,
    its SHA-256, parameters, pretraining frames and steps, final held-out reconstruction loss
    against predicting zeros, the command that made it); None for other models."""
    if spec.name != "rf_transformer":
        return None
    checkpoint = str(spec.options.get("checkpoint", "builtin"))
    size = str(spec.options.get("size", "s"))
    directory = checkpoint_directory(checkpoint, size)
    if directory is None:
        return None
    document = read_checkpoint_config(directory)
    pretraining = document.get("pretraining", {})
    return {
        "checkpoint": f"builtin:rf_transformer_{size}" if checkpoint == "builtin" else checkpoint,
        "weights_sha256": document.get("weights_sha256"),
        "parameters": document.get("parameters"),
        "pretraining_frames": pretraining.get("frames"),
        "pretraining_steps": pretraining.get("steps"),
        "batch_size": pretraining.get("batch_size"),
        "mask_ratio": pretraining.get("mask_ratio"),
        "final_reconstruction_loss": pretraining.get("final_reconstruction_loss"),
        "zero_prediction_loss": pretraining.get("zero_prediction_loss"),
        "wall_time_s": pretraining.get("wall_time_s"),
        "seed": pretraining.get("seed"),
        "world": pretraining.get("world"),
        "command": pretraining.get("command"),
    }
