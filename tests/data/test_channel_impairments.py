"""Channel impairments: sampling and applying each one."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.data import channel_impairments as ch


def test_power_delay_profile_is_exponential_and_normalized() -> None:
    p = ch.power_delay_profile(3, 6.0)
    assert p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(10 * np.log10(p[:-1] / p[1:]), 6.0)
    np.testing.assert_allclose(ch.power_delay_profile(4, 0.0), 0.25)


def test_multipath_gains_statistics() -> None:
    rng = np.random.default_rng(0)
    g = ch.sample_multipath_gains(40_000, 3, 6.0, 3.0, "rician", rng)
    p = ch.power_delay_profile(3, 6.0)
    np.testing.assert_allclose(np.mean(np.abs(g) ** 2, axis=0), p, rtol=0.05)
    k = 10**0.3
    assert np.mean(g[:, 0]).real == pytest.approx(np.sqrt(p[0] * k / (k + 1)), rel=0.02)
    assert abs(np.mean(g[:, 1])) < 0.01  # Rayleigh taps are zero-mean
    r = ch.sample_multipath_gains(40_000, 3, 6.0, 3.0, "rayleigh", rng)
    assert abs(np.mean(r[:, 0])) < 0.01
    assert np.mean(np.sum(np.abs(r) ** 2, axis=1)) == pytest.approx(1.0, rel=0.03)


def test_no_fading_is_a_single_unit_tap_and_draws_nothing() -> None:
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    g = ch.sample_multipath_gains(5, 3, 6.0, 3.0, "none", rng)
    np.testing.assert_array_equal(g, np.ones((5, 1)))
    assert rng.bit_generator.state == state


def test_apply_multipath_is_a_causal_convolution() -> None:
    rng = np.random.default_rng(2)
    ext = rng.standard_normal((2, 20)) + 1j * rng.standard_normal((2, 20))
    gains = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    out = ch.apply_multipath(ext, gains)
    assert out.shape == (2, 18)
    for i in range(2):
        full = np.convolve(ext[i], gains[i])
        np.testing.assert_allclose(out[i], full[2:20])
    with pytest.raises(ValueError, match="does not fit gains"):
        ch.apply_multipath(ext[:, :2], np.ones((2, 3), dtype=np.complex128))


def test_carrier_phase_terms() -> None:
    rng = np.random.default_rng(3)
    off = ch.sample_carrier_phase(
        4, 64, rng, phase_max_rad=0.0, cfo_max_cycles_per_sample=0.0, phase_noise_std_rad=0.0
    )
    np.testing.assert_array_equal(off, 0.0)
    cfo = ch.sample_carrier_phase(
        500, 64, rng, phase_max_rad=0.0, cfo_max_cycles_per_sample=0.01, phase_noise_std_rad=0.0
    )
    slope = np.diff(cfo, axis=1) / (2 * np.pi)
    np.testing.assert_allclose(slope, slope[:, :1] * np.ones_like(slope), atol=1e-12)
    assert np.max(np.abs(slope)) <= 0.01 and np.max(np.abs(slope)) > 0.009
    noise = ch.sample_carrier_phase(
        2000, 64, rng, phase_max_rad=0.0, cfo_max_cycles_per_sample=0.0, phase_noise_std_rad=0.01
    )
    np.testing.assert_array_equal(noise[:, 0], 0.0)
    assert np.std(np.diff(noise, axis=1)) == pytest.approx(0.01, rel=0.02)
    # Wiener process: variance grows linearly with time.
    assert np.var(noise[:, -1]) == pytest.approx(63 * 0.01**2, rel=0.15)
    start = ch.sample_carrier_phase(
        5000, 2, rng, phase_max_rad=2 * np.pi, cfo_max_cycles_per_sample=0.0,
        phase_noise_std_rad=0.0,
    )  # fmt: skip
    assert start.min() >= 0.0 and start.max() < 2 * np.pi
    assert np.mean(start[:, 0]) == pytest.approx(np.pi, rel=0.05)


def test_awgn_variance_follows_received_power() -> None:
    rng = np.random.default_rng(4)
    received = np.full((3, 50_000), 2.0 + 0j)  # power 4
    snr_db = np.array([0.0, 10.0, 20.0])
    noise = ch.sample_awgn(received, snr_db, rng)
    measured = np.mean(np.abs(noise) ** 2, axis=1)
    np.testing.assert_allclose(measured, 4.0 / 10 ** (snr_db / 10), rtol=0.03)
    with pytest.raises(ValueError, match=r"snr_db must have shape \(3,\)"):
        ch.sample_awgn(received, np.zeros(2), rng)


def test_normalize_frame_power() -> None:
    x = np.array([[3.0 + 4.0j, 0.0], [1.0, 1.0j]])
    y = ch.normalize_frame_power(x)
    np.testing.assert_allclose(np.mean(np.abs(y) ** 2, axis=1), 1.0)
    z = ch.normalize_frame_power(np.zeros((1, 4), dtype=np.complex128))
    assert np.all(np.isfinite(z))


def test_timing_offsets_range_and_off() -> None:
    rng = np.random.default_rng(5)
    d = ch.sample_timing_offsets(10_000, 8, 1.0, rng)
    assert d.min() >= 0.0 and d.max() < 8.0 and d.max() > 7.9
    np.testing.assert_array_equal(ch.sample_timing_offsets(3, 8, 0.0, rng), 0.0)
