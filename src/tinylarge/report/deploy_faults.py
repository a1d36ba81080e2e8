"""The fault part of a deployed run's report (`tinylarge deploy --faults`): what happened to
the requests around each injected fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT, FleetRecords
from tinylarge.report.html import image, paragraph, table
from tinylarge.report.plots import save_figure

#: How each fault reads in the report.
FAULT_LABELS = {
    "edge_kill": "edge server SIGKILLed, restarted",
    "broker_restart": "broker stopped, restarted",
    "disconnect": "10 % of devices disconnect",
    "flood_replay": "flood: forged, mutated, replayed",
    "corrupt_bundle": "corrupted model bundles pushed",
}
_ROUTES = ((BY_EDGE, "answered by the edge", "#1f77b4"), (ON_DEVICE, "on the device", "#2ca02c"),
           (TIMED_OUT, "fell back (device's answer)", "#d62728"))  # fmt: skip


def fault_timeline(records: FleetRecords, faults: dict[str, dict[str, Any]], path: Path) -> Path:
    """Every request's latency against its arrival, by how it was answered, with the faults."""
    fig = Figure(figsize=(7.2, 3.6))
    ax = fig.add_subplot()
    for route, label, colour in _ROUTES:
        pick = records.route == route
        ax.scatter(records.scheduled_s[pick], 1e3 * records.latency_s[pick], s=6,
                   color=colour, label=label, alpha=0.7)  # fmt: skip
    lost = records.route < 0
    if lost.any():
        ax.scatter(records.scheduled_s[lost], np.ones(int(lost.sum())), marker="x", color="k",
                   label="lost")  # fmt: skip
    for name, part in faults.items():
        ax.axvline(part["injected_s"], color="0.4", ls="--", lw=0.8)
        ax.text(part["injected_s"], 1.0, f" {name}", rotation=90, va="top", fontsize=7,
                transform=ax.get_xaxis_transform())  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("arrival of the request (s)")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def faults_part(d: dict[str, Any], records: FleetRecords, plots_dir: Path) -> str:
    """The table of `tinylarge.deploy.faults.fault_metrics` and the timeline plot."""
    faults: dict[str, dict[str, Any]] = d["faults"]
    rows = [
        [
            FAULT_LABELS.get(name, name),
            f"{part['injected_s']:.1f}",
            f"{part['requests']:,}",
            f"{part['answered']:,}",
            f"{part['on_device']:,}",
            f"{part['fell_back']:,}",
            str(part["lost"]),
            "n/a" if part["recovery_s"] is None else f"{part['recovery_s']:.2f}",
            str(part["accepted_bad"]),
        ]
        for name, part in faults.items()
    ]
    html = paragraph(
        "**Faults injected during the run.** Each row counts the requests that arrived from "
        "the fault's injection to the next one. *Fell back*: offloaded, but no reply came in "
        "time, so the device used its own answer and knows it; *lost*: no answer at all (goal "
        "0). *Recovery*: from the injection until the edge answered a request sent after it "
        "(for the disconnect, one of the dropped devices), so it includes the wait for the next "
        "offload. *Bad inputs acted upon*: replies to requests a device never sent or had "
        "answered, replies to the attacker, and bad bundles installed (goal 0)."
    )
    html += table(
        ["fault", "at (s)", "requests", "by edge", "on device", "fell back", "lost",
         "recovery (s)", "bad inputs acted upon"],
        rows,
    )  # fmt: skip
    flood = faults.get("flood_replay", {})
    if flood.get("sent"):
        html += paragraph(
            "The flood sent "
            + ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in flood["sent"].items())
            + " messages; the devices refused bundles: "
            + (", ".join(f"{k} {v:,}" for k, v in d.get("refused_bundles", {}).items()) or "none")
            + f"; edge restarts: {d.get('edge_starts', 1) - 1}."
        )
    if d.get("faults_skipped"):
        html += paragraph(
            "Not injected: " + "; ".join(f"{k}: {v}" for k, v in d["faults_skipped"].items())
        )
    html += image(
        fault_timeline(records, faults, plots_dir / "deploy_faults.png"),
        "Latency of every request against its arrival; dashed lines mark the faults.",
    )
    return html
