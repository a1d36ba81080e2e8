"""The report's collaborative-inference section: every policy side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinylarge.report import plots
from tinylarge.report.html import Section, image, paragraph, table
from tinylarge.report.notes import notes, ran
from tinylarge.report.summary import best_within_target
from tinylarge.sim.state import RunResult


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.2f}"


def _split_exit_part(
    result: RunResult,
    split_exit: dict[str, Any] | None,
    payload: dict[str, Any],
    plots_dir: Path,
) -> str:
    """Split points and their choice by the devices; the bottleneck vs compressed frames."""
    split_exit = split_exit or {}
    config = result.scenario.policies
    html = ""
    graft = split_exit.get("graft")
    if graft is not None:
        html += paragraph(
            f"**split** and **early_exit** share a graft on the frozen large model: after "
            f"block {graft['split_at']} a learned bottleneck encodes the activation into "
            f"{' x '.join(map(str, graft['code_shape']))} values of {graft['code_bits']} bits "
            f"({graft['code_bytes']} B on air with its scale and offset) and an exit head "
            f"answers on the device ({graft['exit_device_macs']:,} MACs with the blocks before "
            f"it). Alone, over the same requests: exit head {100 * graft['exit_accuracy']:.1f} "
            f"%, bottleneck {100 * graft['bottleneck_accuracy']:.1f} %, large model on the raw "
            f"frame {100 * graft['large_accuracy']:.1f} %. early_exit answers at the exit head "
            f"unless its {config.early_exit_confidence} confidence is below a threshold tuned "
            f"to offload {100 * config.target_offload:.0f} %, then sends the code."
        )
    points = split_exit.get("split_points", {})
    chosen = split_exit.get("split_k_distribution", {})
    if points:
        html += paragraph(
            f"Each device picks the split point of least {config.split_objective} (device "
            "compute + upload in whole slots at its mean uplink rate; Neurosurgeon-style). "
            f"The large model's own cuts k send {config.split_activation_bits}-bit activations."
        )
        html += table(
            ["split point", "bytes up (B)", "device MACs", "devices choosing it"],
            [
                [label, f"{p['bytes_up']:,}", f"{p['device_macs']:,}", str(chosen.get(label, 0))]
                for label, p in points.items()
            ],
        )
    compare = {name: (v["bytes_up"], v["accuracy"]) for name, v in payload.items()}
    if len(compare) > 1:
        html += image(
            plots.accuracy_vs_bytes(compare, plots_dir / "policy_bytes.png"),
            "Sending everything to the edge: accuracy of the edge's answer (without network "
            "losses, over the same requests) on the raw int8 frame, on the frame requantized to "
            "fewer bits per I/Q value and zstd-compressed, and on the learned bottleneck's code.",
        )
    return html


def _policy_table(summaries: dict[str, Any], deadline_s: float) -> str:
    """One row per policy that ran: accuracy, offload, latency, energy, bytes, deadlines."""
    large_acc = summaries["large"]["accuracy"] if "large" in summaries else None
    rows = []
    for name, s in summaries.items():
        lat = s["latency_s"]
        share = f"{100 * s['accuracy'] / large_acc:.1f}" if large_acc else "n/a"
        rows.append(
            [
                name,
                f"{100 * s['accuracy']:.1f}",
                share,
                f"{100 * s['offload_fraction']:.1f}",
                _ms(lat["p50"]),
                _ms(lat["p99"]),
                f"{1e6 * s['energy_j_per_inference']:.1f}",
                f"{s['bytes_up_per_inference']:.0f}",
                f"{100 * s['deadline_met_fraction']:.1f}",
            ]
        )
    return table(
        [
            "policy",
            "accuracy (%)",
            "of large's accuracy (%)",
            "offloaded (%)",
            "p50 latency (ms)",
            "p99 latency (ms)",
            "energy / inference (µJ)",
            "bytes up / inference (B)",
            f"deadline {deadline_s * 1e3:g} ms met (%)",
        ],
        rows,
    )


def _best_paragraph(summaries: dict[str, Any], target_offload: float) -> str:
    """The best policy within the offload target (the summary's rule), against large."""
    best = best_within_target(summaries, target_offload)
    large = summaries.get("large")
    if best is None or large is None or not large["accuracy"]:
        return ""
    s = summaries[best]
    return paragraph(
        f"**Best policy offloading at most {100 * target_offload:.0f} %:** "
        f"{best}, {100 * s['accuracy']:.1f} % accuracy = "
        f"{100 * s['accuracy'] / large['accuracy']:.1f} % of the large model's, at "
        f"{100 * s['offload_fraction']:.1f} % offload and "
        f"{100 * s['energy_j_per_inference'] / large['energy_j_per_inference']:.0f} % of "
        "large's device energy per inference."
    )


def _plots(result: RunResult, summaries: dict[str, Any], plots_dir: Path) -> str:
    """Trade-offs, latency CDF and energy breakdown of the policies."""
    outcomes = result.require_policies().outcomes
    html = image(
        plots.policy_tradeoffs(summaries, plots_dir / "policy_tradeoffs.png"),
        "Accuracy against offload fraction and against device energy per inference.",
    )
    html += image(
        plots.policy_latency_cdf(
            {k: o.latency_s for k, o in outcomes.items()}, plots_dir / "policy_latency.png"
        ),
        "Latency of the answer per policy (on-device answers take the MCU inference time).",
    )
    html += image(
        plots.policy_energy_breakdown(summaries, plots_dir / "policy_energy.png"),
        "Device energy per inference: compute on the MCU and radio.",
    )
    return html


def _accuracy_by_snr(result: RunResult, plots_dir: Path) -> str:
    snr = result.require_task().meta_test.get("snr_db")
    if snr is None:
        return ""
    outcomes = result.require_policies().outcomes
    return image(
        plots.policy_accuracy_by_snr(
            snr[result.require_policies().requests.sample],
            {k: o.correct for k, o in outcomes.items()},
            plots_dir / "policy_accuracy_snr.png",
        ),
        "Accuracy per SNR of the requested frames.",
    )


def policies_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section | None:
    """Table of policies, trade-off plots, latency CDF, energy breakdown, accuracy by SNR."""
    pol = metrics.get("policies")
    if pol is None:
        return None
    summaries = ran(pol)
    config = result.scenario.policies
    requests = result.require_policies().requests
    body = paragraph(
        f"{requests.device.size:,} requests of {result.scenario.devices.count} devices, the same "
        "for every policy, over the run's network. Cascade, router and early_exit are tuned on "
        f"{pol['_validation']} to offload {100 * config.target_offload:.0f} % "
        "of requests; the oracle offloads exactly the frames the large model fixes (the bound). "
        "large_compressed_<b>b sends the int8 frame requantized to b bits per I/Q value and "
        "compressed with zstd."
    )
    body += notes(metrics, "policies")
    body += _best_paragraph(summaries, config.target_offload)
    body += _policy_table(summaries, config.deadline_s)
    body += _plots(result, summaries, plots_dir)
    body += _split_exit_part(
        result, pol.get("_split_exit"), pol.get("_payload_accuracy", {}), plots_dir
    )
    body += _accuracy_by_snr(result, plots_dir)
    return Section("Collaborative inference: policies compared", body)
