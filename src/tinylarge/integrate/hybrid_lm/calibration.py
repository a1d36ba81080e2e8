"""U-HLM's skip threshold from the linear relation between the draft's uncertainty and the
target's rejection probability (Oh et al., arXiv 2412.12687, Section III).

On held-out text, each position gives the draft's uncertainty ``u`` and the probability that
the target rejects the draft, ``1 - sum(min(p, q))``. A least-squares line
``rejection = slope * u + intercept`` is fitted (`RejectionFit.fit`); the threshold is the
uncertainty at which the line reaches the tolerated rejection probability
(`threshold_for`). A draft whose uncertainty is at most the threshold is kept unsent.

When the relation does not hold (slope <= 0: uncertain drafts are not rejected more often),
the threshold skips nothing and says why, rather than skipping on a meaningless fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: The threshold that keeps nothing unsent: every uncertainty is above it.
SKIP_NOTHING: float = -math.inf


@dataclass(frozen=True)
class RejectionFit:
    """Least-squares line of rejection probability against uncertainty.

    Attributes
    ----------
    slope, intercept : float
        ``rejection ~ slope * uncertainty + intercept`` (rejection per unit of uncertainty,
        and the rejection probability at zero uncertainty).
    r : float
        Pearson correlation of the two (0 when either is constant).
    positions : int
        Positions fitted.
    low, high : float
        The smallest and largest uncertainty observed.
    """

    slope: float
    intercept: float
    r: float
    positions: int
    low: float
    high: float

    @classmethod
    def fit(cls, uncertainty: ArrayLike, rejection: ArrayLike) -> RejectionFit:
        """Fit the line to paired observations.

        Parameters
        ----------
        uncertainty : array_like, shape (n,)
            The draft's uncertainty at each position (any measure's units).
        rejection : array_like, shape (n,)
            The target's rejection probability there, in [0, 1].

        Returns
        -------
        RejectionFit
            A constant uncertainty gives slope 0 and intercept the mean rejection.
        """
        u = np.asarray(uncertainty, dtype=np.float64)
        y = np.asarray(rejection, dtype=np.float64)
        if u.ndim != 1 or u.shape != y.shape or u.size < 2:
            raise ValueError(
                f"uncertainty and rejection must be 1-d of one length >= 2, got shapes "
                f"{u.shape} and {y.shape}"
            )
        if not (np.isfinite(u).all() and np.isfinite(y).all()):
            raise ValueError("uncertainty and rejection must be finite")
        if y.min() < -1e-12 or y.max() > 1 + 1e-12:
            raise ValueError(f"rejection must lie in [0, 1], got [{y.min()}, {y.max()}]")
        du, dy = u - u.mean(), y - y.mean()
        su, sy = float(du @ du), float(dy @ dy)
        slope = float(du @ dy) / su if su > 0 else 0.0
        r = float(du @ dy) / math.sqrt(su * sy) if su > 0 and sy > 0 else 0.0
        intercept = float(y.mean()) - slope * float(u.mean())
        return cls(slope, intercept, r, int(u.size), float(u.min()), float(u.max()))

    def predict(self, uncertainty: ArrayLike) -> np.ndarray:
        """The line's rejection probability at ``uncertainty`` (same shape)."""
        return self.slope * np.asarray(uncertainty, dtype=np.float64) + self.intercept


@dataclass(frozen=True)
class Threshold:
    """A skip threshold and how it was chosen.

    Attributes
    ----------
    value : float
        Keep a draft unsent iff its uncertainty <= value (`SKIP_NOTHING` = -inf: never).
    reason : str
        How the value was found, for the report.
    skips_nothing : bool
        True when the fit gave no usable threshold (``value`` is `SKIP_NOTHING`).
    """

    value: float
    reason: str
    skips_nothing: bool


def threshold_for(fit: RejectionFit, tolerance: float) -> Threshold:
    """The uncertainty at which the fitted rejection probability reaches ``tolerance``.

    Parameters
    ----------
    fit : RejectionFit
    tolerance : float
        Tolerated rejection probability, in (0, 1).

    Returns
    -------
    Threshold
        ``(tolerance - intercept) / slope``, clipped to the largest observed uncertainty.
        Skips nothing when the slope is not positive, or when the line is already above the
        tolerance at the smallest observed uncertainty (no observed draft is safe to keep).
    """
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance}")
    if not fit.slope > 0.0:
        return Threshold(
            SKIP_NOTHING,
            f"the fitted slope is {fit.slope:.4g} (r = {fit.r:.3f}): rejection does not grow "
            "with uncertainty, so no draft is kept unsent",
            True,
        )
    crossing = (tolerance - fit.intercept) / fit.slope
    if crossing < fit.low:
        return Threshold(
            SKIP_NOTHING,
            f"the fit predicts rejection {float(fit.predict(fit.low)):.3f} > {tolerance} already "
            f"at the smallest observed uncertainty {fit.low:.4g}, so no draft is kept unsent",
            True,
        )
    if crossing > fit.high:
        return Threshold(
            fit.high,
            f"the fit stays below {tolerance} over the observed uncertainties; threshold "
            f"clipped to the largest, {fit.high:.4g}",
            False,
        )
    return Threshold(
        crossing,
        f"the fit (slope {fit.slope:.4g}, intercept {fit.intercept:.4g}, r = {fit.r:.3f}) "
        f"reaches rejection {tolerance} at uncertainty {crossing:.4g}",
        False,
    )
