"""U-HLM's threshold: the least-squares fit against numpy's, and every way a threshold is
chosen (crossing, clipped, no positive slope, already above the tolerance)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinylarge.integrate.hybrid_lm.calibration import SKIP_NOTHING, RejectionFit, threshold_for


def test_fit_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, 500)
    y = np.clip(0.4 * u + 0.1 + rng.normal(0, 0.05, 500), 0, 1)
    fit = RejectionFit.fit(u, y)
    slope, intercept = np.polyfit(u, y, 1)
    assert fit.slope == pytest.approx(slope, rel=1e-9)
    assert fit.intercept == pytest.approx(intercept, rel=1e-9)
    assert fit.r == pytest.approx(np.corrcoef(u, y)[0, 1], rel=1e-9)
    assert (fit.positions, fit.low, fit.high) == (500, u.min(), u.max())
    assert fit.predict([0.0, 1.0]) == pytest.approx([intercept, intercept + slope])


def test_threshold_where_the_line_reaches_the_tolerance() -> None:
    u = np.linspace(0, 1, 11)
    fit = RejectionFit.fit(u, 0.5 * u + 0.1)
    assert (fit.slope, fit.intercept, fit.r) == pytest.approx((0.5, 0.1, 1.0))
    threshold = threshold_for(fit, 0.25)
    assert threshold.value == pytest.approx(0.3)
    assert not threshold.skips_nothing and "reaches rejection 0.25" in threshold.reason
    clipped = threshold_for(fit, 0.9)  # the line stays below 0.9 over [0, 1]
    assert clipped.value == 1.0 and "clipped" in clipped.reason
    too_high = threshold_for(RejectionFit.fit(u, 0.5 * u + 0.3), 0.25)
    assert too_high.skips_nothing and too_high.value == SKIP_NOTHING == -math.inf
    assert "smallest observed uncertainty" in too_high.reason


@pytest.mark.parametrize("rejection", [np.full(11, 0.3), 0.5 - 0.3 * np.linspace(0, 1, 11)])
def test_no_positive_slope_skips_nothing(rejection: np.ndarray) -> None:
    threshold = threshold_for(RejectionFit.fit(np.linspace(0, 1, 11), rejection), 0.25)
    assert threshold.skips_nothing and threshold.value == -math.inf
    assert "slope" in threshold.reason


def test_constant_uncertainty_gives_a_flat_fit() -> None:
    fit = RejectionFit.fit(np.full(5, 0.2), [0.1, 0.2, 0.3, 0.4, 0.5])
    assert (fit.slope, fit.intercept, fit.r) == (0.0, pytest.approx(0.3), 0.0)
    assert threshold_for(fit, 0.25).skips_nothing


@pytest.mark.parametrize(
    ("u", "y", "message"),
    [
        ([0.1, 0.2], [0.1], "one length"),
        ([0.1], [0.1], ">= 2"),
        ([0.1, np.nan], [0.1, 0.2], "finite"),
        ([0.1, 0.2], [0.1, 1.5], r"\[0, 1\]"),
    ],
)
def test_bad_input(u: list[float], y: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RejectionFit.fit(u, y)


def test_bad_tolerance() -> None:
    fit = RejectionFit.fit([0.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="tolerance"):
        threshold_for(fit, 1.0)
