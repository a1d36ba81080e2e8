"""The report's security section: overhead, fuzzing, aggregation under attack, privacy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinylarge.report import plots
from tinylarge.report.html import Section, image, paragraph, table
from tinylarge.report.notes import is_skipped, notes
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


def _uj(joules: float) -> str:
    return f"{1e6 * joules:,.1f} uJ"


def _device_costs(wire: dict[str, Any]) -> str:
    if "handshake_device_j" not in wire:
        return ""
    return paragraph(
        f"On the {wire['target_mcu']} (cycle counts measured on a Cortex-M4, wolfSSL's "
        f"STM32 benchmarks), sealing one {wire['aead']} frame message costs "
        f"{_uj(wire['device_crypto_j_per_frame_message'])}, a handshake "
        f"{1e3 * wire['handshake_device_j']:.2f} mJ ({1e3 * wire['handshake_device_s']:.0f} ms "
        f"of two X25519 and one Ed25519 sign + verify) and checking a signed model update "
        f"{1e3 * wire['bundle_check_device_j']:.2f} mJ (Ed25519 verify + SHA-256)."
    )


def _policy_costs(policies: dict[str, Any], lifetime_s: float | None) -> str:
    rows = []
    plain = policies.get("_unprotected", {})
    for name, s in policies.items():
        sec = s.get("security") if isinstance(s, dict) else None
        if name.startswith("_") or not sec or not s.get("offload_fraction"):
            continue
        ref = plain.get(name)
        p99 = (s.get("latency_s") or {}).get("p99")
        rows.append(
            [
                name,
                f"{s['bytes_up_per_inference']:.1f}",
                f"{sec['overhead_bytes_per_inference'] + sec['handshake_bytes_per_inference']:.1f}",
                _uj(s["energy_j_per_inference"]),
                _uj(
                    sec["crypto_energy_j_per_inference"]
                    + sec["handshake_radio_energy_j_per_inference"]
                ),
                "" if ref is None else _uj(ref["energy_j_per_inference"]),
                "" if p99 is None else f"{1e3 * p99:.1f} ms",
                ""
                if ref is None or ref["latency_s"]["p99"] is None
                else f"{1e3 * ref['latency_s']['p99']:.1f} ms",
            ]
        )
    if not rows:
        return ""
    return paragraph(
        "**What it costs the inference policies** (per inference, all requests; headers and "
        "tags on every offload and reply, the devices' crypto, and one handshake per device that "
        "offloads"
        + (
            f" per {lifetime_s:,.0f}-second session, amortized over the run"
            if lifetime_s is not None
            else ""
        )
        + "; the rightmost columns rerun the policy on the same draws without the layer):"
    ) + table(
        [
            "policy",
            "bytes up / inference",
            "security bytes (headers and tags both ways, handshakes)",
            "device energy",
            "of which crypto + handshake radio",
            "device energy without security",
            "p99 latency",
            "p99 without security",
        ],
        rows,
    )


def _colearning_costs(colearning: dict[str, Any]) -> str:
    rows = []
    for name, s in colearning.items():
        sec = s.get("security") if isinstance(s, dict) else None
        if not sec:
            continue
        total = s["total_bytes_up"] + s["total_bytes_down"]
        extra = sec["overhead_bytes"] + sec["handshake_bytes"]
        rows.append(
            [
                name,
                f"{total / 1024:,.1f} KiB",
                f"{extra / 1024:,.1f} KiB ({100 * extra / max(total, 1):.1f} %)",
                str(sec["sessions"]),
                f"{1e3 * sec['crypto_energy_j']:,.1f} mJ "
                f"({100 * sec['crypto_energy_j'] / max(s['total_device_energy_j'], 1e-30):.1f} %)",
            ]
        )
    if not rows:
        return ""
    return paragraph(
        "**What it costs co-learning** (whole run of each scheme; the closed loop's pushes "
        "are signed bundles every device checks):"
    ) + table(["scheme", "bytes", "of which security", "sessions", "device crypto energy"], rows)


def security_section(result: RunResult, metrics: dict[str, Any], plots_dir: Path) -> Section | None:
    """What the security layer costs and what it stops."""
    sec = metrics.get("security")
    if not sec:
        return None
    wire, fuzz = sec["wire"], sec["fuzz"]
    rejected = sum(sum(v.values()) for v in fuzz["rejections"].values())
    body = paragraph(
        f"Every message is sealed with an authenticated cipher "
        f"({wire.get('aead', 'chacha20-poly1305')}) under keys "
        f"from a signed X25519 handshake ({wire['handshake_bytes']['hello']} + "
        f"{wire['handshake_bytes']['reply']} bytes); each one costs "
        f"**{wire['message_overhead_bytes']} extra bytes** (header with a "
        f"{wire['device_id_bytes']}-byte device id, 16-byte tag). A signed model update adds "
        f"{wire['bundle_overhead_bytes']} bytes to the {wire['model_bytes']:,}-byte int8 model."
    )
    body += _device_costs(wire)
    body += _policy_costs(metrics.get("policies") or {}, wire.get("session_lifetime_s"))
    body += _colearning_costs(metrics.get("colearning") or {})
    body += paragraph(
        f"**Fuzzing:** {fuzz['messages']:,} mutated messages (bit flips, truncation, "
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
    body += notes(metrics, "security")
    rows = sec.get("aggregation_under_attack")
    rows = rows if isinstance(rows, list) else []
    if rows:
        body += paragraph(
            "**Aggregation under attack:** final FedAvg test accuracy on IID device data with "
            "a share of the devices malicious, per aggregator."
        )
        body += _attack_table(rows)
        body += image(
            plots.accuracy_under_attack(rows, plots_dir / "attacks.png"),
            "Accuracy against the share of malicious devices; 0 % is the attack-free run.",
        )
    dp = sec.get("dp")
    dp = None if dp is None or (is_skipped(dp) and "epsilon" not in dp) else dp
    plain = [r["accuracy"] for r in rows if r["attack"] == "none" and r["aggregator"] == "mean"]
    if dp is not None:
        body += paragraph(
            f"**Differential privacy:** DP-FedAvg (clip {dp['clip']:g}, noise multiplier "
            f"{dp['noise_multiplier']:g}, {dp['rounds']} rounds at sampling rate "
            f"{dp['sample_rate']:.2f}) reaches {100 * dp['accuracy']:.1f} % with "
            f"**epsilon = {dp['epsilon']:.2f}** at delta = {dp['delta']:g} (RDP accountant)"
            + (
                f", against {100 * plain[0]:.1f} % for the same FedAvg without privacy."
                if plain
                else "."
            )
        )
    return Section("Security: what it costs and what it stops", body)
