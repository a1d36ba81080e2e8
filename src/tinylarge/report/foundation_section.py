"""The report's foundation-model section, read from ``metrics.json`` alone.

What the large model is (``models.large.pretrained``), how it was adapted to the task
(``models.large.adaptation``), and what pretraining buys against the same task learnt from
scratch (``foundation``): label efficiency, accuracy out of distribution, and the int8 tiny
student each teacher distils; then each goal as met or not met with the numbers behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tinylarge.report import plots
from tinylarge.report.html import Section, image, paragraph, preformatted, table
from tinylarge.report.notes import is_skipped, ran
from tinylarge.sim.state import RunResult

#: The section's title (the summary points readers to it).
TITLE = "The foundation model"

#: The foundation model's label-efficiency rows: how each adapts the pretrained encoder.
ADAPTATIONS = {
    "foundation_probe": "linear probe",
    "foundation_lora": "LoRA",
    "foundation_full": "full fine-tuning",
}

#: ``models.large.adaptation.method`` in words.
METHOD_WORDS = {
    "full": "full fine-tuning (every weight trained from the pretrained start)",
    "lora": "LoRA (pretrained weights frozen, low-rank updates of the linear layers trained)",
    "probe": "a linear probe (pretrained encoder frozen, only the task head trained)",
    "none": "no adaptation (the pretrained weights as they are)",
    "scratch": "training from random initialisation (the pretrained weights unused)",
}

#: Each goal in words, as the goal table and the summary name it.
GOAL_WORDS = {
    "ten_x_label_efficiency": "10x label efficiency (10 labels per class match the baseline's 100)",
    "all_labels_at_least_baseline": "with all labels, at least as accurate as the baseline",
    "out_of_distribution_loses_less": "a smaller accuracy loss out of distribution",
    "distilled_at_least_as_accurate": "an int8 student at least as accurate as the baseline's",
}

#: ``models.large.adaptation.method`` as the summary says it.
_ADAPTED = {
    "full": "adapted by full fine-tuning",
    "lora": "adapted by LoRA",
    "probe": "adapted by a linear probe",
    "none": "used without adaptation",
    "scratch": "but trained here from random weights",
}

_STATUS = {True: "met", False: "not met", None: "not measured"}


def _pct(value: float | None) -> str:
    """A fraction as a percentage, for columns whose header carries the unit (%)."""
    return "n/a" if value is None else f"{100 * value:.1f}"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int | float) else "n/a"


def label_order(labels: Any) -> list[str]:
    """Labels-per-class keys in increasing order, ``"all"`` last: ``["1", "10", "100", "all"]``."""
    return sorted(labels, key=lambda k: (k == "all", float(k) if k != "all" else 0.0))


def row_words(row: str, baseline: str) -> str:
    """A label-efficiency row in words (``foundation_lora`` -> ``foundation + LoRA``)."""
    if row == baseline:
        return f"{row} (from scratch)"
    return f"foundation + {ADAPTATIONS[row]}" if row in ADAPTATIONS else row


def _best(rows: Mapping[str, Any], labels: str) -> tuple[str, float] | None:
    """The most accurate foundation row at ``labels`` per class: (row, accuracy)."""
    candidates = [
        (row, scores[labels]["accuracy"])
        for row, scores in rows.items()
        if row.startswith("foundation_") and labels in scores
    ]
    return max(candidates, key=lambda c: c[1]) if candidates else None


def _large(metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    large = metrics.get("models", {}).get("large", {})
    return large if isinstance(large, Mapping) else {}


def _world_words(world: Mapping[str, Any] | None) -> str:
    """The pretraining world in a sentence fragment."""
    if not world:
        return (
            "a wider radio world than the task (`tinylarge.data.pretraining_world`; its ranges "
            "are in the checkpoint's config.json)"
        )
    classes = world.get("classes", [])
    fading = "/".join(world.get("fading", []))

    def number(key: str) -> str:
        value = world.get(key)
        return f"{value:g}" if isinstance(value, int | float) else "n/a"

    return (
        f"a wider radio world than the task: {len(classes)} modulations "
        f"({', '.join(classes)}), SNR {number('snr_db_min')} to {number('snr_db_max')} dB, "
        f"{fading} fading, carrier frequency offsets up to "
        f"{number('cfo_max_cycles_per_sample')} cycles/sample"
    )


def _pretrained(large: Mapping[str, Any]) -> str:
    """What the large model is and the checkpoint it started from."""
    p = large.get("pretrained")
    name, params = large.get("name", "the large model"), _count(large.get("params"))
    if not isinstance(p, Mapping):
        return paragraph(
            f"The large model (`{name}`, {params} parameters) was not pretrained: it starts "
            "from random weights, so there is no foundation model in this run."
        )
    loss, zeros = p.get("final_reconstruction_loss"), p.get("zero_prediction_loss")
    mask = p.get("mask_ratio")
    hidden = f"{_pct(mask)} %" if isinstance(mask, int | float) else "a share"
    body = paragraph(
        f"The large model is `{name}` ({params} parameters), a transformer encoder over patches "
        "of the IQ frame, **pretrained once without labels** on "
        f"{_count(p.get('pretraining_frames'))} frames of {_world_words(p.get('world'))}. "
        f"Pretraining is masked IQ-patch modelling: {hidden} of each frame's patches are hidden "
        "and the encoder learns to rebuild them from the rest, as LWM (masked channel modelling, "
        "arXiv 2411.08872) and SpectrumFM (masked IQ reconstruction, arXiv 2505.06256) do. "
        "The encoder is then adapted to each task with few labels (IQFM, arXiv 2506.06718, "
        "reaches its modulation task with one labelled frame per class)."
    )
    if isinstance(loss, int | float) and isinstance(zeros, int | float) and zeros > 0:
        body += paragraph(
            f"On held-out frames the masked patches are rebuilt with a mean squared error of "
            f"**{loss:.3f}**, against {zeros:.3f} for predicting zeros: "
            f"{100 * (1 - loss / zeros):.0f} % lower, so the encoder learnt the signals' "
            "structure rather than their average."
        )
    wall = p.get("wall_time_s")
    rows = [
        ["checkpoint", p.get("checkpoint", "n/a")],
        ["weights SHA-256", p.get("weights_sha256") or "n/a"],
        ["parameters (with the pretraining head)", _count(p.get("parameters"))],
        ["unlabelled pretraining frames", _count(p.get("pretraining_frames"))],
        ["optimizer steps", _count(p.get("pretraining_steps"))],
        ["batch (frames)", _count(p.get("batch_size"))],
        ["masked patches (%)", _pct(mask)],
        ["reconstruction loss, held out (MSE)", "n/a" if loss is None else f"{loss:.4f}"],
        ["predicting zeros, same frames (MSE)", "n/a" if zeros is None else f"{zeros:.4f}"],
        ["pretraining wall time (s)", "n/a" if wall is None else f"{wall:,.0f}"],
        ["seed", p.get("seed", "n/a")],
    ]
    body += table(["pretrained checkpoint", "value"], rows)
    if p.get("command"):
        body += paragraph("The command that made the checkpoint:", "note")
        body += preformatted(str(p["command"]))
    return body


def _adaptation(large: Mapping[str, Any]) -> str:
    """How the pretrained model was adapted to the run's task."""
    a = large.get("adaptation")
    if not isinstance(a, Mapping) or "method" not in a:
        return ""
    method = str(a["method"])
    trainable, total = a.get("trainable_parameters"), a.get("total_parameters")
    share = (
        f" ({100 * trainable / total:.2f} % of {total:,})"
        if isinstance(trainable, int | float) and isinstance(total, int | float) and total
        else ""
    )
    text = (
        f"**Adapted to this run's task by {METHOD_WORDS.get(method, method)}**: "
        f"{_count(trainable)} trainable parameters{share}, on "
        f"{_count(a.get('labelled_frames'))} labelled frames."
    )
    if method == "lora":
        text += (
            " LoRA (Hu et al., ICLR 2022, arXiv 2106.09685) adds a trainable low-rank product "
            "beside each frozen weight matrix; SpectrumFM fine-tunes about 2 % of its "
            "parameters this way."
        )
    return paragraph(text)


def _all_per_class(rows: Mapping[str, Any], columns: list[str]) -> float:
    """Where ``"all"`` sits on the plot's axis: the all-label frames over the classes (the
    frames of the 1-per-class column), at least twice the largest whole-number column."""
    counts = [float(c) for c in columns if c != "all"]
    largest = max(counts, default=1.0)
    per_class = 0.0
    for scores in rows.values():
        if "all" in scores and "1" in scores and scores["1"].get("labelled_frames"):
            per_class = max(
                per_class, scores["all"]["labelled_frames"] / scores["1"]["labelled_frames"]
            )
    return max(per_class, 2.0 * largest)


def _and(items: list[str]) -> str:
    """``["1", "10", "100"]`` -> ``"1, 10 and 100"``."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def _label_efficiency_plot(rows: Mapping[str, Any], columns: list[str], plots_dir: Path) -> str:
    """The label-efficiency figure (`plots.label_efficiency`) with its caption."""
    accuracy = {r: {k: s[k]["accuracy"] for k in label_order(s)} for r, s in rows.items()}
    high = {
        r: {k: s[k]["accuracy_snr_ge_6db"] for k in label_order(s)
            if s[k].get("accuracy_snr_ge_6db") is not None}
        for r, s in rows.items()
    }  # fmt: skip
    has_high = any(high.values())
    path = plots.label_efficiency(
        accuracy,
        high if has_high else None,
        _all_per_class(rows, columns),
        plots_dir / "label_efficiency.png",
    )
    ways = [ADAPTATIONS[r] for r in rows if r in ADAPTATIONS]
    return image(
        path,
        "Test accuracy against labelled frames per class (log scale, 'all' at the right "
        f"end): the pretrained model adapted by {_and(ways)} (solid) and the baseline from "
        "scratch (dashed)" + ("; right: frames with SNR >= 6 dB." if has_high else "."),
    )


def _label_efficiency(f: Mapping[str, Any], plots_dir: Path) -> str:
    """The plot and table of test accuracy against labelled frames per class."""
    rows = ran(dict(f.get("label_efficiency", {})))
    baseline = str(f.get("baseline", "large_resnet"))
    columns = label_order({k for scores in rows.values() for k in scores})
    if not rows or not columns:
        return paragraph("No label-efficiency scores in this run.", "note")
    body = paragraph(
        "**Label efficiency.** Each model is fitted on "
        f"{_and([c for c in columns if c != 'all'])} labelled frames per class "
        "(nested subsets, a fixed number of optimizer steps) and on all the labelled frames, "
        f"then scored on the same {_count(f.get('eval_frames'))} test frames. The baseline "
        f"`{baseline}` learns the task from scratch; gains from pretraining are largest with "
        "few labels (LWM, arXiv 2411.08872)."
    )
    body += _label_efficiency_plot(rows, columns, plots_dir)
    table_rows = [
        [
            row_words(row, baseline),
            labels,
            _count(s["labelled_frames"]),
            _count(s["trainable_parameters"]),
            _pct(s["accuracy"]),
            _pct(s.get("accuracy_snr_ge_6db")),
            f"{s['train_time_s']:.2f}",
        ]
        for row, scores in rows.items()
        for labels in label_order(scores)
        for s in [scores[labels]]
    ]
    header = [
        "model",
        "labels per class",
        "labelled frames",
        "trainable parameters",
        "test accuracy (%)",
        "accuracy, SNR >= 6 dB (%)",
        "training time (s)",
    ]
    return body + table(header, table_rows)


def _out_of_distribution(f: Mapping[str, Any]) -> str:
    """Accuracy on test sets outside the fine-tuning data, and the drop from in distribution."""
    sets = f.get("out_of_distribution")
    if isinstance(sets, Mapping) and is_skipped(sets):
        return paragraph(f"**Out of distribution**: not measured ({sets['skipped']}).", "note")
    sets = ran(dict(sets or {}))
    inside = f.get("in_distribution", {})
    if not sets or not {"foundation", "baseline"} <= set(inside):
        return paragraph("**Out of distribution**: not measured in this run.", "note")
    body = paragraph(
        "**Out of distribution.** The two all-label models on test sets whose SNR or "
        "impairments lie outside the fine-tuning data (but inside the pretraining world). The "
        "drop is the in-distribution accuracy minus the accuracy on the set (negative: a gain)."
    )
    rows = [
        [
            "in distribution (the task's test frames)",
            "nothing",
            _pct(inside["foundation"]),
            _pct(inside["baseline"]),
            "0.0",
            "0.0",
        ]
    ]
    for name, s in sets.items():
        rows.append(
            [
                name,
                s["description"],
                _pct(s["foundation"]),
                _pct(s["baseline"]),
                _pct(inside["foundation"] - s["foundation"]),
                _pct(inside["baseline"] - s["baseline"]),
            ]
        )
    drop = f.get("mean_ood_drop")
    if isinstance(drop, Mapping):
        rows.append(
            ["mean over the sets", "", "", "", _pct(drop["foundation"]), _pct(drop["baseline"])]
        )
    header = [
        "test set",
        "what differs from the fine-tuning data",
        "foundation accuracy (%)",
        "baseline accuracy (%)",
        "foundation drop (percentage points)",
        "baseline drop (percentage points)",
    ]
    return body + table(header, rows)


def _distillation(f: Mapping[str, Any]) -> str:
    """The int8 tiny student distilled from each teacher."""
    d = f.get("distillation")
    if isinstance(d, Mapping) and is_skipped(d):
        return paragraph(f"**Distillation**: not compared ({d['skipped']}).", "note")
    d = ran(dict(d or {}))
    if not d:
        return paragraph(
            "**Distillation**: the two teachers were not compared in this run.", "note"
        )
    body = paragraph(
        "**Distillation.** The same tiny model (architecture, data, seed, temperature, "
        "calibration frames and MCU) distilled from each teacher, then quantized to int8 and run "
        "on the integer runtime."
    )
    rows = [
        [
            words,
            s.get("teacher", "n/a"),
            _pct(s.get("teacher_accuracy")),
            _pct(s.get("float_accuracy")),
            _pct(s.get("int8_accuracy")),
            _pct(s.get("int8_accuracy_snr_ge_6db")),
        ]
        for key, words in (("from_foundation", "foundation model"), ("from_baseline", "baseline"))
        if key in d
        for s in [d[key]]
    ]
    header = [
        "teacher",
        "architecture",
        "teacher test accuracy (%)",
        "student float (%)",
        "student int8 (%)",
        "student int8, SNR >= 6 dB (%)",
    ]
    return body + table(header, rows)


def _ten_x(f: Mapping[str, Any]) -> str:
    rows, baseline = f.get("label_efficiency", {}), f.get("baseline", "large_resnet")
    best, base = _best(ran(dict(rows)), "10"), rows.get(baseline, {}).get("100")
    if best is None or not isinstance(base, Mapping):
        columns = label_order({k for scores in ran(dict(rows)).values() for k in scores})
        return (
            "this run has no foundation score with 10 labels per class or no baseline score "
            f"with 100 (labels per class measured: {', '.join(columns) or 'none'})"
        )
    return (
        f"with 10 labels per class the best foundation adaptation "
        f"({ADAPTATIONS.get(best[0], best[0])}) reaches {_pct(best[1])} %; {baseline} with 100 per "
        f"class reaches {_pct(base['accuracy'])} %"
    )


def _all_labels(f: Mapping[str, Any]) -> str:
    rows, baseline = f.get("label_efficiency", {}), f.get("baseline", "large_resnet")
    best, base = _best(ran(dict(rows)), "all"), rows.get(baseline, {}).get("all")
    if best is None or not isinstance(base, Mapping):
        return "no all-label scores in this run"
    return (
        f"with all {_count(base.get('labelled_frames'))} labelled frames the best foundation "
        f"adaptation ({ADAPTATIONS.get(best[0], best[0])}) reaches {_pct(best[1])} %, {baseline} "
        f"{_pct(base['accuracy'])} %"
    )


def _ood(f: Mapping[str, Any]) -> str:
    drop, inside = f.get("mean_ood_drop"), f.get("in_distribution", {})
    sets = f.get("out_of_distribution")
    if not isinstance(drop, Mapping) or not isinstance(sets, Mapping) or is_skipped(sets):
        return "no out-of-distribution sets in this run"
    return (
        f"averaged over {len(ran(dict(sets)))} out-of-distribution sets the foundation model "
        f"loses {_pct(drop['foundation'])} percentage points from its in-distribution "
        f"{_pct(inside.get('foundation'))} %, the baseline {_pct(drop['baseline'])} from "
        f"{_pct(inside.get('baseline'))} %"
    )


def _distilled(f: Mapping[str, Any]) -> str:
    d = f.get("distillation") or {}
    if not {"from_foundation", "from_baseline"} <= set(d):
        return "the two teachers were not compared in this run"
    return (
        f"the int8 student distilled from the foundation model is "
        f"{_pct(d['from_foundation']['int8_accuracy'])} % accurate, the one distilled from the "
        f"baseline {_pct(d['from_baseline']['int8_accuracy'])} %"
    )


_GOAL_NUMBERS = {
    "ten_x_label_efficiency": _ten_x,
    "all_labels_at_least_baseline": _all_labels,
    "out_of_distribution_loses_less": _ood,
    "distilled_at_least_as_accurate": _distilled,
}


def goal_rows(foundation: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Each goal: (goal in words, ``met`` / ``not met`` / ``not measured``, the numbers behind
    it as a sentence).

    Parameters
    ----------
    foundation : mapping
        The ``foundation`` section of ``metrics.json``; its ``goals`` decide met or not met.
    """
    goals = foundation.get("goals") or {}
    rows = []
    for key, words in GOAL_WORDS.items():
        status = goals.get(key)
        numbers = _GOAL_NUMBERS[key](foundation)
        rows.append(
            (
                words,
                _STATUS[status if isinstance(status, bool) else None],
                numbers[0].upper() + numbers[1:] + ".",
            )
        )
    return rows


def _goals(f: Mapping[str, Any]) -> str:
    rows = goal_rows(f)
    met = sum(1 for _, status, _ in rows if status == "met")
    measured = sum(1 for _, status, _ in rows if status != "not measured")
    body = paragraph(
        f"**Goals: {met} of {measured} measured met.** The targets follow what the wireless "
        "foundation-model papers report (LWM, arXiv 2411.08872; SpectrumFM, arXiv 2505.06256; "
        "IQFM, arXiv 2506.06718): pretraining should buy labels, robustness and a better "
        "teacher."
    )
    return body + table(["goal", "result", "the numbers behind it"], rows)


def _foundation_parts(metrics: Mapping[str, Any], plots_dir: Path) -> str:
    """The comparisons with the from-scratch baseline, or why there are none."""
    f = metrics.get("foundation")
    if not isinstance(f, Mapping):
        return paragraph(
            "The comparison with a model trained from scratch did not run (the scenario's "
            "`[foundation]` stage is off).",
            "note",
        )
    label_efficiency = f.get("label_efficiency")
    if isinstance(label_efficiency, Mapping) and is_skipped(label_efficiency):
        return paragraph(
            f"The comparison with a model trained from scratch was skipped: "
            f"{label_efficiency['skipped']}.",
            "note",
        )
    return _goals(f) + _label_efficiency(f, plots_dir) + _out_of_distribution(f) + _distillation(f)


def foundation_block(metrics: Mapping[str, Any], plots_dir: Path) -> Section | None:
    """The section from a metrics document; None when the run has neither a pretrained large
    model nor a ``foundation`` part.

    Parameters
    ----------
    metrics : mapping
        The run's ``metrics.json`` document (`tinylarge.report.metrics.collect`).
    plots_dir : Path
        Directory the label-efficiency plot is written to (``label_efficiency.png``).
    """
    large = _large(metrics)
    if "pretrained" not in large and "foundation" not in metrics:
        return None
    body = _pretrained(large) + _adaptation(large) + _foundation_parts(metrics, plots_dir)
    return Section(TITLE, body)


def foundation_section(
    result: RunResult, metrics: dict[str, Any], plots_dir: Path
) -> Section | None:
    """What the large foundation model is, how it was adapted, and what pretraining buys
    against the from-scratch baseline (`foundation_block`)."""
    return foundation_block(metrics, plots_dir)


def foundation_summary(metrics: Mapping[str, Any]) -> str:
    """One or two sentences on the foundation model for the report's summary (plain text with
    ``**bold**``); "" when the large model is not pretrained and no comparison ran."""
    large = _large(metrics)
    p = large.get("pretrained")
    f = metrics.get("foundation")
    if not isinstance(p, Mapping) and not isinstance(f, Mapping):
        return ""
    text = ""
    if isinstance(p, Mapping):
        method = (large.get("adaptation") or {}).get("method")
        adapted = f", {_ADAPTED.get(method, f'adapted by {method}')}" if method else ""
        text = (
            f"**The large model is a pretrained foundation model** (`{large.get('name')}`, "
            f"{_count(large.get('params'))} parameters, pretrained on "
            f"{_count(p.get('pretraining_frames'))} unlabelled frames"
            f"{adapted})."
        )
    if isinstance(f, Mapping) and not is_skipped(f.get("label_efficiency")):
        rows = goal_rows(f)
        measured = [(words, status) for words, status, _ in rows if status != "not measured"]
        missed = [words for words, status in measured if status == "not met"]
        text += (
            f" Against {f.get('baseline', 'the baseline')} trained from scratch it met "
            f"{len(measured) - len(missed)} of {len(measured)} goals"
            + (f" (not met: {'; '.join(missed)})" if missed else "")
            + f'; see "{TITLE}".'
        )
    return text.strip()
