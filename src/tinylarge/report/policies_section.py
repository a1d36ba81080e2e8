"""The report's collaborative-inference section: every policy side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinylarge.report import plots
from tinylarge.report.html import Section, image, paragraph, table
from tinylarge.sim.state import RunResult


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.2f}"


def policies_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section | None:
    """Table of policies, trade-off plots, latency CDF, energy breakdown, accuracy by SNR."""
    pol = metrics.get("policies")
    if pol is None:
        return None
    summaries = {k: v for k, v in pol.items() if not k.startswith("_")}
    large_acc = summaries["large"]["accuracy"] if "large" in summaries else None
    rows = []
    for name, s in summaries.items():
        lat = s["latency_s"]
        share = f"{100 * s['accuracy'] / large_acc:.1f} %" if large_acc else "n/a"
        rows.append(
            [
                name,
                f"{100 * s['accuracy']:.1f} %",
                share,
                f"{100 * s['offload_fraction']:.1f} %",
                _ms(lat["p50"]),
                _ms(lat["p99"]),
                f"{1e6 * s['energy_j_per_inference']:.1f}",
                f"{s['bytes_up_per_inference']:.0f}",
                f"{100 * s['deadline_met_fraction']:.1f} %",
            ]
        )
    outcomes = result.policies["outcomes"]
    requests = result.policies["requests"]
    body = paragraph(
        f"{requests.device.size:,} requests of {result.scenario.devices.count} devices, the same "
        "for every policy, over the run's network. Cascade and router are tuned on "
        f"{pol['_validation']} to offload {100 * result.scenario.policies.target_offload:.0f} % "
        "of requests; the oracle offloads exactly the frames the large model fixes (the bound). "
        "large_compressed_<b>b sends the int8 frame requantized to b bits per I/Q value and "
        "compressed with zstd."
    )
    body += table(
        [
            "policy",
            "accuracy",
            "of large's",
            "offloaded",
            "p50 (ms)",
            "p99 (ms)",
            "energy / inference (uJ)",
            "bytes up / inference",
            f"deadline {result.scenario.policies.deadline_s * 1e3:g} ms met",
        ],
        rows,
    )
    body += image(
        plots.policy_tradeoffs(summaries, plots_dir / "policy_tradeoffs.png"),
        "Accuracy against offload fraction and against device energy per inference.",
    )
    body += image(
        plots.policy_latency_cdf(
            {k: o.latency_s for k, o in outcomes.items()}, plots_dir / "policy_latency.png"
        ),
        "Latency of the answer per policy (on-device answers take the MCU inference time).",
    )
    body += image(
        plots.policy_energy_breakdown(summaries, plots_dir / "policy_energy.png"),
        "Device energy per inference: compute on the MCU and radio.",
    )
    snr = result.require_task().meta_test.get("snr_db")
    if snr is not None:
        body += image(
            plots.policy_accuracy_by_snr(
                snr[requests.sample],
                {k: o.correct for k, o in outcomes.items()},
                plots_dir / "policy_accuracy_snr.png",
            ),
            "Accuracy per SNR of the requested frames.",
        )
    return Section("Collaborative inference: policies compared", body)
