"""The report's co-learning section: schemes side by side and the closed loop over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinylarge.report import plots
from tinylarge.report.html import Section, image, paragraph, table
from tinylarge.report.notes import notes, ran
from tinylarge.sim.state import RunResult


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f}"


def _closed_loop_part(loop: dict[str, Any], plots_dir: Path) -> str:
    off, acc = loop["offload_fraction"], loop["accuracy"]
    energy = loop["device_energy_j_per_frame"]
    pushes = sum(1 for b in loop["update_bytes_per_device"] if b > 0)
    update = max(loop["update_bytes_per_device"])
    secured = "security" in loop
    what = (
        "a signed bundle of model + threshold that each device checks"
        if secured
        else "model + threshold"
    )
    html = paragraph(
        f"**The closed loop.** Round 1 is the day-0 cascade: offloading "
        f"{100 * off[0]:.1f} % of frames for {100 * acc[0]:.1f} % system accuracy. The server "
        f"labelled {int(loop['gathered_frames'][-1]):,} offloaded frames with the large model "
        f"and pushed {pushes} updated int8 models ({update:,.0f} bytes each, {what}, "
        f"to every reachable device). In the last round devices offload {100 * off[-1]:.1f} % "
        f"of frames at {100 * acc[-1]:.1f} % accuracy; device energy per frame went from "
        f"{1e6 * energy[0]:.0f} uJ to {1e6 * energy[-1]:.0f} uJ (update downloads included"
        + (
            "; round 1 includes each device's handshake, push rounds the bundle checks)."
            if secured
            else ")."
        )
    )
    html += image(
        plots.closed_loop_over_time(loop, plots_dir / "closed_loop.png"),
        "Each new model gets the threshold with the fewest offloads that keeps the day-0 "
        "cascade's accuracy on the server's validation frames; accuracy here is on test frames.",
    )
    return html


def _secure_aggregation_part(schemes: dict[str, Any]) -> str:
    """A sentence and a small table when FedAvg / FedProx ran with SecAgg+."""
    rows = []
    for name, s in schemes.items():
        sa = s.get("secure_aggregation")
        if sa is None:
            continue
        rows.append(
            [
                name,
                f"{sa['clients']:,}",
                f"{sa['dropped']:,}",
                _kib(sa["bytes_per_client"]),
                _kib(sa["plain_bytes_per_client"]),
                f"{sa['max_abs_error_vs_plain']:.2e}",
            ]
        )
    if not rows:
        return ""
    sa = next(s["secure_aggregation"] for s in schemes.values() if "secure_aggregation" in s)
    html = paragraph(
        "**Secure aggregation (SecAgg+, Bell et al., CCS 2020).** The server learned only the "
        "sum of each round's updates: every client shared its secrets among "
        f"{sa['num_shares']} neighbourhood members (threshold {sa['threshold_fraction']:.0%}), "
        f"{sa['dropout_fraction']:.0%} of each round's clients dropped out after sharing and "
        "were recovered from their neighbours' shares. Updates are fixed-point encoded with "
        f"a step of {sa['quantization_step']:.2e}; the last column is the largest difference "
        "of a secure aggregate from plain FedAvg over the same clients. The protocol's bytes "
        "(keys, shares, masked update, unmasking) replace the plain upload in the figures above."
    )
    return html + table(
        [
            "scheme",
            "client-rounds",
            "dropped",
            "KiB per client (SecAgg+)",
            "KiB per client (plain upload)",
            "max |error| vs plain",
        ],
        rows,
    )


def colearning_section(
    result: RunResult, metrics: dict[str, Any], plots_dir: Path
) -> Section | None:
    """Table of schemes (accuracy, bytes, airtime, energy), curves, and the closed loop."""
    if not metrics.get("colearning"):
        return None
    schemes = ran(metrics["colearning"])
    if not schemes:
        return Section(
            "Co-learning: federated, distillation, split, closed loop", notes(metrics, "colearning")
        )
    rows = []
    for name, s in schemes.items():
        rows.append(
            [
                name,
                s["rounds"],
                f"{100 * s['accuracy'][0]:.1f} %",
                f"{100 * s['final_accuracy']:.1f} %",
                _kib(s["total_bytes_up"]),
                _kib(s["total_bytes_down"]),
                f"{s['total_airtime_s']:.2f}",
                f"{s['total_device_energy_j']:.3f}",
            ]
        )
    body = paragraph(
        "Training-time integration over the same devices and cell. Every byte is charged in "
        "whole slots at each device's mean-SNR rate; device energy is radio plus compute "
        "(training counted as 3 forward passes at the MCU's int8 energy per MAC, a lower bound)."
        " Accuracy is on the same test frames each round."
    )
    body += notes(metrics, "colearning")
    fed = schemes.get("fedavg")
    if fed is not None and "centralized_accuracy" in fed:
        body += paragraph(
            f"FedAvg reaches {100 * fed['final_accuracy']:.1f} % after {fed['rounds']} rounds; "
            f"the same tiny model trained centrally on all training frames reaches "
            f"{100 * fed['centralized_accuracy']:.1f} %."
        )
    gkt = schemes.get("fedgkt")
    if gkt is not None and gkt.get("server_accuracy") and gkt["server_accuracy"][-1] is not None:
        body += paragraph(
            "FedGKT's accuracy is the mean over the devices' own tiny models, each trained "
            "only on its own frames when selected (no weight averaging); the server model it "
            f"teaches reaches {100 * gkt['server_accuracy'][-1]:.1f} % on client features."
        )
    body += table(
        [
            "scheme",
            "rounds",
            "accuracy, round 1",
            "accuracy, last",
            "KiB up",
            "KiB down",
            "airtime (s)",
            "device energy (J)",
        ],
        rows,
    )
    body += _secure_aggregation_part(schemes)
    curves = {k: v for k, v in schemes.items() if k != "closed_loop"}
    if curves:
        body += image(
            plots.colearning_curves(curves, plots_dir / "colearning.png"),
            "Accuracy of what each scheme gives the devices, per round and per byte on air.",
        )
    if "closed_loop" in schemes:
        body += _closed_loop_part(schemes["closed_loop"], plots_dir)
    return Section("Co-learning: federated, distillation, split, closed loop", body)
