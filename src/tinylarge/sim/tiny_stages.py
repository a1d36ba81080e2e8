"""Stages of the LargeML -> TinyML direction: distil the tiny model, quantize it to int8,
evaluate the int8 model with the integer runtime, check it against ONNX Runtime, and cost it
on every microcontroller profile."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tinylarge.config.scenario import Scenario, TrainingSpec
from tinylarge.models.evaluation import evaluate, predict_logits
from tinylarge.models.training import BatchLoss
from tinylarge.seeding import derive_seed, rng_for
from tinylarge.sim.stage_results import Int8Checks, QuantizationResult
from tinylarge.sim.stages import HIGH_SNR_DB, StageContext, evaluation_metrics, train_or_load
from tinylarge.sim.state import TINY_INT8_ROLE, TINY_LABELS_ROLE, RunState
from tinylarge.tiny import runtime
from tinylarge.tiny.distill import distillation_loss
from tinylarge.tiny.footprint import footprint
from tinylarge.tiny.graph import WEIGHTED, TinyModel
from tinylarge.tiny.mcu import MCU_PROFILES, McuProfile
from tinylarge.tiny.onnx_export import run_onnxruntime
from tinylarge.tiny.qat import quantization_aware_finetune
from tinylarge.tiny.quantize import quantize_model
from tinylarge.tiny.tflm_check import tflm_check


def mcu_profiles(scenario: Scenario) -> dict[str, McuProfile]:
    """The built-in MCU profiles plus the scenario's own (which may replace a built-in)."""
    custom = {
        name: McuProfile(**profile.model_dump())
        for name, profile in scenario.tiny.mcu_profiles.items()
    }
    return {**MCU_PROFILES, **custom}


def check_tiny_config(scenario: Scenario) -> None:
    """Fail early when ``tiny.target_mcu`` names no known profile."""
    profiles = mcu_profiles(scenario)
    if scenario.tiny.target_mcu not in profiles:
        raise ValueError(
            f"tiny.target_mcu = {scenario.tiny.target_mcu!r} is not a known MCU; known: "
            f"{', '.join(sorted(profiles))} (or define it under [tiny.mcu_profiles.<name>])"
        )


def distill_tiny_stage(state: RunState, ctx: StageContext) -> str:
    """Train the deployed tiny model by distillation from the large one (same data and seed
    as the labels-only baseline)."""
    config = state.scenario.tiny.distillation
    if not config.enabled:
        return "disabled: the tiny model is trained from labels only"
    task, large = state.require_task(), state.require_model("large")

    def loss() -> BatchLoss:
        teacher_logits = predict_logits(large.model, task.x_train)
        return distillation_loss(teacher_logits, temperature=config.temperature, alpha=config.alpha)

    trained = train_or_load(
        "tiny",
        state,
        ctx,
        loss=loss,
        key_extra={"distillation": {"teacher": large.cache_key, **config.model_dump()}},
    )
    state.models["tiny"] = trained
    origin = "from cache" if trained.from_cache else "distilled"
    return (
        f"{trained.manifest.name}, {origin} at T = {config.temperature:g}, alpha = {config.alpha:g}"
    )


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == y))


def _int8_accuracy(model: TinyModel, x: np.ndarray, y: np.ndarray) -> float:
    out = runtime.run(model, model.quantize_input(x), arithmetic="tflm")
    return _accuracy(out.reshape(len(x), -1).astype(np.float32), y)


def quantize_tiny_stage(state: RunState, ctx: StageContext) -> str:
    """Quantize the tiny model to int8 (post-training), with quantization-aware fine-tuning
    when the scenario asks for it or when post-training loses too much accuracy."""
    scenario, task = state.scenario, state.require_task()
    config = scenario.tiny.quantization
    tiny = state.require_model("tiny")
    order = rng_for(scenario.seed, "tiny", "quantization").permutation(task.n_train)
    calibration_x = task.x_train[order[: config.calibration_samples]]
    check = order[-config.check_samples :]
    x_check, y_check = task.x_train[check], task.y_train[check]
    manifest = {
        "source_model": {"name": tiny.manifest.name, "options": dict(tiny.manifest.options)},
        "source_model_cache_key": tiny.cache_key,
    }
    model = quantize_model(tiny.model, calibration_x, task.class_names, extra_manifest=manifest)
    float_acc = _accuracy(predict_logits(tiny.model, x_check), y_check)
    ptq_acc = _int8_accuracy(model, x_check, y_check)
    drop_pp = 100.0 * (float_acc - ptq_acc)
    info = QuantizationResult(len(check), float_acc, ptq_acc, drop_pp, config.qat)
    if config.qat == "on" or (config.qat == "auto" and drop_pp > config.qat_threshold_pp):
        training = scenario.training.tiny
        spec = TrainingSpec(
            epochs=config.qat_epochs,
            batch_size=training.batch_size,
            learning_rate=config.qat_learning_rate,
            weight_decay=training.weight_decay,
            val_fraction=training.val_fraction,
            patience_epochs=0,
        )

        def progress(epoch: int, batch: int, batches: int, val_acc: float | None) -> None:
            ctx.reporter.training("tiny (QAT)", epoch, spec.epochs, batch, batches, val_acc)

        folded, report = quantization_aware_finetune(
            tiny.model,
            task.x_train,
            task.y_train,
            spec,
            calibration_x=calibration_x,
            seed=derive_seed(scenario.seed, "tiny", "qat"),
            progress=progress,
        )
        qat_model = quantize_model(folded, calibration_x, task.class_names, extra_manifest=manifest)
        qat_acc = _int8_accuracy(qat_model, x_check, y_check)
        info = replace(
            info, qat_applied=True, qat_accuracy_check=qat_acc, qat_epochs=report.epochs_run
        )
        if info.qat_kept:
            model = qat_model
    state.tiny_int8 = model
    state.quantization = info
    method = "QAT" if info.qat_kept else "post-training"
    return (
        f"int8 ({method}): {len(model.ops)} ops; on {len(check):,} training frames float "
        f"{float_acc:.1%} -> int8 {max(ptq_acc, info.qat_accuracy_check or 0.0):.1%}"
    )


def evaluate_int8_stage(state: RunState, ctx: StageContext) -> str:
    """Run the int8 model on the test set with the integer runtime (TFLM arithmetic), compare
    its ONNX-arithmetic output with ONNX Runtime's and its TFLM arithmetic with TensorFlow Lite
    Micro's interpreter on the exported ``.tflite``, and cost it on every MCU profile."""
    task, model = state.require_task(), state.require_tiny_int8()
    x_q = model.quantize_input(task.x_test)
    out_tflm = runtime.run(model, x_q, arithmetic="tflm").reshape(task.n_test, -1)
    logits = model.dequantize_output(out_tflm)
    state.logits[TINY_INT8_ROLE] = logits
    state.evaluations[TINY_INT8_ROLE] = evaluate(
        np.argmax(logits, axis=1), task.y_test, task.num_classes, task.meta_test.get("snr_db")
    )
    out_onnx_mode = runtime.run(model, x_q, arithmetic="onnx").reshape(task.n_test, -1)
    out_ort = run_onnxruntime(model, x_q).reshape(task.n_test, -1)
    diff_onnx = np.abs(out_onnx_mode.astype(np.int16) - out_ort.astype(np.int16))
    diff_tflm = np.abs(out_tflm.astype(np.int16) - out_ort.astype(np.int16))
    float_tiny = state.logits.get("tiny")
    state.int8_checks = Int8Checks(
        frames=task.n_test,
        onnx_arithmetic_equal_frames_fraction=float(np.mean(diff_onnx.max(axis=1) == 0)),
        onnx_arithmetic_max_abs_diff_lsb=int(diff_onnx.max()),
        tflm_arithmetic_equal_frames_fraction=float(np.mean(diff_tflm.max(axis=1) == 0)),
        tflm_arithmetic_max_abs_diff_lsb=int(diff_tflm.max()),
        tflm_vs_onnxruntime_same_class_fraction=float(
            np.mean(out_tflm.argmax(axis=1) == out_ort.argmax(axis=1))
        ),
        int8_vs_float_same_class_fraction=None
        if float_tiny is None
        else float(np.mean(out_tflm.argmax(axis=1) == float_tiny.argmax(axis=1))),
    )
    # the .tflite export run by TensorFlow Lite Micro itself, on every test frame
    try:
        state.tflm_check = tflm_check(model, x_q)
    except ValueError as error:  # TFLM refused the file (e.g. an op outside its ranges)
        state.skip("models.tiny_int8.tflm_check", str(error))
        state.tflm_check = None
    state.footprints = {
        name: footprint(model, profile) for name, profile in mcu_profiles(state.scenario).items()
    }
    target = state.scenario.tiny.target_mcu
    fp = state.footprints[target]
    exact = state.int8_checks.onnx_arithmetic_equal_frames_fraction
    return (
        f"int8 accuracy {state.evaluations[TINY_INT8_ROLE].accuracy:.1%}; ONNX Runtime "
        f"bit-exact on {exact:.2%} of frames; TFLM interpreter: {_tflm_summary(state)}; "
        f"{target}: {fp.latency_s * 1e3:.2f} ms, "
        f"{fp.energy_j * 1e6:.0f} uJ, {'fits' if fp.fits else 'does NOT fit'}"
    )


def _tflm_summary(state: RunState) -> str:
    check = state.tflm_check
    if check is None:
        return "skipped, " + state.skipped.get("models.tiny_int8.tflm_check", "")
    return f"{check.mismatches:,} of {check.elements:,} outputs differ"


def tiny_int8_metrics(state: RunState) -> dict[str, Any] | None:
    """``models.tiny_int8``: accuracy of the integer runtime plus footprint and MCU costs, the
    quantization and the checks against ONNX Runtime, TFLM and the generated C; None before
    the int8 model was evaluated."""
    model = state.tiny_int8
    checks = state.int8_checks
    if model is None or checks is None or TINY_INT8_ROLE not in state.evaluations:
        return None
    target = state.scenario.tiny.target_mcu
    fp = state.footprints[target]
    params = sum(
        model.constants[f"{op.name}.{part}"].size
        for op in model.ops
        if op.kind in WEIGHTED
        for part in ("weight", "bias")
    )
    task = state.require_task()
    return {
        **evaluation_metrics(state.evaluations[TINY_INT8_ROLE], task.class_names),
        "params": params,
        "macs": fp.macs,
        "flash_bytes": fp.flash_bytes,
        "peak_sram_bytes": fp.peak_sram_bytes,
        "target_mcu": target,
        "latency_s": {name: f.latency_s for name, f in state.footprints.items()},
        "energy_j": {name: f.energy_j for name, f in state.footprints.items()},
        "fits": {name: f.fits for name, f in state.footprints.items()},
        "footprint": fp.to_dict(),
        "quantization": state.quantization.metrics() if state.quantization is not None else {},
        "onnxruntime_check": checks.metrics(),
        "tflm_check": state.tflm_check.to_dict() if state.tflm_check is not None else {},
        **({"c_check": state.c_check.to_dict()} if state.c_check is not None else {}),
        "source_model_sha256": model.manifest.get("source_model_sha256"),
    }


def distillation_metrics(state: RunState) -> dict[str, Any] | None:
    """``distillation``: the tiny model from labels alone vs distilled (same data and seed);
    None when distillation is off or either model was not evaluated."""
    config = state.scenario.tiny.distillation
    evaluations = state.evaluations
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


__all__ = [
    "TINY_LABELS_ROLE",
    "check_tiny_config",
    "distill_tiny_stage",
    "distillation_metrics",
    "evaluate_int8_stage",
    "mcu_profiles",
    "quantize_tiny_stage",
    "tiny_int8_metrics",
]
