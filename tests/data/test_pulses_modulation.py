"""Pulse shapes, constellations and modulators of the radio task."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.data.modulation import (
    CONSTELLATIONS,
    FSK_SCHEMES,
    MODULATIONS,
    RRC_SPAN_SYMBOLS,
    modulate,
    modulate_fsk,
    modulate_linear,
    n_symbols_needed,
)
from tinylarge.data.pulses import (
    gaussian_phase_pulse,
    rectangular_phase_pulse,
    rrc_pulse,
    rrc_taps,
)

SPS = 8


@pytest.mark.parametrize("rolloff", [0.25, 0.35, 0.5, 1.0])
def test_rrc_taps_unit_energy_and_symmetric(rolloff: float) -> None:
    taps = rrc_taps(SPS, rolloff, 8)
    assert taps.shape == (8 * SPS + 1,)
    assert np.sum(taps**2) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(taps, taps[::-1], atol=1e-15)
    assert np.argmax(taps) == taps.size // 2


@pytest.mark.parametrize("rolloff", [0.25, 0.35, 0.5])
def test_raised_cosine_is_nyquist(rolloff: float) -> None:
    """RRC * RRC is a raised cosine: zero at every non-zero multiple of the symbol period."""
    taps = rrc_taps(SPS, rolloff, 32)  # long span: truncation error negligible
    rc = np.convolve(taps, taps)
    centre = rc.size // 2
    assert rc[centre] == pytest.approx(1.0, abs=1e-12)
    at_symbols = rc[centre % SPS :: SPS]
    others = np.delete(at_symbols, centre // SPS)
    assert np.max(np.abs(others)) < 2e-3
    # ... but not between symbols (the check above is not vacuous).
    assert abs(rc[centre + SPS // 2]) > 0.3


def test_default_span_isi_is_small() -> None:
    taps = rrc_taps(SPS, 0.35, RRC_SPAN_SYMBOLS)
    rc = np.convolve(taps, taps)
    centre = rc.size // 2
    others = np.delete(rc[centre % SPS :: SPS], centre // SPS)
    assert np.sum(np.abs(others)) < 0.04  # peak distortion about -29 dB


def test_rrc_pulse_singular_points_are_continuous() -> None:
    beta = 0.25  # singularity at t = ±1 exactly
    for t0 in (0.0, 1.0 / (4 * beta), -1.0 / (4 * beta)):
        at = rrc_pulse(np.array([t0]), beta)[0]
        near = rrc_pulse(np.array([t0 - 1e-4, t0 + 1e-4]), beta)
        assert np.all(np.isfinite(near)) and np.isfinite(at)
        assert np.all(np.abs(near - at) < 1e-3)
    # Continuous-time unit energy.
    t = np.linspace(-30, 30, 600_001)
    energy = np.sum(rrc_pulse(t, 0.35) ** 2) * (t[1] - t[0])
    assert energy == pytest.approx(1.0, abs=1e-3)


def test_rrc_rejects_bad_rolloff() -> None:
    with pytest.raises(ValueError, match=r"rolloff must lie in \(0, 1\]"):
        rrc_pulse(np.zeros(1), 0.0)
    with pytest.raises(ValueError, match="span_symbols"):
        rrc_taps(8, 0.35, 3)


@pytest.mark.parametrize("name", list(CONSTELLATIONS))
def test_constellations_have_unit_average_energy(name: str) -> None:
    points = CONSTELLATIONS[name]
    assert np.mean(np.abs(points) ** 2) == pytest.approx(1.0, abs=1e-12)
    assert np.unique(np.round(points, 9)).size == points.size


def test_constellation_sizes() -> None:
    sizes = {name: points.size for name, points in CONSTELLATIONS.items()}
    assert sizes == {
        "BPSK": 2, "QPSK": 4, "8PSK": 8, "16QAM": 16, "64QAM": 64, "PAM4": 4,
        # the pretraining world's extra ones
        "16PSK": 16, "32QAM": 32, "256QAM": 256, "PAM8": 8, "OOK": 2,
    }  # fmt: skip
    np.testing.assert_allclose(CONSTELLATIONS["PAM4"].imag, 0.0)


def test_phase_pulses_rise_from_zero_to_half() -> None:
    t = np.array([-5.0, -0.5, 0.0, 0.5, 5.0])
    np.testing.assert_allclose(rectangular_phase_pulse(t), [0, 0, 0.25, 0.5, 0.5])
    g = gaussian_phase_pulse(t, 0.5)
    np.testing.assert_allclose(g[[0, 2, 4]], [0.0, 0.25, 0.5], atol=1e-12)
    assert np.all(np.diff(gaussian_phase_pulse(np.linspace(-3, 3, 101), 0.5)) >= -1e-12)


def _reference_linear(symbols: np.ndarray, delay: float, n_samples: int) -> np.ndarray:
    """Brute force: s(t_i) = sum_k c_k h(t_i - k), with symbol k in column k + lead."""
    half = RRC_SPAN_SYMBOLS // 2
    lead = half + 1
    t = (np.arange(n_samples) - delay) / SPS
    k = np.arange(symbols.size) - lead
    rel = t[:, None] - k[None, :]
    h = np.where(np.abs(rel) <= half, rrc_pulse(rel, 0.35), 0.0)
    return np.asarray(h @ symbols)


@pytest.mark.parametrize("delay", [0.0, 3.0, 2.37, 7.99])
def test_linear_modulator_matches_brute_force(delay: float) -> None:
    rng = np.random.default_rng(1)
    n_samples = 50
    k = n_symbols_needed(n_samples, SPS, RRC_SPAN_SYMBOLS // 2)
    symbols = CONSTELLATIONS["16QAM"][rng.integers(0, 16, size=(2, k))]
    out = modulate_linear(symbols, np.array([delay, 0.0]), n_samples, SPS, 0.35)
    np.testing.assert_allclose(out[0], _reference_linear(symbols[0], delay, n_samples), atol=1e-12)


def test_linear_modulator_matched_filter_recovers_symbols() -> None:
    """Sampling the matched-filter output at symbol centres gives back the symbols."""
    rng = np.random.default_rng(2)
    n_samples = 128
    k = n_symbols_needed(n_samples, SPS, RRC_SPAN_SYMBOLS // 2)
    symbols = CONSTELLATIONS["8PSK"][rng.integers(0, 8, size=(1, k))]
    delay = 3.0
    signal = modulate_linear(symbols, np.array([delay]), n_samples, SPS, 0.35)[0]
    mf = np.convolve(signal, rrc_taps(SPS, 0.35, RRC_SPAN_SYMBOLS), mode="same") / np.sqrt(SPS)
    lead = RRC_SPAN_SYMBOLS // 2 + 1
    m = np.arange(4, 11)  # symbols whose matched-filter window lies inside the frame
    sampled = mf[m * SPS + int(delay)]
    assert np.max(np.abs(sampled - symbols[0, m + lead])) < 0.05


@pytest.mark.parametrize("name", ["GFSK", "CPFSK"])  # GMSK (BT 0.3) has more ISI
def test_fsk_is_constant_envelope_with_expected_phase_steps(name: str) -> None:
    rng = np.random.default_rng(3)
    spec = FSK_SCHEMES[name]
    n_samples = 128
    k = n_symbols_needed(n_samples, SPS, 3)
    bits = 2.0 * rng.integers(0, 2, size=(1, k)).astype(np.float64) - 1.0
    signal = modulate_fsk(bits, np.zeros(1), n_samples, SPS, spec)[0]
    np.testing.assert_allclose(np.abs(signal), 1.0, atol=1e-12)
    phase = np.unwrap(np.angle(signal))
    # Between symbol centres m and m+1 the phase moves by pi*h*(a_m + a_{m+1})/2.
    steps = phase[SPS::SPS] - phase[:-SPS:SPS]
    lead = 4
    a = bits[0, lead : lead + steps.size + 1]
    expected = np.pi * spec.modulation_index * (a[:-1] + a[1:]) / 2.0
    np.testing.assert_allclose(steps, expected, atol=0.02)


@pytest.mark.parametrize("name", MODULATIONS)
def test_modulate_has_unit_mean_power(name: str) -> None:
    rng = np.random.default_rng(4)
    delays = rng.uniform(0, SPS, 200)
    signal = modulate(name, delays, 128, SPS, 0.35, rng)
    assert signal.shape == (200, 128)
    assert np.mean(np.abs(signal) ** 2) == pytest.approx(1.0, rel=0.05)


def test_modulate_rejects_unknown_name_and_bad_delay() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown modulation 'FM'; allowed: BPSK"):
        modulate("FM", np.zeros(2), 16, SPS, 0.35, rng)
    with pytest.raises(ValueError, match=r"delay_samples must lie in \[0, samples_per_symbol\]"):
        modulate("BPSK", np.array([-1.0]), 16, SPS, 0.35, rng)
