"""The report's security section: overhead, fuzzing, aggregation under attack, privacy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinylarge.report import plots
from tinylarge.report.html import Section, image, paragraph, table
from tinylarge.sim.state import RunResult


def _attack_table(rows: list[dict[str, Any]]) -> str:
    settings = list(dict.fromkeys((r["attack"], r["malicious_fraction"]) for r in rows))
    aggregators = list(dict.fromkeys(r["aggregator"] for r in rows))
    acc = {(r["aggregator"], r["attack"], r["malicious_fraction"]): r["accuracy"] for r in rows}
    header = ["aggregator"] + [
        "no attack" if a == "none" else f"{a}, {100 * f:.0f} %" for a, f in settings
    ]
    body = [[agg] + [f"{100 * acc[(agg, a, f)]:.1f} %" for a, f in settings] for agg in aggregators]
    return table(header, body)


def security_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section | None:
    """What the security layer costs and what it stops."""
    sec = metrics.get("security")
    if not sec:
        return None
    wire, fuzz = sec["wire"], sec["fuzz"]
    rejected = sum(sum(v.values()) for v in fuzz["rejections"].values())
    body = paragraph(
        f"Every message is sealed with an authenticated cipher (ChaCha20-Poly1305) under keys "
        f"from a signed X25519 handshake ({wire['handshake_bytes']['hello']} + "
        f"{wire['handshake_bytes']['reply']} bytes); each one costs "
        f"<b>{wire['message_overhead_bytes']} extra bytes</b> (header with a "
        f"{wire['device_id_bytes']}-byte device id, 16-byte tag). A signed model update adds "
        f"{wire['bundle_overhead_bytes']} bytes to the {wire['model_bytes']:,}-byte int8 model."
    )
    body += paragraph(
        f"<b>Fuzzing:</b> {fuzz['messages']:,} mutated messages (bit flips, truncation, "
        f"extension, reordering, replay, header edits, forged ids, other sessions' messages): "
        f"{fuzz['accepted']} accepted, {rejected:,} rejected with a named reason."
    )
    body += table(
        ["mutation", "rejected as"],
        [
            [k, ", ".join(f"{n}: {c:,}" for n, c in v.items())]
            for k, v in fuzz["rejections"].items()
        ],
    )
    rows = sec["aggregation_under_attack"]
    body += paragraph(
        "<b>Aggregation under attack:</b> final FedAvg test accuracy on IID device data with a "
        "share of the devices malicious, per aggregator."
    )
    body += _attack_table(rows)
    body += image(
        plots.accuracy_under_attack(rows, plots_dir / "attacks.png"),
        "Accuracy against the share of malicious devices; 0 % is the attack-free run.",
    )
    dp = sec.get("dp")
    if dp is not None:
        body += paragraph(
            f"<b>Differential privacy:</b> DP-FedAvg (clip {dp['clip']:g}, noise multiplier "
            f"{dp['noise_multiplier']:g}, {dp['rounds']} rounds at sampling rate "
            f"{dp['sample_rate']:.2f}) reaches {100 * dp['accuracy']:.1f} % with "
            f"<b>epsilon = {dp['epsilon']:.2f}</b> at delta = {dp['delta']:g} (RDP accountant)."
        )
    return Section("Security: what it costs and what it stops", body)
