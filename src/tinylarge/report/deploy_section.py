"""The report of a deployed run (`tinylarge deploy`): what the running system measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tinylarge.deploy.records import BY_EDGE, FleetRecords
from tinylarge.report.deploy_faults import faults_part
from tinylarge.report.html import Section, image, page, paragraph, table
from tinylarge.report.plots import policy_latency_cdf, save_figure


def batch_histogram(counts: dict[str, int], path: Path) -> Path:
    """Batches the edge ran, by size."""
    sizes = sorted(int(k) for k in counts)
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    ax.bar([str(s) for s in sizes], [counts[str(s)] for s in sizes], color="#1f77b4")
    ax.set_xlabel("batch size (requests)")
    ax.set_ylabel("batches")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def versions_over_time(records: FleetRecords, path: Path) -> Path:
    """Which tiny-model version decided each request, against its arrival time."""
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    ax.step(records.scheduled_s, records.model_version, where="post")
    ax.set_xlabel("arrival of the request (s)")
    ax.set_ylabel("tiny-model version")
    ax.set_yticks(sorted(set(records.model_version.tolist())))
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{1e3 * value:.1f}"


def _sim_vs_real_part(
    d: dict[str, Any], records: FleetRecords, simulated_latency_s: np.ndarray, plots_dir: Path
) -> str:
    """The simulator's prediction against the measurement, on the same requests."""
    c = d["sim_vs_real"]

    def row(label: str, part: dict[str, Any], scale: float = 1e3, unit: str = "") -> list[str]:
        ratio = part["ratio"]
        return [
            label,
            "n/a" if part["sim"] is None else f"{scale * part['sim']:.2f}{unit}",
            "n/a" if part["real"] is None else f"{scale * part['real']:.2f}{unit}",
            "n/a" if ratio is None else f"{ratio:.2f}",
        ]

    rows = [row(f"latency {q} (ms)", c["latency_s"][q]) for q in ("p50", "p95", "p99")]
    rows += [row(f"answered by the edge, {q} (ms)", c["edge_latency_s"][q]) for q in ("p50", "p99")]
    rows += [
        row("accuracy (%)", c["accuracy"], 100.0),
        row("offloaded (%)", c["offload_fraction"], 100.0),
        row("fell back (%)", c["fell_back_fraction"], 100.0),
        row("bytes up per inference", c["bytes_up_per_inference"], 1.0),
    ]
    html = paragraph(
        "**Simulator against the running system**, request by request on the same schedule: "
        "the deployment emulates each device's radio and MCU time with the simulator's own "
        "model and draws, so the difference is the edge, the broker and the agents. Same "
        f"decisions: {'yes' if c['same_decisions'] else 'no'}; same deliveries: "
        f"{'yes' if c['same_deliveries'] else 'no'}. The simulated edge is the deployed "
        "server's measured batch service time; the MQTT transport (the broker's relays both "
        "ways and both clients' stacks), which a radio simulator has no model of, is measured "
        "on the running system and added to the simulated backhaul, half each way."
    )
    html += table(["", "simulated", "measured", "sim / real"], rows)
    split = c.get("round_trip_split")
    if split:
        without = c["without_transport"]
        ratios = [without[q]["ratio"] for q in ("p50", "p95", "p99")]
        without_text = " / ".join("n/a" if r is None else f"{r:.2f}" for r in ratios)
        html += paragraph(
            f"Where the time of the {split['matched']:,} edge answers went (each round trip "
            "joined with the edge's log by device and request id), medians: round trip at the "
            f"device {_ms(split['round_trip_s']['p50'])} ms = in the edge (queue, batching "
            f"wait, model) {_ms(split['in_edge_s']['p50'])} ms + transport "
            f"{_ms(split['transport_s']['p50'])} ms. Without the transport the simulator's "
            f"p50 / p95 / p99 would be {without_text} of the measured. The agents themselves act "
            f"{1e3 * (split['agent_lateness_s']['p50'] or 0):.2f} ms (median) after their "
            "planned instants (their timers: `tinylarge.deploy.clock`); the simulator's "
            "on-device latency is the MCU time exactly."
        )
    html += image(
        policy_latency_cdf(
            {"simulated": simulated_latency_s, "measured": records.latency_s[records.route >= 0]},
            plots_dir / "deploy_sim_vs_real.png",
            "Simulated and measured latency",
        ),
        "Latency of every request: the simulator's prediction and the running system.",
    )
    return html


def _edge_part(d: dict[str, Any]) -> str:
    """How the edge served, or, when it ended on its own, how and when (it wrote no
    counters then: the figures above come from the devices' records alone)."""
    edge, died = d["edge"], d.get("edge_exit")
    if died is None:
        return paragraph(
            f"The edge answered {edge['requests_per_s'] or 0:.1f} requests/s in batches of "
            f"{edge['mean_batch'] or 0:.2f} on average (largest {edge['max_batch']}); "
            f"{edge['handshakes']} handshakes."
        )
    how = died["signal"] or f"exit code {died['exit_code']}"
    when = (
        "before the schedule started (while the devices were handshaking)"
        if died["at_s"] is None or died["at_s"] < 0
        else f"{died['at_s']:.1f} s into the schedule"
    )
    return paragraph(
        f"**The edge server ended on its own ({how}) {when}, after {died['uptime_s']:.1f} s, "
        "and was not restarted.** It left no counters, so everything here comes from what the "
        f"devices recorded: every request after it was answered on the device or fell back at "
        f"its deadline; {d.get('devices_unattached_at_start', 0)} device(s) had no session when "
        "the schedule started."
    )


def deploy_section(
    metrics: dict[str, Any],
    records: FleetRecords,
    plots_dir: Path,
    simulated_latency_s: np.ndarray | None = None,
) -> Section:
    """Requests and their fate, latency, bytes, the edge's batching, rejections, versions."""
    d = metrics["deploy"]
    lat, edge = d["latency_s"], d["edge"]
    body = paragraph(
        f"{d['devices']:,} device agents sent {d['requests']:,} requests through a real MQTT "
        f"broker to the edge server: **{d['answered_by_edge']:,} answered by the edge, "
        f"{d['answered_on_device']:,} on the device, {d['timed_out']:,} past their deadline "
        f"(the device kept its own answer), {d['lost']} lost**. Accuracy "
        f"{100 * (d['accuracy'] or 0):.1f} %, offloaded {100 * (d['offload_fraction'] or 0):.1f} %."
    )
    body += table(
        ["", "p50 (ms)", "p95 (ms)", "p99 (ms)"],
        [
            ["every request", *(_ms(lat[q]) for q in ("p50", "p95", "p99"))],
            ["answered by the edge", *(_ms(d["edge_latency_s"][q]) for q in ("p50", "p95", "p99"))],
        ],
    )
    body += paragraph(
        f"Bytes per inference: {d['bytes_up_per_inference']:.1f} up and "
        f"{d['bytes_down_per_inference']:.1f} down in protected messages (what the simulator "
        f"charges on the radio), {d['mqtt_bytes_up_per_inference']:.1f} and "
        f"{d['mqtt_bytes_down_per_inference']:.1f} as MQTT 5 PUBLISH packets (topic and packet "
        "id around them; the simulator does not model MQTT)."
    )
    latencies = {"every request": records.latency_s[records.route >= 0]}
    latencies["answered by the edge"] = records.latency_s[records.route == BY_EDGE]
    body += image(
        policy_latency_cdf(latencies, plots_dir / "deploy_latency.png", "Measured latency"),
        "Measured end-to-end latency: arrival of the request to the answer the device uses.",
    )
    body += _edge_part(d)
    if edge["batch_size_counts"]:
        body += image(
            batch_histogram(edge["batch_size_counts"], plots_dir / "deploy_batches.png"),
            "Batch sizes the edge's dynamic batcher ran.",
        )
    if "sim_vs_real" in d and simulated_latency_s is not None:
        body += _sim_vs_real_part(d, records, simulated_latency_s, plots_dir)
    if "faults" in d:
        body += faults_part(d, records, plots_dir)
    rejected = d["rejected"]
    body += paragraph(
        "Rejected messages: "
        + (", ".join(f"{k}: {v:,}" for k, v in rejected.items()) if rejected else "none")
        + "."
    )
    if len(set(records.model_version.tolist())) > 1 or edge["pushed"]:
        body += paragraph(
            "The closed loop ran live: the edge distilled new tiny models from the offloads and "
            f"pushed {len(edge['pushed'])} signed bundle(s); installed at the end: "
            + ", ".join(f"v{k} on {v} device(s)" for k, v in d["model_versions"].items())
            + "."
        )
        body += image(
            versions_over_time(records, plots_dir / "deploy_versions.png"),
            "The tiny-model version that decided each request.",
        )
    return Section("Deployment: measured on the running system", body)


def write_deploy_report(
    out_dir: Path,
    metrics: dict[str, Any],
    records: FleetRecords,
    title: str,
    *,
    simulated_latency_s: np.ndarray | None = None,
) -> Path:
    """``report.html`` of a deployed run (self-contained)."""
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    section = deploy_section(metrics, records, plots_dir, simulated_latency_s)
    report = out_dir / "report.html"
    report.write_text(page(title, "tinylarge deploy", [section]), "utf-8")
    return report
