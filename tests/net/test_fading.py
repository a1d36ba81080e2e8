"""Block-fading power gains: distributions, moments, conversion to dB."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tinylarge.net.fading import fading_gain_db, fading_power_gain

N = 200_000


@pytest.mark.parametrize(("kind", "k_db"), [("rayleigh", 0.0), ("rician", 0.0), ("rician", 6.0)])
def test_mean_power_gain_is_one(kind: str, k_db: float) -> None:
    g = fading_power_gain(np.random.default_rng(0), N, kind=kind, k_factor_db=k_db)  # type: ignore[arg-type]
    assert g.dtype == np.float64 and g.shape == (N,)
    assert np.all(g >= 0.0)
    assert g.mean() == pytest.approx(1.0, abs=0.01)


def test_rayleigh_power_is_exponential() -> None:
    g = fading_power_gain(np.random.default_rng(1), 50_000, kind="rayleigh")
    assert stats.kstest(g, stats.expon.cdf).pvalue > 1e-3


def test_rician_with_k_zero_is_rayleigh() -> None:
    g = fading_power_gain(np.random.default_rng(2), 50_000, kind="rician", k_factor_db=-300.0)
    assert stats.kstest(g, stats.expon.cdf).pvalue > 1e-3


@pytest.mark.parametrize("k_db", [-3.0, 0.0, 3.0, 10.0])
def test_rician_power_variance(k_db: float) -> None:
    k = 10 ** (k_db / 10)
    g = fading_power_gain(np.random.default_rng(3), N, kind="rician", k_factor_db=k_db)
    assert g.var() == pytest.approx((1 + 2 * k) / (1 + k) ** 2, rel=0.03)
    # |h|^2 (K+1) * 2 is noncentral chi-squared with 2 degrees of freedom, nc = 2K
    scaled = g * 2 * (k + 1)
    assert stats.kstest(scaled[:20_000], stats.ncx2(df=2, nc=2 * k).cdf).pvalue > 1e-3


def test_large_k_means_almost_no_fading() -> None:
    g = fading_power_gain(np.random.default_rng(4), N, kind="rician", k_factor_db=40.0)
    assert g.var() < 1e-3
    assert np.all(np.abs(fading_gain_db(g)) < 0.5)


def test_none_is_unit_gain_and_draws_nothing() -> None:
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    g = fading_power_gain(rng, (3, 4), kind="none")
    np.testing.assert_array_equal(g, np.ones((3, 4)))
    assert rng.bit_generator.state == state


def test_shape_and_reproducibility() -> None:
    a = fading_power_gain(np.random.default_rng(6), (2, 5), kind="rician", k_factor_db=3.0)
    b = fading_power_gain(np.random.default_rng(6), (2, 5), kind="rician", k_factor_db=3.0)
    assert a.shape == (2, 5)
    np.testing.assert_array_equal(a, b)


def test_gain_db() -> None:
    np.testing.assert_allclose(fading_gain_db([1.0, 10.0, 0.5]), [0.0, 10.0, -3.0103], atol=1e-4)
    assert fading_gain_db(0.0) == -np.inf
    assert fading_gain_db(np.ones((2, 3))).shape == (2, 3)
    with pytest.raises(ValueError, match="power_gain must be >= 0"):
        fading_gain_db([1.0, -0.1])
    with pytest.raises(ValueError, match="power_gain must be >= 0"):
        fading_gain_db([np.nan])


def test_invalid_kind_and_k_factor() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"kind must be one of \('rayleigh', 'rician', 'none'\)"):
        fading_power_gain(rng, 3, kind="nakagami")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k_factor_db must be a finite number"):
        fading_power_gain(rng, 3, kind="rician", k_factor_db=float("inf"))
    with pytest.raises(ValueError, match="size must be non-negative"):
        fading_power_gain(rng, -1, kind="rayleigh")
