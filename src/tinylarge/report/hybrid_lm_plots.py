"""PNG figures of the hybrid language-model section (matplotlib's object API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from tinylarge.report.plots import save_figure


def threshold_tradeoff(
    thresholds: Sequence[float],
    uplink_fraction: Sequence[float],
    quality_vs_llm: Sequence[float],
    chosen: float | None,
    measure: str,
    path: Path,
) -> Path:
    """U-HLM's uplink fraction and quality relative to the LLM (both %) against the
    uncertainty threshold; the calibrated threshold as a vertical line."""
    fig = Figure(figsize=(6.8, 4.0))
    ax = fig.add_subplot()
    ax.plot(thresholds, [100 * v for v in uplink_fraction], "o-", label="uplink fraction (%)")
    ax.plot(thresholds, [100 * v for v in quality_vs_llm], "s-", label="quality vs LLM (%)")
    if chosen is not None:
        ax.axvline(chosen, color="0.3", linestyle="--", label=f"calibrated ({chosen:.3g})")
    ax.set_ylim(0, 105)
    ax.set_xlabel(f"uncertainty threshold ({measure})")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("U-HLM: what the threshold trades")
    return save_figure(fig, path)


def throughput_by_link(
    tokens_per_s: Mapping[str, Mapping[str, float]], links: Sequence[str], path: Path
) -> Path:
    """Tokens/s per device of each scheme (bars) at each link quality (groups).

    ``tokens_per_s`` maps scheme -> link label -> tokens/s."""
    fig = Figure(figsize=(7.2, 4.0))
    ax = fig.add_subplot()
    schemes = list(tokens_per_s)
    width = 0.8 / max(len(schemes), 1)
    for j, scheme in enumerate(schemes):
        xs = [i + (j - (len(schemes) - 1) / 2) * width for i in range(len(links))]
        ax.bar(xs, [tokens_per_s[scheme].get(link, 0.0) for link in links], width, label=scheme)
    ax.set_xticks(range(len(links)), [f"mean SNR {link.removesuffix('db')} dB" for link in links])
    ax.set_yscale("log")
    ax.set_ylabel("tokens/s per device")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title("Token throughput against link quality")
    return save_figure(fig, path)


def skipping_tradeoff(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    goal_quality: float,
    goal_skipped: float,
    path: Path,
) -> Path:
    """Quality relative to the LLM (%) against the fraction of uplinks skipped (%), one line
    per uncertainty measure (``curves``: measure -> (skipped, quality)); the goal's corner."""
    fig = Figure(figsize=(6.8, 4.0))
    ax = fig.add_subplot()
    for measure, (skipped, quality) in curves.items():
        ax.plot([100 * v for v in skipped], [100 * v for v in quality], "o-", ms=3, label=measure)
    ax.axhline(100 * goal_quality, color="0.4", linestyle=":", label="goal quality")
    ax.axvline(100 * goal_skipped, color="0.4", linestyle="--", label="goal skipped")
    ax.set_xlabel("uplinks skipped (%)")
    ax.set_ylabel("quality vs LLM (%)")
    ax.set_xlim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("U-HLM: skipping against quality, by uncertainty measure")
    return save_figure(fig, path)
