"""The report's TinyML section: distillation, int8 quantization, ONNX Runtime check, MCU costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinylarge.report import plots
from tinylarge.report.html import Section, image, paragraph, table
from tinylarge.sim.state import TINY_INT8_ROLE, RunResult
from tinylarge.tiny.footprint import LAYER_TABLE_COLUMNS, comparison_rows, layer_table_rows
from tinylarge.tiny.measured import applies_to


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _distillation(metrics: dict[str, Any]) -> str:
    d = metrics.get("distillation")
    if d is None:
        return paragraph("Distillation is disabled: the tiny model is trained from labels only.")
    high = [k for k in d if k.endswith("_labels_only") and k.startswith("accuracy_snr")]
    header = ["tiny model", "test accuracy"] + (["accuracy, SNR >= 6 dB"] if high else [])
    rows = []
    for label, suffix in (("from labels only", "labels_only"), ("distilled", "distilled")):
        row = [label, _pct(d[f"accuracy_{suffix}"])]
        if high:
            row.append(_pct(d[high[0].replace("labels_only", suffix)]))
        rows.append(row)
    body = paragraph(
        f"Knowledge distillation from the large model (temperature {d['temperature']:g}, soft "
        f"weight {d['alpha']:g}), same architecture, data and seed as the labels-only model: "
        f"{d['gain_pp']:+.1f} percentage points."
    )
    return body + table(header, rows)


def _quantization(metrics: dict[str, Any]) -> str:
    m = metrics["models"][TINY_INT8_ROLE]
    q, check = m["quantization"], m["onnxruntime_check"]
    float_acc = metrics["models"].get("tiny", {}).get("accuracy")
    rows = [
        ["float tiny model, test set", _pct(float_acc)],
        ["int8 tiny model (integer runtime, TFLM arithmetic), test set", _pct(m["accuracy"])],
        [f"float, {q['check_frames']:,} training frames", _pct(q["float_accuracy_check"])],
        ["int8 post-training, same frames", _pct(q["ptq_accuracy_check"])],
    ]
    if q.get("qat_applied"):
        rows.append(["int8 after quantization-aware fine-tuning", _pct(q["qat_accuracy_check"])])
    body = table(["model", "accuracy"], rows)
    body += paragraph(
        "Integer runtime vs ONNX Runtime on the exported QLinear ONNX model, over "
        f"{check['frames']:,} test frames: ONNX arithmetic mode bit-exact on "
        f"{_pct(check['onnx_arithmetic_equal_frames_fraction'])} of frames (max difference "
        f"{check['onnx_arithmetic_max_abs_diff_lsb']} LSB); TFLite Micro arithmetic mode equal "
        f"on {_pct(check['tflm_arithmetic_equal_frames_fraction'])} (max "
        f"{check['tflm_arithmetic_max_abs_diff_lsb']} LSB, same class on "
        f"{_pct(check['tflm_vs_onnxruntime_same_class_fraction'])})."
    )
    tflm = m.get("tflm_check", {})
    if "frames" in tflm:
        body += paragraph(
            "**TensorFlow Lite Micro itself**: the exported `tiny_int8.tflite` (int8, schema 3) "
            f"run by TFLM's interpreter and reference kernels on the same {tflm['frames']:,} "
            f"frames: {tflm['mismatches']:,} of {tflm['elements']:,} output values differ from "
            f"the integer runtime's TFLM arithmetic (largest difference {tflm['max_abs_lsb']} "
            "LSB). The file runs unchanged on a microcontroller with TFLM."
        )
    return body


def _generated_c(result: RunResult, metrics: dict[str, Any]) -> str:
    """The generated C on an emulated Cortex-M4, and estimate vs measurement."""
    m = metrics["models"][TINY_INT8_ROLE]
    check = result.c_check
    if check is None:
        reason = m.get("c_check", {}).get("skipped", "not run")
        return paragraph(f"**Generated C on a Cortex-M4**: not measured in this run ({reason}).")
    body = paragraph(
        "**Generated C on a Cortex-M4, measured.** `tiny_int8_c/` is the model as a "
        "self-contained C99 library (const weights, one static activation arena at the memory "
        "plan's offsets, TFLM's reference integer kernels, no interpreter, no malloc). Built "
        "with `arm-none-eabi-gcc -mcpu=cortex-m4 -O2` and run under QEMU (`mps2-an386`) on "
        f"{check.frames:,} test frames: {check.mismatches:,} output values differ from the "
        "integer runtime. Flash = text + data of the library's objects (`arm-none-eabi-size`); "
        "SRAM = its data + bss (the arena) + the stack's high-water mark (painted); "
        "instructions counted by a QEMU plugin. Instructions are not cycles: the latency "
        "below is a lower bound (each Cortex-M4 instruction takes at least one cycle). In the "
        "MCU table above, the profiles whose runtime is `tinylarge generated C` use this "
        "measurement instead of an estimate."
    )
    target = result.scenario.tiny.target_mcu
    estimate = result.footprints[target]
    if applies_to(estimate.mcu):
        body += table(
            ["", f"estimate: {estimate.mcu.runtime} on {target}", "measured: generated C"],
            comparison_rows(estimate, check),
        )
    else:
        body += paragraph(
            f"Measured: flash {check.flash_bytes:,} B, SRAM {check.sram_bytes:,} B (stack "
            f"{check.stack_bytes:,} B), {check.instructions_per_inference:,.0f} instructions "
            f"per inference ({check.instructions_per_mac:.2f} per MAC). The target {target} "
            f"has a {estimate.mcu.core}, not a Cortex-M4: no side-by-side comparison."
        )
    return body


def _footprint(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> str:
    m = metrics["models"][TINY_INT8_ROLE]
    rows = []
    for name, fp in result.footprints.items():
        rows.append(
            [
                name,
                fp.mcu.part,
                f"{fp.flash_bytes:,}",
                f"{fp.mcu.flash_bytes:,}",
                f"{fp.peak_sram_bytes:,}",
                f"{fp.mcu.sram_bytes:,}",
                f"{fp.latency_s * 1e3:.3f}",
                f"{fp.energy_j * 1e6:.1f}",
                "yes" if fp.fits else "no: " + "; ".join(fp.violations),
            ]
        )
    body = paragraph(
        f"{m['macs']:,} MACs and {m['params']:,} int8/int32 parameters per inference. Latency "
        "= MACs x measured cycles per MAC / clock; energy = power during inference x latency "
        "(sources in tinylarge.tiny.mcu)."
    )
    body += table(
        [
            "MCU",
            "part",
            "flash (B)",
            "flash available (B)",
            "peak SRAM (B)",
            "SRAM available (B)",
            "latency (ms)",
            "energy (uJ)",
            "fits",
        ],
        rows,
    )
    body += image(
        plots.mcu_costs(m["latency_s"], m["energy_j"], m["fits"], plots_dir / "mcu_costs.png"),
        "Latency and energy of one inference of the int8 tiny model per microcontroller.",
    )
    target = result.footprints[m["target_mcu"]]
    body += paragraph(f"Per layer (target MCU {m['target_mcu']}):")
    body += table(LAYER_TABLE_COLUMNS, layer_table_rows(target))
    return body


def tiny_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section | None:
    """Distillation, quantization and microcontroller footprint of the tiny model."""
    if TINY_INT8_ROLE not in metrics["models"]:
        return None
    body = _distillation(metrics) + _quantization(metrics) + _footprint(result, metrics, plots_dir)
    body += _generated_c(result, metrics)
    return Section("TinyML: distillation, int8 and microcontrollers", body)
