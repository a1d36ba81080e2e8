"""Quality of the schemes on scored held-out text, U-HLM's calibration on it, and the
threshold sweep (uplink fraction and quality against the threshold).

Quality is greedy next-token accuracy under teacher forcing (`TokenTrace.emitted` against the
true next token), and relative to the LLM alone (its greedy token against the truth).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tinylarge.config.hybrid_lm_config import UncertaintyMeasure
from tinylarge.integrate.hybrid_lm.calibration import RejectionFit, Threshold, threshold_for
from tinylarge.integrate.hybrid_lm.schemes import CuHlm, SpeculativeScheme, UHlm
from tinylarge.integrate.hybrid_lm.teacher_forced import PositionScores, TokenTrace, scheme_trace


def next_token_accuracy(trace: TokenTrace, scores: PositionScores) -> float:
    """Fraction of positions where the scheme's greedy token is the true next token."""
    if trace.emitted.shape != scores.truth.shape:
        raise ValueError(
            f"the trace has {trace.emitted.size} positions, the scores {scores.truth.size}"
        )
    return float((trace.emitted == scores.truth).mean())


def llm_accuracy(scores: PositionScores) -> float:
    """Greedy next-token accuracy of the target model alone."""
    return float((scores.target_greedy == scores.truth).mean())


def quality_vs_llm(trace: TokenTrace, scores: PositionScores) -> float:
    """The scheme's greedy next-token accuracy divided by the LLM's (NaN when the LLM never
    predicts the next token, e.g. untrained models)."""
    reference = llm_accuracy(scores)
    return next_token_accuracy(trace, scores) / reference if reference > 0 else math.nan


@dataclass(frozen=True)
class Calibration:
    """U-HLM's threshold from held-out scores: the fit and the threshold it gives."""

    measure: UncertaintyMeasure
    fit: RejectionFit
    threshold: Threshold


def calibrate(
    scores: PositionScores,
    measure: UncertaintyMeasure,
    tolerance: float,
    *,
    truncated: bool = False,
) -> Calibration:
    """Fit the target's rejection probability ``1 - sum(min(p, q_sent))`` against the draft's
    uncertainty by ``measure`` on ``scores`` and find the threshold at ``tolerance``
    (`tinylarge.integrate.hybrid_lm.calibration`); ``truncated``: CU-HLM's distribution."""
    view = scores.view(truncated)
    fit = RejectionFit.fit(scores.uncertainty(measure, truncated), 1.0 - view.acceptance)
    return Calibration(measure, fit, threshold_for(fit, tolerance))


@dataclass(frozen=True)
class ThresholdSweep:
    """U-HLM (or CU-HLM) at each threshold (arrays of shape (thresholds,)).

    Attributes
    ----------
    thresholds : ndarray
    uplink_fraction : ndarray
        Fraction of tokens sent to the edge.
    next_token_accuracy, quality_vs_llm : ndarray
        Greedy next-token accuracy, and relative to the LLM's.
    output_tv : ndarray
        Mean total variation distance of the next-token distribution from the target's.
    bytes_per_token : ndarray
        Mean bytes per token, both ways.
    """

    thresholds: NDArray[np.float64]
    uplink_fraction: NDArray[np.float64]
    next_token_accuracy: NDArray[np.float64]
    quality_vs_llm: NDArray[np.float64]
    output_tv: NDArray[np.float64]
    bytes_per_token: NDArray[np.float64]


def threshold_sweep(
    scores: PositionScores,
    thresholds: Sequence[float] | NDArray[np.float64],
    measure: UncertaintyMeasure,
    *,
    truncated: bool = False,
) -> ThresholdSweep:
    """U-HLM (``truncated``: CU-HLM with the scores' truncation) at each threshold.

    Parameters
    ----------
    scores : PositionScores
    thresholds : sequence of float
        Skip a draft iff its uncertainty <= threshold.
    measure : str
        The uncertainty measure.
    truncated : bool

    Returns
    -------
    ThresholdSweep
    """
    values = np.asarray(thresholds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or np.isnan(values).any():
        raise ValueError("thresholds must be a non-empty 1-d sequence of numbers")
    rows = []
    for threshold in values:
        scheme: SpeculativeScheme
        if truncated:
            scheme = CuHlm(scores.truncated.codec, measure, float(threshold),
                           scores.perturbations, scores.temperature)  # fmt: skip
        else:
            scheme = UHlm(measure, float(threshold), scores.perturbations, scores.temperature)
        trace = scheme_trace(scheme, scores)
        rows.append((trace.uplink_fraction, next_token_accuracy(trace, scores),
                     quality_vs_llm(trace, scores), float(trace.output_tv.mean()),
                     trace.bytes_per_token))  # fmt: skip
    columns = np.array(rows, dtype=np.float64).T
    return ThresholdSweep(values, *columns)
