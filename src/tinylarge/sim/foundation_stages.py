"""The ``foundation`` stage: what pretraining buys, measured against a model trained from scratch.

* **Label efficiency**: the pretrained model adapted by linear probe, LoRA and full
  fine-tuning, and the baseline (``large_resnet``) trained from scratch, each on 1, 10 and 100
  labelled frames per class (nested subsets, a fixed number of optimizer steps) and on all the
  labelled frames the edge has (`tinylarge.sim.large_stages.labelled_pool`); test accuracy
  overall and at SNR >= 6 dB. The goal follows the wireless foundation-model papers (LWM,
  arXiv 2411.08872; IQFM, arXiv 2506.06718): the pretrained model with 10 labels per class
  matches the baseline with 100.
* **Out of distribution**: both all-label models on test sets whose SNR or impairments lie
  outside the fine-tuning data (but inside the pretraining world).
* **Distillation**: the tiny model distilled from the baseline, quantized to int8 like the
  run's own (distilled from the foundation model): same architecture, data, seed and MCU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from torch import nn

from tinylarge.config.scenario import RadioTaskConfig, TrainingSpec
from tinylarge.data.radio import generate_radio_frames
from tinylarge.models.evaluation import predict_logits
from tinylarge.models.training import BatchLoss
from tinylarge.seeding import rng_for
from tinylarge.sim.foundation_results import FoundationResult, OodSet, Score
from tinylarge.sim.large_stages import fit_large, labelled_pool, large_kind
from tinylarge.sim.stages import HIGH_SNR_DB, StageContext, train_or_load
from tinylarge.sim.state import RunState, TrainedModel
from tinylarge.tiny import runtime
from tinylarge.tiny.distill import distillation_loss
from tinylarge.tiny.quantize import quantize_model

#: Test frames every label-efficiency score is measured on (a seeded subset of the test set).
EVAL_FRAMES = 5000


def few_shot_pool(state: RunState, per_class: int) -> npt.NDArray[np.int64]:
    """``per_class`` labelled training frames of each class: the first of each class in one
    seeded order, so the sets are nested (the 10 contain the 1, the 100 the 10)."""
    task = state.require_task()
    order = rng_for(state.scenario.seed, "foundation", "few-shot").permutation(task.n_train)
    labels = task.y_train[order]
    chosen = [order[labels == c][:per_class] for c in range(task.num_classes)]
    if any(len(c) < per_class for c in chosen):
        raise ValueError(
            f"foundation.labels_per_class = {per_class} exceeds the training frames of a class"
        )
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def few_shot_training(state: RunState, n_frames: int) -> TrainingSpec:
    """A fixed number of optimizer steps on ``n_frames`` labels (no validation split)."""
    config = state.scenario.foundation.few_shot
    batch = min(config.batch_size, n_frames)
    epochs = math.ceil(config.steps / math.ceil(n_frames / batch))
    return TrainingSpec(
        epochs=epochs, batch_size=batch, learning_rate=config.learning_rate, val_fraction=0.0,
        patience_epochs=0,
    )  # fmt: skip


class _Scorer:
    """Accuracy of models on a fixed seeded subset of the test frames."""

    def __init__(self, state: RunState) -> None:
        task = state.require_task()
        n = min(EVAL_FRAMES, task.n_test)
        self.idx = np.sort(rng_for(state.scenario.seed, "foundation", "eval").permutation(
            task.n_test)[:n])  # fmt: skip
        self.x, self.y = task.x_test[self.idx], task.y_test[self.idx]
        snr = task.meta_test.get("snr_db")
        self.high = None if snr is None else np.asarray(snr)[self.idx] >= HIGH_SNR_DB

    def score(self, trained: TrainedModel) -> Score:
        correct = np.argmax(predict_logits(trained.model, self.x), axis=1) == self.y
        report = trained.training
        return Score(
            accuracy=float(correct.mean()),
            accuracy_snr_ge_6db=None if self.high is None else float(correct[self.high].mean()),
            labelled_frames=int(trained.info.get("labelled_frames", 0)),
            trainable_parameters=int(trained.info.get("trainable_parameters", 0)),
            train_time_s=report.train_time_s if report is not None else 0.0,
        )


def _label_efficiency(
    state: RunState, ctx: StageContext, scorer: _Scorer
) -> tuple[dict[str, dict[str, Score]], TrainedModel]:
    """Every row and column of the label-efficiency table; also the all-label baseline."""
    scenario = state.scenario
    config, large = scenario.foundation, state.require_model("large")
    spec, training = scenario.models.large, scenario.training.large
    main_method = training.adaptation.method
    pool = labelled_pool(state, training.max_train_samples)
    rows: dict[str, dict[str, Score]] = {f"foundation_{m}": {} for m in config.methods}
    rows[config.baseline.name] = {}
    for k in config.labels_per_class:
        few = few_shot_pool(state, k)
        few_training = few_shot_training(state, len(few))
        for method in config.methods:
            fitted = fit_large(state, ctx, role=f"foundation_{method}_{k}", spec=spec,
                               training=few_training, pool=few, method=method)  # fmt: skip
            rows[f"foundation_{method}"][str(k)] = scorer.score(fitted)
        fitted = fit_large(state, ctx, role=f"baseline_{k}", spec=config.baseline,
                           training=few_training, pool=few, method="full")  # fmt: skip
        rows[config.baseline.name][str(k)] = scorer.score(fitted)
    for method in config.methods:
        fitted = large if method == main_method else fit_large(
            state, ctx, role=f"foundation_{method}", spec=spec, training=training, pool=pool,
            method=method,
        )  # fmt: skip
        rows[f"foundation_{method}"]["all"] = scorer.score(fitted)
    baseline = fit_large(state, ctx, role="baseline", spec=config.baseline,
                         training=config.baseline_training, pool=pool, method="full")  # fmt: skip
    rows[config.baseline.name]["all"] = scorer.score(baseline)
    return rows, baseline


#: Out-of-distribution test sets: a name, what differs from the task, and the task settings
#: changed. Every one lies inside the pretraining world (`PretrainingWorld`).
OOD_SETS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("snr_above", "SNR 22-30 dB, above the fine-tuning range",
     {"snr_db_min": 22.0, "snr_db_max": 30.0}),
    ("rayleigh_6_taps", "Rayleigh fading over 6 taps (task: Rician, 3 taps)",
     {"fading": "rayleigh", "multipath_taps": 6, "tap_decay_db": 3.0}),
    ("cfo_x10", "carrier frequency offset up to 0.01 cycles/sample (task: 0.001)",
     {"cfo_max_cycles_per_sample": 0.01}),
    ("phase_noise_x6", "phase noise 0.03 rad per sample (task: 0.005)",
     {"phase_noise_std_rad": 0.03}),
    ("sps_4", "4 samples per symbol (task: 8): twice the symbol rate",
     {"samples_per_symbol": 4}),
)  # fmt: skip


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(predict_logits(model, x), axis=1) == y))


def _out_of_distribution(
    state: RunState, foundation: nn.Module, baseline: nn.Module, frames: int
) -> dict[str, OodSet]:
    """Accuracy of both models on each of `OOD_SETS` (radio task only)."""
    task_config: RadioTaskConfig = state.scenario.task.radio
    sets = {}
    for name, description, changes in OOD_SETS:
        settings = task_config.model_copy(update=changes).model_dump()
        settings.pop("n_train"), settings.pop("n_test")
        rng = rng_for(state.scenario.seed, "foundation", "ood", name)
        x, y, _snr = generate_radio_frames(frames, rng, **settings)
        sets[name] = OodSet(description, _accuracy(foundation, x, y), _accuracy(baseline, x, y))
    return sets


def _int8_scores(state: RunState, student: nn.Module) -> dict[str, float]:
    """Float and int8 (post-training quantization, the run's calibration frames, TFLM
    arithmetic) test accuracy of a tiny student."""
    scenario, task = state.scenario, state.require_task()
    config = scenario.tiny.quantization
    order = rng_for(scenario.seed, "tiny", "quantization").permutation(task.n_train)
    int8 = quantize_model(student, task.x_train[order[: config.calibration_samples]],
                          task.class_names)  # fmt: skip
    out = runtime.run(int8, int8.quantize_input(task.x_test), arithmetic="tflm")
    correct = np.argmax(out.reshape(task.n_test, -1), axis=1) == task.y_test
    scores = {
        "float_accuracy": _accuracy(student, task.x_test, task.y_test),
        "int8_accuracy": float(correct.mean()),
    }
    snr = task.meta_test.get("snr_db")
    if snr is not None:
        scores["int8_accuracy_snr_ge_6db"] = float(correct[np.asarray(snr) >= HIGH_SNR_DB].mean())
    return scores


def _distillation(state: RunState, ctx: StageContext, baseline: TrainedModel) -> dict[str, Any]:
    """The run's tiny model (distilled from the foundation model) against the same tiny model
    distilled from the baseline: same data, seed, temperature, alpha and quantization."""
    task, config = state.require_task(), state.scenario.tiny.distillation

    def loss() -> BatchLoss:
        teacher_logits = predict_logits(baseline.model, task.x_train)
        return distillation_loss(teacher_logits, temperature=config.temperature, alpha=config.alpha)

    from_baseline = train_or_load(
        "tiny_from_baseline", state, ctx, spec_role="tiny", loss=loss,
        key_extra={"distillation": {"teacher": baseline.cache_key, **config.model_dump()}},
    )  # fmt: skip
    large = state.require_model("large")
    return {
        "from_foundation": {
            "teacher": large.manifest.name,
            "teacher_accuracy": state.evaluations["large"].accuracy,
            **_int8_scores(state, state.require_model("tiny").model),
        },
        "from_baseline": {
            "teacher": baseline.manifest.name,
            "teacher_accuracy": _accuracy(baseline.model, task.x_test, task.y_test),
            **_int8_scores(state, from_baseline.model),
        },
    }


def foundation_stage(state: RunState, ctx: StageContext) -> str:
    """Label efficiency, out-of-distribution accuracy and distillation (module docstring)."""
    scenario = state.scenario
    config = scenario.foundation
    if not config.enabled:
        return "disabled"
    if large_kind(scenario.models.large) != "pretrained":
        state.skip(
            "foundation.label_efficiency",
            f"models.large = {scenario.models.large.name!r} is not a pretrained model",
        )
        return "skipped: the large model is not pretrained"  # fmt: skip
    scorer = _Scorer(state)
    result = FoundationResult(eval_frames=len(scorer.idx), baseline=config.baseline.name)
    result.label_efficiency, baseline = _label_efficiency(state, ctx, scorer)
    large = state.require_model("large").model
    result.in_distribution = {
        "foundation": _accuracy(large, scorer.x, scorer.y),
        "baseline": _accuracy(baseline.model, scorer.x, scorer.y),
    }
    if config.out_of_distribution and scenario.task.name == "radio":
        result.out_of_distribution = _out_of_distribution(
            state, large, baseline.model, config.ood_frames
        )
    elif config.out_of_distribution:
        state.skip("foundation.out_of_distribution", "needs the generated radio task")
    if config.distill_from_baseline and scenario.tiny.distillation.enabled:
        result.distillation = _distillation(state, ctx, baseline)
    state.foundation = result
    goals = result.goals()
    met = sum(1 for v in goals.values() if v)
    return f"{met} of {sum(1 for v in goals.values() if v is not None)} goals met: " + ", ".join(
        f"{name} {'yes' if v else 'no'}" for name, v in goals.items() if v is not None
    )


__all__ = ["OOD_SETS", "few_shot_pool", "few_shot_training", "foundation_stage"]
