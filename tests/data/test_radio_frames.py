"""The radio frame generator: determinism, balance, SNR calibration, impairments, validation."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.data import RADIO_CLASSES, Task, generate_radio_frames, make_radio_task
from tinylarge.data.modulation import CONSTELLATIONS, RRC_SPAN_SYMBOLS
from tinylarge.data.pulses import rrc_taps
from tinylarge.data.radio import generate_radio_frames_from_params, simulate_radio_components
from tinylarge.data.radio_params import RadioParams, snr_grid

#: Every impairment off except noise (which is set very low by the tests that need it).
CLEAN = {
    "timing_offset_max_symbols": 0.0,
    "carrier_phase_max_rad": 0.0,
    "cfo_max_cycles_per_sample": 0.0,
    "phase_noise_std_rad": 0.0,
    "fading": "none",
}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_shapes_dtypes_and_classes() -> None:
    x, y, snr = generate_radio_frames(100, _rng(0))
    assert x.shape == (100, 2, 128) and x.dtype == np.float32
    assert y.shape == (100,) and y.dtype == np.int64
    assert snr.shape == (100,) and snr.dtype == np.float32
    assert RADIO_CLASSES == ("BPSK", "QPSK", "8PSK", "16QAM", "64QAM", "PAM4", "GFSK", "CPFSK")
    assert np.all(np.isfinite(x))


def test_same_seed_same_frames_different_seed_different() -> None:
    a = generate_radio_frames(64, _rng(7))
    b = generate_radio_frames(64, _rng(7))
    c = generate_radio_frames(64, _rng(8))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_classes_are_balanced_and_shuffled() -> None:
    _, y, _ = generate_radio_frames(8 * 25 + 3, _rng(1))
    counts = np.bincount(y, minlength=8)
    np.testing.assert_array_equal(counts, [26, 26, 26, 25, 25, 25, 25, 25])
    assert not np.all(np.diff(y) >= 0)


def test_class_subset_labels_follow_given_order() -> None:
    _, y, _ = generate_radio_frames(30, _rng(1), classes=["GFSK", "BPSK", "64QAM"])
    np.testing.assert_array_equal(np.bincount(y), [10, 10, 10])


def test_unknown_class_is_rejected_with_allowed_list() -> None:
    with pytest.raises(ValueError, match=r"unknown radio class\(es\) \['FM'\]; allowed: BPSK"):
        generate_radio_frames(10, _rng(0), classes=["BPSK", "FM"])
    with pytest.raises(ValueError, match="not the string 'BPSK'"):
        generate_radio_frames(10, _rng(0), classes="BPSK")
    with pytest.raises(ValueError, match="must not repeat"):
        generate_radio_frames(10, _rng(0), classes=["BPSK", "BPSK"])


def test_snr_values_come_from_the_grid_and_all_levels_appear() -> None:
    _, _, snr = generate_radio_frames(800, _rng(2))
    grid = snr_grid(-10.0, 20.0, 2.0)
    assert grid.size == 16 and grid[0] == -10.0 and grid[-1] == 20.0
    np.testing.assert_array_equal(np.unique(snr), grid.astype(np.float32))


def test_snr_grid_handles_inexact_division() -> None:
    np.testing.assert_allclose(snr_grid(0.0, 0.3, 0.1), [0.0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(snr_grid(0.0, 5.0, 2.0), [0.0, 2.0, 4.0])
    np.testing.assert_allclose(snr_grid(3.0, 3.0, 1.0), [3.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"snr_db_min": 5.0, "snr_db_max": 0.0}, r"snr_db_min \(5.0\) must not exceed"),
        ({"snr_db_step": 0.0}, "snr_db_step must be > 0"),
        ({"snr_db_step": -1.0}, "snr_db_step must be a finite number in"),
        ({"rolloff": 0.0}, r"rolloff must lie in \(0, 1\]"),
        ({"rolloff": 1.5}, r"rolloff must be a finite number in \[0.0, 1.0\], got 1.5"),
        ({"fading": "nakagami"}, "fading must be one of"),
        ({"multipath_taps": 0}, "multipath_taps must be an integer >= 1, got 0"),
        ({"frame_length": 1}, "frame_length must be an integer >= 2"),
        ({"samples_per_symbol": 1}, "samples_per_symbol must be an integer >= 2"),
        ({"cfo_max_cycles_per_sample": 0.7}, "cfo_max_cycles_per_sample must be"),
        ({"phase_noise_std_rad": -0.1}, "phase_noise_std_rad must be"),
        ({"timing_offset_max_symbols": 2.0}, "timing_offset_max_symbols must be"),
        ({"tap_decay_db": float("nan")}, "tap_decay_db must be a finite number"),
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_radio_frames(4, _rng(0), **kwargs)  # type: ignore[arg-type]


def test_bad_frame_count_and_rng_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_frames must be a non-negative integer, got -1"):
        generate_radio_frames(-1, _rng(0))
    with pytest.raises(ValueError, match=r"rng must be a numpy\.random\.Generator"):
        generate_radio_frames(4, 0)  # type: ignore[arg-type]
    x, y, snr = generate_radio_frames(0, _rng(0))
    assert x.shape == (0, 2, 128) and y.shape == (0,) and snr.shape == (0,)


def test_agc_gives_unit_power_per_frame() -> None:
    x, _, _ = generate_radio_frames(200, _rng(3))
    power = np.mean(x[:, 0] ** 2 + x[:, 1] ** 2, axis=1)
    np.testing.assert_allclose(power, 1.0, rtol=1e-5)
    x_raw, _, _ = generate_radio_frames(200, _rng(3), normalize_power=False)
    raw_power = np.mean(x_raw[:, 0] ** 2 + x_raw[:, 1] ** 2, axis=1)
    assert np.std(raw_power) > 0.1  # fading makes raw frame powers vary


def test_components_match_generated_frames() -> None:
    params = RadioParams(normalize_power=False)
    comps = simulate_radio_components(300, _rng(4), params)
    x, y, snr = generate_radio_frames_from_params(300, _rng(4), params)
    noisy = comps.clean + comps.noise
    np.testing.assert_allclose(x[:, 0], noisy.real, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x[:, 1], noisy.imag, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y, comps.labels)
    np.testing.assert_array_equal(snr, comps.snr_db)


def test_components_span_several_chunks_consistently() -> None:
    params = RadioParams(classes=("BPSK", "GFSK"), frame_length=16)
    comps = simulate_radio_components(4500, _rng(5), params)  # > 2 chunks of 2048
    x, _, _ = generate_radio_frames_from_params(4500, _rng(5), params)
    noisy = comps.clean + comps.noise
    agc = noisy / np.sqrt(np.mean(np.abs(noisy) ** 2, axis=1, keepdims=True))
    np.testing.assert_allclose(x[:, 0], agc.real, atol=1e-5)


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 20.0])
def test_measured_snr_matches_request(snr_db: float) -> None:
    """(a) SNR from the clean signal and noise returned separately, default impairments."""
    params = RadioParams(snr_db_min=snr_db, snr_db_max=snr_db)
    comps = simulate_radio_components(400, _rng(6), params)
    signal_power = np.mean(np.abs(comps.clean) ** 2, axis=1)
    noise_power = np.mean(np.abs(comps.noise) ** 2, axis=1)
    pooled = 10 * np.log10(signal_power.sum() / noise_power.sum())
    assert pooled == pytest.approx(snr_db, abs=0.5)
    median = np.median(10 * np.log10(signal_power / noise_power))
    assert median == pytest.approx(snr_db, abs=0.5)
    # Noise is circular: I and Q carry half the variance each.
    ratio = np.mean(comps.noise.real**2) / np.mean(comps.noise.imag**2)
    assert ratio == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_blind_m2m4_snr_estimate_on_constant_envelope_frames(snr_db: float) -> None:
    """(b) Independent check on the public output: M2M4 estimator (Pauluzzi & Beaulieu 2000).

    For a constant-envelope signal (kurtosis 1) in complex Gaussian noise (kurtosis 2):
    M2 = S + N, M4 = S^2 + 4SN + 2N^2, hence S = sqrt(2 M2^2 - M4) and N = M2 - S.
    """
    x, _, _ = generate_radio_frames(
        600, _rng(7), classes=["GFSK", "CPFSK"], fading="none", phase_noise_std_rad=0.0,
        snr_db_min=snr_db, snr_db_max=snr_db,
    )  # fmt: skip
    power = x[:, 0].astype(np.float64) ** 2 + x[:, 1].astype(np.float64) ** 2
    m2, m4 = np.mean(power), np.mean(power**2)
    s = np.sqrt(2 * m2**2 - m4)
    estimate = 10 * np.log10(s / (m2 - s))
    assert estimate == pytest.approx(snr_db, abs=0.5)


def test_psk_frames_land_on_constellation_with_impairments_off() -> None:
    """Matched filter + sampling at symbol centres recovers the (unrotated) constellation."""
    sps = 8
    classes = ["BPSK", "QPSK", "8PSK"]
    x, y, _ = generate_radio_frames(
        60, _rng(8), classes=classes, snr_db_min=60.0, snr_db_max=60.0,
        normalize_power=False, **CLEAN,  # type: ignore[arg-type]
    )  # fmt: skip
    taps = rrc_taps(sps, 0.35, RRC_SPAN_SYMBOLS)
    m = np.arange(4, 12)  # symbols whose matched-filter window lies inside the 128 samples
    for frame, label in zip(x, y, strict=True):
        z = frame[0].astype(np.float64) + 1j * frame[1]
        mf = np.convolve(z, taps, mode="same") / np.sqrt(sps)
        points = CONSTELLATIONS[classes[label]]
        sampled = mf[m * sps]
        distance = np.min(np.abs(sampled[:, None] - points[None, :]), axis=1)
        assert np.max(distance) < 0.06
        off_centre = mf[m * sps + sps // 2]
        off_distance = np.min(np.abs(off_centre[:, None] - points[None, :]), axis=1)
        assert np.max(off_distance) > 0.1  # sampling between symbols does not fit


def test_fsk_frames_are_constant_envelope_without_fading() -> None:
    x, _, _ = generate_radio_frames(
        40, _rng(9), classes=["GFSK", "CPFSK"], snr_db_min=60.0, snr_db_max=60.0,
        fading="none", normalize_power=False,
    )  # fmt: skip
    envelope = np.hypot(x[:, 0], x[:, 1])
    np.testing.assert_allclose(envelope, 1.0, atol=0.01)


def test_each_impairment_changes_the_frames_and_off_is_reproducible() -> None:
    common = {"n_frames": 32, "snr_db_min": 20.0, "snr_db_max": 20.0}
    base, _, _ = generate_radio_frames(rng=_rng(10), **common, **CLEAN)  # type: ignore[arg-type]
    again, _, _ = generate_radio_frames(rng=_rng(10), **common, **CLEAN)  # type: ignore[arg-type]
    np.testing.assert_array_equal(base, again)
    for key, on_value in [
        ("timing_offset_max_symbols", 1.0),
        ("carrier_phase_max_rad", 6.0),
        ("cfo_max_cycles_per_sample", 0.001),
        ("phase_noise_std_rad", 0.005),
        ("fading", "rician"),
    ]:
        settings = {**CLEAN, key: on_value}
        changed, _, _ = generate_radio_frames(rng=_rng(10), **common, **settings)  # type: ignore[arg-type]
        assert not np.allclose(changed, base, atol=1e-3), key


def test_flat_fading_power_statistics_match_theory() -> None:
    """Received power of a flat channel: Rayleigh -> exponential (std 1); Rician with K
    (linear) -> std sqrt(1 + 2K) / (1 + K), 0.745 for K = 3 dB."""

    def spread(fading: str) -> float:
        comps = simulate_radio_components(
            1500,
            _rng(11),
            RadioParams(classes=("GFSK",), fading=fading, multipath_taps=1),  # type: ignore[arg-type]
        )
        power = np.mean(np.abs(comps.clean) ** 2, axis=1)
        assert np.mean(power) == pytest.approx(1.0, rel=0.1)  # unit expected channel gain
        return float(np.std(power))

    k = 10 ** (3.0 / 10)
    assert spread("rayleigh") == pytest.approx(1.0, abs=0.1)
    assert spread("rician") == pytest.approx(np.sqrt(1 + 2 * k) / (1 + k), abs=0.08)


def test_make_radio_task() -> None:
    task = make_radio_task(3, n_train=80, n_test=40, classes=["BPSK", "QPSK"], frame_length=64)
    assert isinstance(task, Task)
    assert task.name == "radio" and task.class_names == ("BPSK", "QPSK")
    assert task.input_shape == (2, 64) and task.num_classes == 2
    assert task.n_train == 80 and task.n_test == 40
    assert task.meta_train["snr_db"].dtype == np.float32
    assert task.meta_test["snr_db"].shape == (40,)
    same = make_radio_task(3, n_train=80, n_test=40, classes=["BPSK", "QPSK"], frame_length=64)
    np.testing.assert_array_equal(task.x_train, same.x_train)
    assert not np.array_equal(task.x_train[:40], task.x_test)
    other = make_radio_task(4, n_train=80, n_test=40, classes=["BPSK", "QPSK"], frame_length=64)
    assert not np.array_equal(task.x_train, other.x_train)
    with pytest.raises(ValueError, match="n_train must be a positive integer, got 0"):
        make_radio_task(3, n_train=0)
