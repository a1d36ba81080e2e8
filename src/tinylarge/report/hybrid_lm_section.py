"""The report of a text run: hybrid tiny/large language models over the 6G cell, read from
``metrics.json`` alone (``hybrid_lm.*``; `tinylarge.sim.hybrid_lm_results`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tinylarge.report.html import Section, image, paragraph, table
from tinylarge.report.hybrid_lm_plots import (
    skipping_tradeoff,
    threshold_tradeoff,
    throughput_by_link,
)

#: Scheme names in words, in the report's order.
SCHEME_WORDS: dict[str, str] = {
    "slm": "SLM only (device)",
    "llm": "LLM only (edge, every token over the link)",
    "hlm": "HLM (every draft verified)",
    "u_hlm": "U-HLM (uncertain drafts verified)",
    "cu_hlm": "CU-HLM (U-HLM, truncated distribution)",
}

_COLUMNS = (
    "scheme", "uplinks (% of tokens)", "LLM calls (% of tokens)", "quality vs LLM (%)",
    "LLM likelihood vs LLM (%)", "tokens/s per device", "p50 / p99 token latency (ms)",
    "bytes on air / token", "device energy / token (mJ)",
)  # fmt: skip


_DEFINITIONS = (
    "Quality vs LLM: greedy next-token accuracy on held-out text relative to the LLM's own "
    "(teacher forcing; speculative verification under greedy decoding emits the LLM's token, "
    "so HLM is exactly 100 %). LLM likelihood vs LLM: how likely the LLM finds the text each "
    "scheme samples, relative to its own samples. Uplinks: the scheme's decisions on the "
    "held-out text. Tokens/s: per device, every device generating over the cell, each sent "
    "token waiting for its reply; latency, bytes (header and tag included) and device energy "
    "(drafting, sealing, radio, opening) per token."
)


def _fallbacks(hybrid: Mapping[str, Any]) -> str:
    """A note on tokens the cell did not carry: kept unverified (outage) or timed out."""
    parts = []
    for name in scheme_names(hybrid):
        s = hybrid[name]
        fallback, late = s.get("fallback_fraction", 0.0), s.get("timed_out_fraction", 0.0)
        if fallback or late:
            parts.append(f"{name} {_pct(fallback)} % kept unverified, {_pct(late)} % timed out")
    if not parts:
        return ""
    return paragraph(
        "Tokens the cell did not carry (a device out of coverage keeps its draft at once; a reply "
        "later than the deadline times out): " + "; ".join(parts) + ".",
        "note",
    )


def _pct(value: object) -> str:
    return f"{100 * value:.1f}" if isinstance(value, int | float) else "n/a"


def _num(value: object, fmt: str = ".3g", scale: float = 1.0) -> str:
    return format(scale * value, fmt) if isinstance(value, int | float) else "n/a"


def scheme_names(hybrid: Mapping[str, Any]) -> list[str]:
    """The schemes that ran, in the report's order."""
    return [s for s in SCHEME_WORDS if isinstance(hybrid.get(s), Mapping)]


def scheme_rows(hybrid: Mapping[str, Any]) -> list[list[str]]:
    """One row per scheme with U-HLM's table columns (`_COLUMNS`)."""
    rows = []
    for name in scheme_names(hybrid):
        s = hybrid[name]
        latency = (
            f"{_num(s.get('p50_token_latency_s'), '.1f', 1e3)} / "
            f"{_num(s.get('p99_token_latency_s'), '.1f', 1e3)}"
        )
        rows.append([
            SCHEME_WORDS[name], _pct(s.get("uplink_fraction")), _pct(s.get("llm_calls_fraction")),
            _pct(s.get("quality_vs_llm")), _pct(s.get("likelihood_vs_llm")),
            _num(s.get("tokens_per_s"), ".1f"), latency, _num(s.get("bytes_per_token"), ".1f"),
            _num(s.get("device_energy_per_token_j"), ".3f", 1e3),
        ])  # fmt: skip
    return rows


def headline(hybrid: Mapping[str, Any]) -> str:
    """The answer in words: U-HLM's skipped uplinks, quality and speed-up, against the goals."""
    goals = hybrid.get("goals", {})
    skip, speed = (
        goals.get("skipped_uplinks", {}),
        goals.get("throughput_over_hlm_on_weak_link", {}),
    )
    if skip.get("met") is None:
        return "U-HLM did not run, so there is no skipping to report; the table compares the rest."
    text = (
        f"**U-HLM skipped {_pct(skip['u_hlm_skipped_fraction'])} % of uplinks and LLM calls at "
        f"{_pct(skip['u_hlm_quality_vs_llm'])} % of the LLM's quality** (goal: at least "
        f"{_pct(skip['goal_skipped_fraction'])} % skipped at no less than "
        f"{_pct(skip['goal_quality'])} %: {'met' if skip['met'] else 'not met'})."
    )
    if speed.get("met") is not None:
        link = str(speed["link"]).removesuffix("db")
        text += (
            f" On the weak link (every device's mean SNR {link} dB) it generates "
            f"{_num(speed['u_hlm_over_hlm'], '.2f')}x HLM's tokens per second (goal: "
            f"{_num(speed['goal'], 'g')}x: {'met' if speed['met'] else 'not met'})"
        )
        if speed.get("cu_hlm_over_hlm") is not None:
            cu = _num(speed["cu_hlm_over_hlm"], ".2f")
            text += f"; CU-HLM, sending a truncated distribution, {cu}x"
        text += "."
    return text


def _models(hybrid: Mapping[str, Any]) -> str:
    models = hybrid.get("models", {})
    rows = []
    for role in ("draft", "target"):
        m = models.get(role)
        if isinstance(m, Mapping):
            rows.append([
                role, str(m.get("source", "")), f"{m.get('parameters', 0):,}",
                _num(m.get("perplexity"), ".1f"), _pct(m.get("next_token_accuracy")),
            ])  # fmt: skip
    body = table(
        ["model", "weights", "parameters", "held-out perplexity", "next-token accuracy (%)"], rows
    )
    mcu = models.get("draft", {}).get("mcu") if isinstance(models.get("draft"), Mapping) else None
    if isinstance(mcu, Mapping):
        body += paragraph(str(mcu.get("summary", "")), "note")
    return body


def _calibration(hybrid: Mapping[str, Any], plots_dir: Path) -> str:
    """How U-HLM's threshold was found, and what other thresholds and measures would give."""
    calibration, sweep = hybrid.get("calibration", {}), hybrid.get("threshold_sweep", {})
    u = calibration.get("u_hlm", {})
    body = ""
    if u:
        body += paragraph(
            f"U-HLM's threshold, calibrated on the first half of the held-out text: a line "
            f"through the LLM's rejection probability against the draft's `{u.get('measure')}` "
            f"uncertainty (slope {_num(u.get('slope'))}, intercept {_num(u.get('intercept'))}, "
            f"r = {_num(u.get('r'), '.3f')}, {u.get('positions', 0):,} positions), read at the "
            f"tolerated rejection {_num(u.get('tolerance'), 'g')}: {u.get('reason', '')}."
        )
    measure = sweep.get("measure")
    curve = sweep.get(measure) if isinstance(measure, str) else None
    if isinstance(curve, Mapping) and curve.get("thresholds"):
        path = threshold_tradeoff(
            curve["thresholds"], curve["uplink_fraction"], curve["quality_vs_llm"],
            sweep.get("chosen"), str(measure), plots_dir / "hybrid_lm_threshold.png",
        )  # fmt: skip
        body += image(path, "U-HLM's uplink fraction and quality against the threshold.")
    swept = {m: c for m, c in sweep.items() if isinstance(c, Mapping) and "uplink_fraction" in c}
    curves = {m: ([1 - v for v in c["uplink_fraction"]], c["quality_vs_llm"])
              for m, c in swept.items()}  # fmt: skip
    if curves:
        goals = hybrid.get("goals", {}).get("skipped_uplinks", {})
        path = skipping_tradeoff(curves, goals.get("goal_quality", 0.97),
                                 goals.get("goal_skipped_fraction", 0.45),
                                 plots_dir / "hybrid_lm_skipping.png")  # fmt: skip
        body += image(path, "Quality against uplinks skipped, for each uncertainty measure.")
        body += table(
            ["uncertainty measure", f"most uplinks skipped at >= {_pct(sweep.get('goal_quality'))} "
             "% of the LLM's quality (%)"],
            [[m, _pct(sweep[m].get("most_skipped_at_goal_quality"))] for m in curves],
        )  # fmt: skip
    return body


def _links(hybrid: Mapping[str, Any], plots_dir: Path) -> str:
    links = hybrid.get("link_quality", {})
    if not links:
        return ""
    labels = list(links)
    rates = {s: {k: links[k][s]["tokens_per_s"] for k in labels if s in links[k]}
             for s in scheme_names(hybrid)}  # fmt: skip
    body = image(throughput_by_link(rates, labels, plots_dir / "hybrid_lm_links.png"),
                 "Tokens per second per device of each scheme at each link quality.")  # fmt: skip
    profiles = hybrid.get("profiles", {})
    if profiles:
        names = scheme_names(hybrid)
        rows = [[p] + [_num(v.get(s, {}).get("tokens_per_s"), ".1f") for s in names]
                for p, v in profiles.items()]  # fmt: skip
        body += table(["radio profile", *(f"{s} tokens/s" for s in names)], rows)
    return body


def hybrid_lm_section(metrics: Mapping[str, Any], plots_dir: Path) -> Section | None:
    """The hybrid LM section (None when the run has none)."""
    hybrid = metrics.get("hybrid_lm")
    if not isinstance(hybrid, Mapping):
        return None
    body = paragraph(headline(hybrid))
    body += table(_COLUMNS, scheme_rows(hybrid))
    body += paragraph(_DEFINITIONS, "note")
    body += _fallbacks(hybrid)
    body += _models(hybrid) + _calibration(hybrid, plots_dir) + _links(hybrid, plots_dir)
    exact = hybrid.get("exactness", {})
    if exact:
        rows = [[SCHEME_WORDS.get(k, k), _num(v, ".4f")] for k, v in exact.items()
                if isinstance(v, int | float)]  # fmt: skip
        body += table(["scheme", "total variation from the LLM's next-token distribution"], rows)
    return Section("Hybrid language models over the 6G link", body)


def hybrid_lm_summary(metrics: Mapping[str, Any]) -> Section | None:
    """The lead block of a text run: the headline and the scheme table."""
    hybrid = metrics.get("hybrid_lm")
    if not isinstance(hybrid, Mapping):
        return None
    return Section(
        "Summary", paragraph(headline(hybrid)) + table(_COLUMNS, scheme_rows(hybrid)), lead=True
    )
