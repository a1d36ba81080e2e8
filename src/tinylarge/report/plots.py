"""PNG figures of a run (matplotlib's object API: no pyplot, no global figure state)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tinylarge.data import Partition, Task
from tinylarge.models.evaluation import Evaluation
from tinylarge.models.training import TrainingReport

_COLORS = {
    "tiny": "#1f77b4",
    "large": "#d62728",
    "tiny_labels": "#9ecae1",
    "tiny_int8": "#2ca02c",
}
_DPI = 110


def save_figure(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    return path


def finish(
    fig: Figure,
    ax: Axes,
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    legend_fontsize: float | None = None,
) -> Path:
    """Label the axes (units in the labels), grid, legend (matplotlib's default size when
    ``legend_fontsize`` is None) and title of a one-axes plot, then save it (`save_figure`)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend_fontsize is None:
        ax.legend()
    else:
        ax.legend(fontsize=legend_fontsize)
    ax.set_title(title)
    return save_figure(fig, path)


def accuracy_vs_snr(evaluations: Mapping[str, Evaluation], path: Path) -> Path:
    """Accuracy of each model per SNR bucket."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for role, ev in evaluations.items():
        ax.plot(ev.snr_db, 100 * ev.accuracy_by_snr, "o-", label=role, color=_COLORS.get(role))
    ax.set_ylim(0, 100)
    return finish(
        fig, ax, path, xlabel="SNR (dB)", ylabel="accuracy (%)", title="Test accuracy vs SNR"
    )


def confusion_matrix(ev: Evaluation, class_names: tuple[str, ...], title: str, path: Path) -> Path:
    """Row-normalised confusion matrix (true class in rows), annotated in percent."""
    support = ev.confusion.sum(axis=1, keepdims=True)
    share = np.divide(ev.confusion, support, out=np.zeros(ev.confusion.shape), where=support > 0)
    n = len(class_names)
    size = max(4.0, 0.55 * n + 1.5)
    fig = Figure(figsize=(size + 0.8, size))
    ax = fig.add_subplot()
    image = ax.imshow(100 * share, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of true class")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 16:
        for i in range(n):
            for j in range(n):
                color = "white" if share[i, j] > 0.6 else "black"
                ax.text(
                    j,
                    i,
                    f"{100 * share[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=color,
                )
    ax.set_title(title)
    return save_figure(fig, path)


def training_curves(reports: Mapping[str, TrainingReport], path: Path) -> Path:
    """Training and validation accuracy per epoch for each model."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for role, report in reports.items():
        epochs = [r.epoch + 1 for r in report.history]
        color = _COLORS.get(role)
        ax.plot(
            epochs,
            [100 * r.train_accuracy for r in report.history],
            "--",
            color=color,
            label=f"{role} train",
        )
        val = [r.val_accuracy for r in report.history]
        if all(v is not None for v in val):
            ax.plot(
                epochs,
                [100 * float(v) for v in val if v is not None],
                "o-",
                color=color,
                label=f"{role} validation",
            )
    return finish(fig, ax, path, xlabel="epoch", ylabel="accuracy (%)", title="Training")


def radio_examples(task: Task, path: Path) -> Path:
    """One test frame per class at the highest SNR: I/Q over time and the I/Q plane."""
    classes = task.class_names
    snr = task.meta_test["snr_db"]
    fig = Figure(figsize=(2.0 * len(classes), 4.2))
    axes = fig.subplots(2, len(classes), squeeze=False)
    for c, name in enumerate(classes):
        candidates = np.flatnonzero(task.y_test == c)
        if len(candidates) == 0:
            continue
        frame = task.x_test[candidates[np.argmax(snr[candidates])]]
        top, bottom = axes[0, c], axes[1, c]
        top.plot(frame[0], lw=0.8, label="I")
        top.plot(frame[1], lw=0.8, label="Q")
        top.set_title(f"{name}\n{snr[candidates].max():g} dB", fontsize=9)
        top.set_xticks([])
        top.set_yticks([])
        bottom.plot(frame[0], frame[1], ".", ms=2)
        bottom.set_aspect("equal")
        bottom.set_xticks([])
        bottom.set_yticks([])
    axes[0, 0].legend(fontsize=7, loc="lower left")
    return save_figure(fig, path)


def device_label_mix(partition: Partition, task: Task, path: Path, max_devices: int = 40) -> Path:
    """Stacked class counts of the first devices: how skewed each device's data is."""
    shown = min(partition.n_devices, max_devices)
    counts = partition.label_histogram(task.y_train, task.num_classes)[:shown]
    fig = Figure(figsize=(7.0, 3.6))
    ax = fig.add_subplot()
    bottom = np.zeros(shown)
    for c, name in enumerate(task.class_names):
        ax.bar(np.arange(shown), counts[:, c], bottom=bottom, label=name, width=0.85)
        bottom += counts[:, c]
    ax.set_xlabel(f"device (first {shown} of {partition.n_devices})")
    ax.set_ylabel("training samples")
    ax.legend(fontsize=7, ncol=min(5, task.num_classes), loc="upper right")
    ax.set_title("Training data per device, by class")
    return save_figure(fig, path)


def device_snr(partition: Partition, snr_db: np.ndarray, path: Path) -> Path:
    """Median and inter-quartile range of the SNR of each device's training frames."""
    device_of = np.repeat(np.arange(partition.n_devices), partition.sizes)
    values = snr_db[partition.indices]
    values = values[np.lexsort((values, device_of))]  # sorted within each device's slice
    sizes = partition.sizes
    quartiles = {}
    for q in (0.25, 0.5, 0.75):  # nearest-rank percentile inside each device's sorted slice
        position = partition.offsets[:-1] + np.floor(q * np.maximum(sizes - 1, 0)).astype(np.int64)
        quartiles[q] = np.where(sizes > 0, values[np.minimum(position, values.size - 1)], np.nan)
    fig = Figure(figsize=(7.0, 3.2))
    ax = fig.add_subplot()
    devices = np.arange(partition.n_devices)
    ax.fill_between(devices, quartiles[0.25], quartiles[0.75], alpha=0.3, label="25-75 %")
    ax.plot(devices, quartiles[0.5], lw=1.2, label="median")
    return finish(
        fig,
        ax,
        path,
        xlabel="device",
        ylabel="SNR of its frames (dB)",
        title="Training-frame SNR per device",
        legend_fontsize=8,
    )


def mcu_costs(
    latency_s: Mapping[str, float],
    energy_j: Mapping[str, float],
    fits: Mapping[str, bool],
    path: Path,
) -> Path:
    """Latency (ms) and energy (uJ) of one int8 inference per MCU; hatched bars do not fit."""
    names = list(latency_s)
    fig = Figure(figsize=(8.0, 0.32 * len(names) + 1.4))
    panels = (
        (latency_s, "latency per inference (ms)", 1e3),
        (energy_j, "energy per inference (uJ)", 1e6),
    )
    for i, (values, label, factor) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        bars = ax.barh(names, [factor * values[n] for n in names], color="#2ca02c")
        for bar, name in zip(bars, names, strict=True):
            if not fits[name]:
                bar.set_hatch("//")
                bar.set_facecolor("#cccccc")
        ax.set_xlabel(label)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
        if i:
            ax.tick_params(axis="y", labelleft=False)
    fig.suptitle("The int8 tiny model on each microcontroller (grey hatched: does not fit)")
    return save_figure(fig, path)


def network_coverage(
    snr_map: tuple[np.ndarray, np.ndarray, np.ndarray],
    map_title: str,
    rates_bps: Mapping[str, np.ndarray],
    path: Path,
) -> Path:
    """Uplink SNR over the cell (left) and the CDF of each profile's uplink rate (right)."""
    x_m, y_m, snr_db = snr_map
    fig = Figure(figsize=(10.0, 4.2))
    ax = fig.add_subplot(1, 2, 1)
    points = ax.scatter(x_m, y_m, c=snr_db, s=3, cmap="viridis", vmin=-10, vmax=40)
    fig.colorbar(points, ax=ax, label="uplink SNR (dB)")
    ax.scatter([0.0], [0.0], marker="^", color="red", s=60, label="base station")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(map_title)
    ax.legend(loc="upper right")
    ax = fig.add_subplot(1, 2, 2)
    for name, rate in rates_bps.items():
        values = np.sort(np.maximum(rate, 1.0))
        ax.plot(values, np.linspace(0, 100, values.size), label=name)
    ax.set_xscale("log")
    return finish(
        fig,
        ax,
        path,
        xlabel="uplink rate, whole band (b/s)",
        ylabel="devices (%)",
        title="Rate across the cell per radio profile",
        legend_fontsize=8,
    )


def latency_cdf(latency_s: np.ndarray, title: str, path: Path) -> Path:
    """CDF of message latency (ms) with the p50/p95/p99 marks."""
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    values = np.sort(latency_s[np.isfinite(latency_s)]) * 1e3
    if values.size:
        ax.plot(values, np.linspace(0, 100, values.size), color="#d62728")
        for q in (50, 95, 99):
            ax.axvline(np.percentile(values, q), color="grey", ls=":", lw=1)
            ax.text(np.percentile(values, q), 3, f"p{q}", rotation=90, fontsize=8)
    ax.set_xlabel("latency device -> edge -> device (ms)")
    ax.set_ylabel("messages (%)")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return save_figure(fig, path)


def policy_tradeoffs(summaries: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Accuracy vs offload fraction (left) and vs device energy per inference (right)."""
    fig = Figure(figsize=(11.0, 4.2))
    panels = (
        ("offload_fraction", "offload fraction (%)", 100.0),
        ("energy_j_per_inference", "device energy per inference (uJ)", 1e6),
    )
    markers = "os^DvP<>Xhp"
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    for ax, (key, label, factor) in zip(axes, panels, strict=True):
        for j, (name, s) in enumerate(summaries.items()):
            marker = "*" if name == "oracle" else markers[j % len(markers)]
            ax.scatter(factor * s[key], 100 * s["accuracy"], marker=marker, s=70, label=name,
                       alpha=0.85)  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Inference policies: accuracy vs offloading and vs device energy")
    return save_figure(fig, path)


def policy_latency_cdf(
    latency_s: Mapping[str, np.ndarray], path: Path, title: str = "Latency per policy"
) -> Path:
    """CDF of the answer latency (ms) of every policy (or other named groups of requests)."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for name, lat in latency_s.items():
        values = np.sort(lat[np.isfinite(lat)]) * 1e3
        if values.size:
            ax.plot(values, np.linspace(0, 100, values.size), label=name)
    ax.set_xscale("log")
    return finish(
        fig,
        ax,
        path,
        xlabel="latency of the answer (ms)",
        ylabel="requests (%)",
        title=title,
        legend_fontsize=8,
    )


def policy_energy_breakdown(summaries: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Device energy per inference split into compute and radio (uJ), per policy."""
    names = list(summaries)
    compute = [1e6 * summaries[n]["compute_energy_j_per_inference"] for n in names]
    radio = [1e6 * summaries[n]["radio_energy_j_per_inference"] for n in names]
    fig = Figure(figsize=(7.0, 0.35 * len(names) + 1.5))
    ax = fig.add_subplot()
    ax.barh(names, compute, color="#2ca02c", label="compute (MCU)")
    ax.barh(names, radio, left=compute, color="#1f77b4", label="radio")
    ax.invert_yaxis()
    ax.set_xlabel("device energy per inference (uJ)")
    ax.legend()
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)


def policy_accuracy_by_snr(
    snr_db: np.ndarray, correct: Mapping[str, np.ndarray], path: Path
) -> Path:
    """Accuracy of each policy per SNR value of the requested frames."""
    levels = np.unique(snr_db)
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for name, ok in correct.items():
        acc = [100 * ok[snr_db == s].mean() if (snr_db == s).any() else np.nan for s in levels]
        ax.plot(levels, acc, "o-", label=name, ms=3)
    ax.set_ylim(0, 100)
    return finish(
        fig,
        ax,
        path,
        xlabel="SNR (dB)",
        ylabel="accuracy (%)",
        title="Accuracy per SNR, per policy",
        legend_fontsize=8,
    )


def accuracy_vs_bytes(points: Mapping[str, tuple[float, float]], path: Path) -> Path:
    """Accuracy (%) against uplink bytes per request of ways to send a frame to the edge.

    ``points`` maps a label to (bytes, accuracy in [0, 1]); labels starting with
    ``large_compressed`` are joined by a line (the compressed-input baseline).
    """
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    baseline = sorted((b, a) for name, (b, a) in points.items() if name.startswith("large_comp"))
    if baseline:
        xs, ys = zip(*baseline, strict=True)
        ax.plot(xs, [100 * a for a in ys], "-", color="#999999", zorder=1,
                label="raw frame, fewer bits + zstd")  # fmt: skip
    for name, (size, acc) in points.items():
        ax.scatter(size, 100 * acc, s=50, zorder=2)
        ax.annotate(name, (size, 100 * acc), fontsize=8, xytext=(4, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel("bytes up per request")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    if baseline:
        ax.legend(fontsize=8)
    ax.set_title("What to send: compressed frame vs learned bottleneck")
    return save_figure(fig, path)


def colearning_curves(schemes: Mapping[str, Mapping[str, list[float]]], path: Path) -> Path:
    """Test accuracy of every co-learning scheme against round (left) and against the
    cumulative bytes on air, up + down (right, log scale)."""
    fig = Figure(figsize=(11.0, 4.2))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, s in schemes.items():
        acc = 100 * np.asarray(s["accuracy"], dtype=np.float64)
        rounds = np.arange(1, acc.size + 1)
        total = np.cumsum(np.asarray(s["bytes_up"], float) + np.asarray(s["bytes_down"], float))
        left.plot(rounds, acc, "o-", ms=3, label=name)
        right.plot(np.maximum(total, 1.0), acc, "o-", ms=3, label=name)
    left.set_xlabel("round")
    right.set_xlabel("bytes on air so far, up + down")
    right.set_xscale("log")
    for ax in (left, right):
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Co-learning: accuracy per round and per byte")
    return save_figure(fig, path)


def closed_loop_over_time(loop: Mapping[str, list[float]], path: Path) -> Path:
    """The closed loop per round: offload fraction, system accuracy and device energy per
    frame, with the model version in service."""
    rounds = np.arange(1, len(loop["accuracy"]) + 1)
    fig = Figure(figsize=(11.0, 3.8))
    panels = (
        ("offload_fraction", "offloaded (%)", 100.0),
        ("accuracy", "system accuracy (%)", 100.0),
        ("device_energy_j_per_frame", "device energy per frame (uJ)", 1e6),
    )
    versions = np.asarray(loop["model_version"], dtype=np.float64)
    for i, (key, label, factor) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.plot(rounds, factor * np.asarray(loop[key], dtype=np.float64), "o-", ms=4)
        for r in rounds[1:][np.diff(versions) > 0]:
            ax.axvline(r - 0.5, color="#999999", ls=":", lw=1)
        ax.set_xlabel("round (dotted: a new model is in service)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle("The closed loop: offload -> label -> distil -> push")
    return save_figure(fig, path)


def accuracy_under_attack(rows: list[Mapping[str, object]], path: Path) -> Path:
    """Final FedAvg accuracy against the malicious fraction, one line per aggregator, one panel
    per attack (fraction 0 is the attack-free run)."""
    attacks = sorted({str(r["attack"]) for r in rows if r["attack"] != "none"}) or ["none"]
    aggregators = list(dict.fromkeys(str(r["aggregator"]) for r in rows))
    fig = Figure(figsize=(4.2 * len(attacks) + 1.5, 3.8))
    for i, attack in enumerate(attacks):
        ax = fig.add_subplot(1, len(attacks), i + 1)
        for aggregator in aggregators:
            points = sorted(
                (float(str(r["malicious_fraction"])), 100 * float(str(r["accuracy"])))
                for r in rows
                if r["aggregator"] == aggregator and r["attack"] in ("none", attack)
            )
            xs, ys = zip(*points, strict=True)
            ax.plot([100 * x for x in xs], ys, "o-", ms=4, label=aggregator)
        ax.set_title(attack)
        ax.set_xlabel("malicious devices (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("FedAvg under attack, per aggregator")
    return save_figure(fig, path)


def label_efficiency(
    accuracy: Mapping[str, Mapping[str, float]],
    high_snr_accuracy: Mapping[str, Mapping[str, float]] | None,
    all_per_class: float,
    path: Path,
) -> Path:
    """Test accuracy (%) against labelled frames per class, one line per model.

    Parameters
    ----------
    accuracy : mapping of model -> {labels per class -> accuracy, 0-1}
        Labels per class as text: whole numbers (``"1"``, ``"10"``, ``"100"``) and ``"all"``.
    high_snr_accuracy : mapping like ``accuracy``, or None
        The same at high SNR, drawn in a second panel; None for one panel.
    all_per_class : float
        Where ``"all"`` sits on the log x axis (labelled frames per class); it must lie right of
        every whole-number column.
    path : Path
        The PNG to write.

    Returns
    -------
    Path
        ``path``.
    """
    counts = sorted({float(k) for row in accuracy.values() for k in row if k != "all"})
    if counts and all_per_class <= counts[-1]:
        raise ValueError(
            f"all_per_class must lie right of the largest count {counts[-1]:g}, got "
            f"{all_per_class:g}"
        )
    panels = [("all test frames", accuracy)]
    if high_snr_accuracy is not None:
        panels.append(("SNR >= 6 dB", high_snr_accuracy))
    fig = Figure(figsize=(5.6 * len(panels) + 1.8, 4.0))
    ticks = [*counts, all_per_class]
    labels = [f"{c:g}" for c in counts] + ["all"]
    for i, (title, rows) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for name, row in rows.items():
            xs = [all_per_class if k == "all" else float(k) for k in row]
            order = np.argsort(xs)
            style = "o-" if name.startswith("foundation") else "s--"
            color = "black" if not name.startswith("foundation") else None
            ax.plot(np.asarray(xs)[order], 100 * np.asarray(list(row.values()))[order], style,
                    label=name, color=color, ms=5)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(ticks, labels)
        ax.minorticks_off()
        ax.set_ylim(0, 100)
        ax.set_xlabel("labelled frames per class (log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.set_title(title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Label efficiency: pretrained foundation model vs from scratch")
    return save_figure(fig, path)
