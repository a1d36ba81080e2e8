"""The report's 6G network section: coverage per radio profile, message latency and energy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinylarge.report import plots
from tinylarge.report.html import Section, image, paragraph, table
from tinylarge.sim.state import RunResult


def format_rate(bps: float) -> str:
    """A bit rate with its unit: 1.5 Mb/s, 158 kb/s."""
    for unit, factor in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bps >= factor:
            return f"{bps / factor:.3g} {unit}"
    return f"{bps:.3g} b/s"


def coverage_cells(summary: dict[str, Any]) -> list[str]:
    """SNR median and 5th percentile (dB), rate median, 5th percentile and shared, outage."""
    return [
        f"{summary['snr_db_median']:.1f}",
        f"{summary['snr_db_p5']:.1f}",
        format_rate(summary["rate_bps_median"]),
        format_rate(summary["rate_bps_p5"]),
        format_rate(summary["shared_rate_bps_median"]),
        f"{100 * summary['outage_fraction']:.2f} %",
    ]


def _hz(hz: float) -> str:
    return format_rate(hz).replace("b/s", "Hz")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.2f}"


def _coverage(result: RunResult, net: dict[str, Any], plots_dir: Path) -> str:
    """Coverage table per radio profile and the chosen profile's SNR map."""
    rows = [
        [name, f"{c['carrier_ghz']:g} GHz / {_hz(c['uplink_bandwidth_hz'])}", c["scenario"],
         f"{c['cell_radius_m']:.0f}", *coverage_cells(c)]
        for name, c in net["coverage"].items()
    ]  # fmt: skip
    per_cell = next(iter(net["coverage"].values()))["devices_per_cell"]
    html = paragraph(
        "Uplink coverage of each radio profile: devices dropped uniformly over the cell (TR "
        "38.901 path loss with LOS probability, shadow fading and outdoor-to-indoor loss, one "
        "fast-fading draw each). Rates use the whole uplink band, and the band shared by "
        f"{per_cell} devices at once."
    )
    html += table(
        [
            "profile",
            "carrier / band",
            "scenario",
            "cell radius (m)",
            "SNR median (dB)",
            "SNR 5th pct (dB)",
            "rate median",
            "rate 5th pct",
            f"rate, {per_cell} sharing",
            "outage",
        ],
        rows,
    )
    coverages = result.require_network().coverage
    chosen = coverages[net["profile"]]
    topo = chosen.cells.topology
    html += image(
        plots.network_coverage(
            (topo.x_m, topo.y_m, chosen.snr_db),
            f"{net['profile']}: uplink SNR over the cell",
            {name: c.rate_bps for name, c in coverages.items()},
            plots_dir / "network_coverage.png",
        ),
        "Left: uplink SNR of devices over the chosen profile's cell. Right: distribution of the "
        "whole-band uplink rate per profile.",
    )
    return html


def _messages(result: RunResult, net: dict[str, Any]) -> str:
    """What the devices send, and the latency and energy of each message."""
    up, traffic, edge = net["uplink"], net["traffic"], net["edge_server"]
    html = paragraph(
        f"{result.scenario.devices.count} devices send Poisson messages of "
        f"{traffic['message_bytes']} bytes (one int8 frame) at {traffic['rate_per_device_hz']:g} "
        f"per second each for {traffic['duration_s']:g} s over {net['profile']} "
        f"({_cells_phrase(net)}); the edge's "
        f"large model answers in batches of up to {edge['max_batch']} ({edge['source']}) with "
        f"{traffic['reply_bytes']} bytes. Latency covers slot alignment, the cell's uplink "
        "queue, airtime, HARQ retransmissions, propagation, the edge's batching queue and the "
        "downlink reply. Energy per message: radio (TX, RX of the reply, connected idle while "
        f"waiting, {up['sleep_s_per_message']:g} s of sleep until the next message) plus "
        f"{up['compute_energy_j_per_message'] * 1e6:.1f} µJ for one int8 tiny-model inference "
        "on the target MCU."
    )
    lat = up["latency_s"]
    energy = up["energy_j_per_message"]
    html += table(
        [
            "messages",
            "delivered (%)",
            "outage (%)",
            "p50 latency (ms)",
            "p95 latency (ms)",
            "p99 latency (ms)",
            "energy / message (µJ)",
            "mean transmissions",
        ],
        [
            [
                f"{up['messages']:,}",
                f"{100 * up['delivered_fraction']:.2f}",
                f"{100 * up['outage_fraction']:.2f}",
                _ms(lat["p50"]),
                _ms(lat["p95"]),
                _ms(lat["p99"]),
                "n/a" if energy is None else f"{energy * 1e6:.1f}",
                "n/a" if up["mean_transmissions"] is None else f"{up['mean_transmissions']:.2f}",
            ]
        ],
    )
    return html


def network_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section | None:
    """Coverage table and map, message latency CDF, energy and bytes per message."""
    net = metrics.get("network")
    if net is None:
        return None
    body = _coverage(result, net, plots_dir) + _messages(result, net)
    body += image(
        plots.latency_cdf(
            result.require_network().messages.latency_s,
            f"Message latency over {net['profile']}",
            plots_dir / "latency_cdf.png",
        ),
        "Distribution of the latency of delivered messages.",
    )
    return Section("6G network", body)


def _cells_phrase(net: dict[str, Any]) -> str:
    """How many cells, where the edge servers are and how the run was split."""
    cells = net.get("cells", 1)
    edge = net["edge_server"].get("sites", "shared")
    where = "an edge server at each base station" if edge == "per_cell" else "one edge server"
    text = f"{cells} cell{'s' if cells != 1 else ''}, {where}"
    if net.get("ray_shards"):
        text += (
            f"; simulated in {net['ray_shards']} Ray shards of cells, same result as in one process"
        )
    return text
