"""The report's opening block: the system's answer, read from ``metrics.json`` alone.

For the best policy within the scenario's offload target it gives the accuracy kept relative
to the large model, the offload fraction, device energy, bytes on air and p99 latency per
request, beside the tiny-only and large-only baselines over the same requests; then what the
run skipped or missed. Everything here reads the metrics document (``policies.<name>``,
``models.<role>``, ``skipped``, ``warnings``), never the run's in-memory state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tinylarge.report.foundation_section import foundation_summary
from tinylarge.report.html import escape, paragraph, table
from tinylarge.report.notes import missed_parts, ran
from tinylarge.sim.stage_results import BOUNDS, best_policy

#: The policy that runs everything on the device, and the one that offloads everything.
TINY_ONLY, LARGE_ONLY = "tiny", "large"

#: Column headers of the summary table, units included.
SUMMARY_COLUMNS = (
    "policy",
    "accuracy (%)",
    "accuracy kept vs large-only (%)",
    "offloaded (% of requests)",
    "device energy / request (µJ)",
    "bytes up on air / request (B)",
    "p99 latency (ms)",
)


@dataclass(frozen=True)
class SummaryRow:
    """One policy's line of the summary table, in SI units.

    Attributes
    ----------
    label : str
        What the row is called in the table (``"cascade (best within target)"``).
    policy : str
        The policy's key under ``policies`` in the metrics.
    accuracy : float
        Fraction of requests answered correctly, 0-1.
    accuracy_kept : float or None
        ``accuracy`` divided by large-only's accuracy over the same requests; None without a
        large-only run (or when it answered nothing correctly).
    offload_fraction : float
        Fraction of requests sent to the edge, 0-1.
    energy_j : float
        Device energy per request (compute and radio), J.
    bytes_up : float
        Bytes the device sends on air per request (payload and security overhead), B.
    p99_latency_s : float or None
        99th percentile of the answer's latency, s; None when no request was answered.
    """

    label: str
    policy: str
    accuracy: float
    accuracy_kept: float | None
    offload_fraction: float
    energy_j: float
    bytes_up: float
    p99_latency_s: float | None

    def cells(self) -> list[str]:
        """The row as table cells, in the units of `SUMMARY_COLUMNS`."""
        kept = "n/a" if self.accuracy_kept is None else f"{100 * self.accuracy_kept:.1f}"
        p99 = "n/a" if self.p99_latency_s is None else f"{1e3 * self.p99_latency_s:.2f}"
        return [
            self.label,
            f"{100 * self.accuracy:.1f}",
            kept,
            f"{100 * self.offload_fraction:.1f}",
            f"{1e6 * self.energy_j:.1f}",
            f"{self.bytes_up:.0f}",
            p99,
        ]


def _check_target(target_offload: float) -> None:
    if not (isinstance(target_offload, int | float) and 0.0 <= target_offload <= 1.0):
        raise ValueError(
            f"target_offload must be a fraction of requests from 0 to 1, got {target_offload!r}"
        )


def best_within_target(policies: Mapping[str, Any], target_offload: float) -> str | None:
    """The best policy that offloads at most ``target_offload`` of its requests.

    The rule is `tinylarge.sim.stage_results.best_policy` (the one the terminal line and
    ``metrics.json``'s ``policies._best_within_target_offload`` use): the highest accuracy,
    then the least device energy per request, then ``policies``' order; bounds (the oracle),
    skipped parts and ``_``-prefixed extras never count; exactly ``target_offload`` is within.

    Parameters
    ----------
    policies : mapping
        The ``policies`` section of ``metrics.json``: name -> ``accuracy``,
        ``offload_fraction``, ``energy_j_per_inference`` (J), ...
    target_offload : float
        Largest fraction of requests the policy may offload, 0-1 (the scenario's
        ``[policies] target_offload``).

    Returns
    -------
    str or None
        The policy's name, None when no policy is within the target.
    """
    _check_target(target_offload)
    return best_policy(ran(dict(policies)), target_offload)


def summary_row(label: str, name: str, policies: Mapping[str, Any]) -> SummaryRow:
    """The summary line of policy ``name`` (`SummaryRow`), relative to large-only's accuracy."""
    s = policies[name]
    large = policies.get(LARGE_ONLY)
    large_accuracy = large.get("accuracy") if isinstance(large, Mapping) else None
    return SummaryRow(
        label=label,
        policy=name,
        accuracy=s["accuracy"],
        accuracy_kept=s["accuracy"] / large_accuracy if large_accuracy else None,
        offload_fraction=s["offload_fraction"],
        energy_j=s["energy_j_per_inference"],
        bytes_up=s["bytes_up_per_inference"],
        p99_latency_s=s["latency_s"]["p99"],
    )


def summary_rows(policies: Mapping[str, Any], target_offload: float) -> list[SummaryRow]:
    """Best policy within the target, tiny-only and large-only, as far as each ran.

    A baseline that is itself the best appears once, labelled as the best.
    """
    done = ran(dict(policies))
    best = best_within_target(done, target_offload)
    rows = []
    if best is not None:
        plain = {TINY_ONLY: "tiny-only", LARGE_ONLY: "large-only"}.get(best, best)
        label = f"{plain} (best within target)"
        rows.append(summary_row(label, best, done))
    for name, label in ((TINY_ONLY, "tiny-only"), (LARGE_ONLY, "large-only")):
        if name in done and name != best:
            rows.append(summary_row(label, name, done))
    return rows


def _pct(fraction: float) -> str:
    """A fraction as a percentage without needless decimals: 0.4 -> ``40``, 0.125 -> ``12.5``."""
    return f"{100 * fraction:.1f}".removesuffix(".0")


def _ratio(part: float, whole: float) -> str:
    return "n/a" if not whole or not math.isfinite(part / whole) else f"{100 * part / whole:.0f} %"


def headline(policies: Mapping[str, Any], target_offload: float) -> str:
    """The answer in one or two sentences (plain text with ``**bold**``)."""
    done = ran(dict(policies))
    target = f"{_pct(target_offload)} %"
    best = best_within_target(done, target_offload)
    if best is None:
        return (
            f"**No policy offloads at most {target} of its requests** (the scenario's offload "
            "target), so there is no answer within the target; the baselines that ran are below."
        )
    row = summary_row(best, best, done)
    if best == TINY_ONLY:
        return (
            f"**Within the {target} offload target, no policy beats tiny-only:** none that "
            f"offloads at most {target} of its requests is more accurate."
        )
    text = f"**Best within the {target} offload target: {best}.** It"
    if row.accuracy_kept is not None:
        text += f" keeps {100 * row.accuracy_kept:.1f} % of large-only's accuracy"
        if TINY_ONLY in done:
            tiny = summary_row(TINY_ONLY, TINY_ONLY, done)
            text += f" (tiny-only keeps {100 * (tiny.accuracy_kept or 0.0):.1f} %)"
        text += f" while offloading {100 * row.offload_fraction:.1f} % of requests"
    else:
        text += (
            f" is {100 * row.accuracy:.1f} % accurate offloading "
            f"{100 * row.offload_fraction:.1f} % of requests (no large-only accuracy to "
            "compare with)"
        )
    if LARGE_ONLY in done and best != LARGE_ONLY:
        large = done[LARGE_ONLY]
        text += (
            f", with {_ratio(row.energy_j, large['energy_j_per_inference'])} of large-only's "
            f"device energy and {_ratio(row.bytes_up, large['bytes_up_per_inference'])} of its "
            "bytes on air per request"
        )
    return text + "."


def over_target(policies: Mapping[str, Any], target_offload: float) -> str:
    """Plain text naming the partial-offload policies that beat the best but miss the target
    ("" when none): what the target costs."""
    done = ran(dict(policies))
    best = best_within_target(done, target_offload)
    floor = done[best]["accuracy"] if best is not None else -1.0
    missed = [
        f"{name} ({100 * s['accuracy']:.1f} % accurate, offloads {100 * s['offload_fraction']:.1f}"
        " %)"
        for name, s in done.items()
        if name not in BOUNDS
        and target_offload < s["offload_fraction"] < 1.0
        and s["accuracy"] > floor
    ]
    if not missed:
        return ""
    return "More accurate but over the offload target: " + ", ".join(missed) + "."


def _missed_list(metrics: Mapping[str, Any]) -> str:
    items = missed_parts(metrics)
    if not items:
        return paragraph("Nothing was skipped, and every part met its target.", "note")
    body = paragraph(
        "**Parts of this run were left out or missed their target** (everything else ran; the "
        "sections below say where):"
    )
    lines = "".join(
        f"<li><b>{escape(p.kind_in_words)}</b> {escape(p.where)}: {escape(p.reason)}</li>"
        for p in items
    )
    return body + f'<ul class="notes">{lines}</ul>'


def _no_policies(metrics: Mapping[str, Any]) -> str:
    models = metrics.get("models", {})
    text = (
        "**This run compared no inference policies** (its collaborative-inference stage is off "
        "or did not run), so it has no answer on where to compute: the model accuracies below "
        "are what it measured."
    )
    accuracies = [
        f"{role} {100 * m['accuracy']:.1f} %"
        for role, m in models.items()
        if isinstance(m, Mapping) and isinstance(m.get("accuracy"), int | float)
    ]
    if accuracies:
        text += " Test accuracy: " + ", ".join(accuracies) + "."
    return paragraph(text)


def _foundation(metrics: Mapping[str, Any]) -> str:
    """The foundation model in a sentence or two (`foundation_summary`), "" without one."""
    text = foundation_summary(metrics)
    return paragraph(text) if text else ""


def summary_block(metrics: Mapping[str, Any], target_offload: float) -> str:
    """The report's opening block as HTML: headline, summary table, skipped or missed parts.

    Parameters
    ----------
    metrics : mapping
        The run's ``metrics.json`` document (`tinylarge.report.metrics.collect`).
    target_offload : float
        The scenario's offload target, a fraction of requests, 0-1.
    """
    _check_target(target_offload)
    policies = metrics.get("policies")
    if not isinstance(policies, Mapping) or not ran(dict(policies)):
        return _no_policies(metrics) + _foundation(metrics) + _missed_list(metrics)
    body = paragraph(headline(policies, target_offload))
    rows = summary_rows(policies, target_offload)
    body += table(SUMMARY_COLUMNS, [r.cells() for r in rows])
    extra = over_target(policies, target_offload)
    requests = next(iter(ran(dict(policies)).values())).get("requests")
    same = f"the same {requests:,} requests" if isinstance(requests, int) else "the same requests"
    note = (
        f"Every policy answers {same} over the run's network; energy, bytes and latency are per "
        "request, on-device answers included."
    )
    body += paragraph(f"{extra} {note}" if extra else note, "note")
    return body + _foundation(metrics) + _missed_list(metrics)
