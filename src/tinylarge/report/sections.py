"""The report's sections, one function each; a stage added to the pipeline adds one here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinylarge.config import scenario_to_toml
from tinylarge.models.evaluation import evaluate
from tinylarge.report import plots
from tinylarge.report.colearning_section import colearning_section
from tinylarge.report.foundation_section import foundation_section
from tinylarge.report.html import Section, image, paragraph, preformatted, table
from tinylarge.report.hybrid_lm_section import hybrid_lm_section, hybrid_lm_summary
from tinylarge.report.metrics import HIGH_SNR_DB
from tinylarge.report.network_section import network_section
from tinylarge.report.policies_section import policies_section
from tinylarge.report.security_section import security_section
from tinylarge.report.summary import summary_block
from tinylarge.report.tiny_section import tiny_section
from tinylarge.sim.state import ROLES, TINY_INT8_ROLE, RunResult

#: Models whose confusion matrices the report shows.
CONFUSION_ROLES = (*ROLES, TINY_INT8_ROLE)

SectionBuilder = Callable[[RunResult, dict[str, Any], Path], Section | None]


def _pct(value: float | None) -> str:
    """A fraction as a percentage, for columns whose header carries the unit (%)."""
    return "n/a" if value is None else f"{100 * value:.1f}"


def summary_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section:
    """The system's answer, above everything else (`tinylarge.report.summary`)."""
    return Section(
        "Summary", summary_block(metrics, result.scenario.policies.target_offload), lead=True
    )


def _model_table(metrics: dict[str, Any]) -> str:
    """Test accuracy of every model, and the large model's headroom over the tiny one."""
    models = metrics["models"]
    high = f"accuracy_snr_ge_{HIGH_SNR_DB:g}db"
    has_snr = any(high in m for m in models.values())
    header = ["model", "architecture", "parameters", "test accuracy (%)"]
    header += [f"accuracy, SNR >= {HIGH_SNR_DB:g} dB (%)"] if has_snr else []
    rows = []
    for role, m in models.items():
        name = m.get("name", f"int8 of {models.get('tiny', {}).get('name', 'tiny')}")
        row = [role, name, f"{m['params']:,}", _pct(m["accuracy"])]
        rows.append(row + ([_pct(m.get(high))] if has_snr else []))
    body = table(header, rows)
    comparison = metrics.get("comparison", {})
    if f"large_minus_tiny_{high}" in comparison:
        gap = 100 * comparison[f"large_minus_tiny_{high}"]
        body += paragraph(
            f"The large model is {gap:+.1f} percentage points more accurate than the tiny one on "
            f"frames with SNR >= {HIGH_SNR_DB:g} dB: the headroom that offloading can exploit."
        )
    return body


def task_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section:
    task = result.require_task()
    body = paragraph(task.description) if task.description else ""
    body += table(
        ["task", "train samples", "test samples", "sample shape", "classes"],
        [
            [
                task.name,
                task.n_train,
                task.n_test,
                str(task.input_shape),
                ", ".join(task.class_names),
            ]
        ],
    )
    if "snr_db" in task.meta_test and task.name == "radio":
        body += image(
            plots.radio_examples(task, plots_dir / "radio_examples.png"),
            "One test frame per class at the highest SNR: I and Q over time (top), I/Q plane "
            "(bottom).",
        )
    return Section("Task", body)


def devices_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section | None:
    if result.partition is None or "devices" not in metrics:
        return None
    d = metrics["devices"]
    s = d["samples_per_device"]
    body = paragraph(
        f"{d['count']} devices, partition '{d['partition']}': {s['min']} to {s['max']} training "
        f"samples per device (median {s['median']:g})."
    )
    body += image(
        plots.device_label_mix(result.partition, result.require_task(), plots_dir / "devices.png"),
        "Class mix of each device's training data.",
    )
    task = result.require_task()
    if "snr_db" in task.meta_train:
        body += image(
            plots.device_snr(
                result.partition, task.meta_train["snr_db"], plots_dir / "device_snr.png"
            ),
            "SNR of each device's training frames (partition 'snr': device 0 is the farthest).",
        )
    return Section("Devices", body)


def models_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section:
    rows = []
    for role, m in metrics["models"].items():
        if "name" not in m:  # the int8 model has its own section
            continue
        t = m.get("training", {})
        rows.append(
            [
                role,
                m["name"],
                str(m["options"] or "defaults"),
                f"{m['params']:,}",
                t.get("epochs_run", "n/a"),
                _pct(t.get("best_val_accuracy")),
                f"{t['train_time_s']:.1f}" if "train_time_s" in t else "n/a",
                "yes" if m["from_cache"] else "no",
            ]
        )
    body = table(
        [
            "model",
            "architecture",
            "options",
            "parameters",
            "epochs",
            "best validation accuracy",
            "training time (s)",
            "from cache",
        ],
        rows,
    )
    reports = {r: m.training for r, m in result.models.items()}
    with_history = {r: rep for r, rep in reports.items() if rep is not None and rep.history}
    if with_history:
        body += image(
            plots.training_curves(with_history, plots_dir / "training.png"),
            "Accuracy per epoch (the best-validation-loss weights are kept).",
        )
    return Section("Models and training", body)


def accuracy_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section:
    task = result.require_task()
    body = _model_table(metrics)
    evaluations = dict(result.evaluations)
    if any(len(ev.snr_db) for ev in evaluations.values()):
        body += image(
            plots.accuracy_vs_snr(evaluations, plots_dir / "accuracy_vs_snr.png"),
            "Test accuracy per SNR bucket (tiny_labels: the tiny model trained from labels "
            "alone; tiny: distilled; tiny_int8: its int8 version on the integer runtime).",
        )
    snr = task.meta_test.get("snr_db")
    for role, ev in evaluations.items():
        if role not in CONFUSION_ROLES:
            continue
        path = plots_dir / f"confusion_{role}.png"
        body += image(
            plots.confusion_matrix(ev, task.class_names, f"{role} model, all SNRs", path),
            f"Confusion matrix of the {role} model over all test frames (row-normalised, %).",
        )
        high = snr >= HIGH_SNR_DB if snr is not None else None
        if high is not None and high.any() and role in result.logits:
            high_ev = evaluate(
                result.logits[role][high].argmax(1), task.y_test[high], task.num_classes
            )
            title = f"{role} model, SNR >= {HIGH_SNR_DB:g} dB"
            body += image(
                plots.confusion_matrix(
                    high_ev, task.class_names, title, plots_dir / f"confusion_{role}_high_snr.png"
                ),
                f"Confusion matrix of the {role} model on frames with SNR >= {HIGH_SNR_DB:g} dB.",
            )
    rows = [
        [name] + [_pct(metrics["models"][r]["accuracy_by_class"][name]) for r in evaluations]
        for name in task.class_names
    ]
    body += table(["class", *(f"{role} (%)" for role in evaluations)], rows)
    return Section("Accuracy", body)


def run_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section:
    timings = metrics["timing_s"]
    body = table(["stage", "wall time (s)"], [[k, f"{v:.1f}"] for k, v in timings.items()])
    body += paragraph(
        "The resolved scenario (saved as scenario.toml; re-running it gives the same numbers):",
        "note",
    )
    body += preformatted(scenario_to_toml(result.scenario))
    return Section("Run", body)


#: Report sections in order.
SECTIONS: tuple[SectionBuilder, ...] = (
    summary_section,
    task_section,
    devices_section,
    models_section,
    accuracy_section,
    tiny_section,
    foundation_section,
    network_section,
    policies_section,
    colearning_section,
    security_section,
    run_section,
)


def scenario_is_text(result: RunResult) -> bool:
    """Whether the run is a text run (hybrid language models) rather than classification."""
    return result.scenario.task.name == "text"


def text_sections(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> list[Section]:
    """The sections of a text run's report: summary, hybrid language models, the run."""
    built = [hybrid_lm_summary(metrics), hybrid_lm_section(metrics, plots_dir)]
    return [s for s in built if s is not None] + [run_section(result, metrics, plots_dir)]
