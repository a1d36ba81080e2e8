"""The learned router: features, oracle, learning a separable rule, threshold tuning, costs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from tinylarge.integrate.inference.contract import NotFittedError, Trace
from tinylarge.integrate.inference.router import (
    FEATURE_MACS_PER_CLASS,
    Router,
    logit_features,
    oracle_offload,
    router_macs,
)

N_CLASSES = 4


def confidence_trace(n: int, seed: int, *, with_snr: bool = False) -> Trace:
    """Tiny model unsure (margin < 1) -> wrong and the large model right ("fixable"); sure ->
    both right. Fixable frames are separable by the tiny model's confidence."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    margin = rng.uniform(0.0, 4.0, n)
    unsure = margin < 1.0
    tiny_pred = np.where(unsure, (y + 1) % N_CLASSES, y)
    tiny = rng.normal(0.0, 0.05, (n, N_CLASSES))
    tiny[np.arange(n), tiny_pred] += margin
    large = rng.normal(0.0, 0.05, (n, N_CLASSES))
    large[np.arange(n), y] += 3.0
    snr = rng.uniform(-10, 20, n) if with_snr else None
    return Trace(tiny_logits=tiny, large_logits=large, y=y, snr_db=snr)


def snr_trace(n: int, seed: int) -> Trace:
    """Fixable exactly when SNR < 0 dB; the tiny logits carry no information about it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    snr = rng.uniform(-10, 10, n)
    tiny_pred = np.where(snr < 0, (y + 1) % N_CLASSES, y)
    tiny = rng.normal(0.0, 0.05, (n, N_CLASSES))
    tiny[np.arange(n), tiny_pred] += rng.uniform(0.5, 3.0, n)
    large = np.eye(N_CLASSES)[y] * 3.0
    return Trace(tiny_logits=tiny, large_logits=large, y=y, snr_db=snr)


def test_oracle_on_a_hand_example() -> None:
    tiny = np.eye(3)[[0, 1, 2, 0]]  # predictions 0, 1, 2, 0
    large = np.eye(3)[[0, 2, 2, 1]]  # predictions 0, 2, 2, 1
    y = np.array([0, 2, 1, 1])
    trace = Trace(tiny_logits=tiny, large_logits=large, y=y)
    # sample 0: both right; 1: large fixes; 2: both wrong; 3: large fixes
    np.testing.assert_array_equal(oracle_offload(trace), [False, True, False, True])


def test_features_of_a_hand_example() -> None:
    logits = np.log(np.array([[0.1, 0.6, 0.3]]))
    f = logit_features(logits, snr_db=np.array([7.0]))
    entropy = -(0.1 * np.log(0.1) + 0.6 * np.log(0.6) + 0.3 * np.log(0.3))
    np.testing.assert_allclose(f[0], [0.6, 0.3, 0.1, 0.1, 0.6, 0.3, 0.3, entropy, 7.0])
    with pytest.raises(ValueError, match="shape"):
        logit_features(np.zeros((2, 1)))


def test_router_learns_separable_fixes() -> None:
    router = Router(tiny_macs=1000, bytes_per_offload=256).fit(confidence_trace(2000, seed=1))
    test = confidence_trace(2000, seed=2)
    offload = router.fix_probability(test) >= router.threshold_
    assert np.mean(offload == oracle_offload(test)) > 0.98
    assert router.threshold_ == pytest.approx(0.5)


@pytest.mark.parametrize("target", [0.0, 0.1, 0.25, 0.6, 1.0])
def test_target_offload_is_hit_on_validation(target: float) -> None:
    validation = confidence_trace(1500, seed=3)
    router = Router(tiny_macs=0, bytes_per_offload=1, target_offload=target).fit(validation)
    assert abs(router.validation_offload_fraction_ - target) <= 0.01
    decision = router.decide(validation, np.arange(1500), np.random.default_rng(0))
    assert abs(decision.offload.mean() - target) <= 0.01


def test_given_threshold_is_used() -> None:
    validation = confidence_trace(1000, seed=4)
    router = Router(tiny_macs=0, bytes_per_offload=1, threshold=0.9).fit(validation)
    assert router.threshold_ == pytest.approx(0.9)
    expected = router.fix_probability(validation) >= 0.9
    got = router.decide(validation, np.arange(1000), np.random.default_rng(0)).offload
    assert np.mean(got == expected) > 0.999  # equal up to float rounding at the boundary


def test_decision_arrays_and_device_cost() -> None:
    validation, test = confidence_trace(1000, seed=5), confidence_trace(50, seed=6)
    router = Router(tiny_macs=5000, bytes_per_offload=256).fit(validation)
    index = np.array([3, 3, 10, 49, 0])
    d = router.decide(test, index, np.random.default_rng(0))
    tiny, large = test.tiny_prediction[index], test.large_prediction[index]
    np.testing.assert_array_equal(d.prediction, np.where(d.offload, large, tiny))
    np.testing.assert_array_equal(d.fallback_prediction, tiny)
    np.testing.assert_array_equal(d.bytes_up, np.where(d.offload, 256, 0))
    features = 2 * N_CLASSES + 2
    router_cost = features + FEATURE_MACS_PER_CLASS * N_CLASSES + N_CLASSES * 2  # log2(4) = 2
    assert router_macs(N_CLASSES, features) == router_cost
    np.testing.assert_array_equal(d.device_macs, 5000 + router_cost)


def test_snr_feature_is_a_flag() -> None:
    validation, test = snr_trace(2000, seed=7), snr_trace(1000, seed=8)
    plain = Router(tiny_macs=0, bytes_per_offload=1, target_offload=0.5).fit(validation)
    with_snr = Router(tiny_macs=0, bytes_per_offload=1, use_snr=True).fit(validation)
    assert with_snr.coef_.size == plain.coef_.size + 1
    oracle = oracle_offload(test)
    plain_offload = plain.decide(test, np.arange(1000), np.random.default_rng(0)).offload
    snr_offload = with_snr.decide(test, np.arange(1000), np.random.default_rng(0)).offload
    assert np.mean(snr_offload == oracle) > 0.97
    assert np.mean(plain_offload == oracle) < 0.7
    assert with_snr.device_macs_per_request == router_macs(N_CLASSES, 2 * N_CLASSES + 3)


def test_bad_input_fails_early() -> None:
    with pytest.raises(ValueError, match="at most one"):
        Router(tiny_macs=0, bytes_per_offload=1, target_offload=0.2, threshold=0.5)
    with pytest.raises(ValueError, match="target_offload"):
        Router(tiny_macs=0, bytes_per_offload=1, target_offload=1.5)
    with pytest.raises(NotFittedError):
        Router(tiny_macs=0, bytes_per_offload=1).decide(
            confidence_trace(10, seed=0), np.arange(3), np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="snr_db"):
        Router(tiny_macs=0, bytes_per_offload=1, use_snr=True).fit(confidence_trace(100, 0))
    all_right = np.eye(N_CLASSES)[np.arange(40) % N_CLASSES]
    trace = Trace(tiny_logits=all_right, large_logits=all_right, y=np.arange(40) % N_CLASSES)
    with pytest.raises(ValueError, match="fixes 0 of 40"):
        Router(tiny_macs=0, bytes_per_offload=1).fit(trace)


def class_trace(n: int, seed: int) -> Trace:
    """The large model fixes the tiny one exactly when the tiny model says class 1 or 2,
    whatever its confidence: a rule on the class, invisible to sorted-confidence features."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    tiny_pred = rng.integers(0, N_CLASSES, n)
    tiny = rng.normal(0.0, 0.05, (n, N_CLASSES))
    tiny[np.arange(n), tiny_pred] += rng.uniform(0.5, 3.0, n)
    fixable = (tiny_pred == 1) | (tiny_pred == 2)
    y = np.where(fixable, (tiny_pred + 1) % N_CLASSES, tiny_pred)
    large = np.eye(N_CLASSES)[y] * 3.0
    return Trace(tiny_logits=tiny, large_logits=large, y=y)


def test_mlp_router_folds_standardization_and_learns_a_class_rule() -> None:
    validation, test = class_trace(3000, seed=7), class_trace(1000, seed=8)
    mlp = Router(tiny_macs=0, bytes_per_offload=1, hidden_units=8, seed=0).fit(validation)
    # the folded weights reproduce sklearn's own MLP on standardized features
    features = logit_features(validation.tiny_logits)
    mean, std = features.mean(axis=0), features.std(axis=0)
    reference = MLPClassifier((8,), alpha=1e-4, max_iter=500, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit((features - mean) / std, oracle_offload(validation))
    test_features = (logit_features(test.tiny_logits) - mean) / std
    np.testing.assert_allclose(
        mlp.fix_probability(test),
        reference.predict_proba(test_features)[:, 1],
        rtol=1e-9,
        atol=1e-12,
    )
    offload = mlp.decide(test, np.arange(1000), np.random.default_rng(0)).offload
    assert np.mean(offload == oracle_offload(test)) > 0.98
    # device cost: (F + 1) x h for the two layers, F = 2C + 2 features
    features_count = 2 * N_CLASSES + 2
    assert mlp.device_macs_per_request == router_macs(N_CLASSES, features_count, 8)
    assert router_macs(N_CLASSES, features_count, 8) == (features_count + 1) * 8 + (
        FEATURE_MACS_PER_CLASS * N_CLASSES + N_CLASSES * 2
    )
    with pytest.raises(ValueError, match="hidden_units"):
        Router(tiny_macs=0, bytes_per_offload=1, hidden_units=-1)


@pytest.mark.parametrize("large_fixes", ["none", "all"])
def test_a_router_with_nothing_to_learn_says_so_as_a_cannot_fit_error(large_fixes: str) -> None:
    """Not a config error: the pipeline catches CannotFitError, skips the router and runs on."""
    from tinylarge.errors import CannotFitError

    y = np.zeros(6, dtype=np.int64)
    right, wrong = np.eye(2)[y], np.eye(2)[1 - y]
    tiny = wrong if large_fixes == "all" else right  # "none": the tiny model is always right
    trace = Trace(tiny_logits=tiny, large_logits=right, y=y)
    fixed = 6 if large_fixes == "all" else 0
    with pytest.raises(
        CannotFitError, match=f"the large model fixes {fixed} of 6 validation samples"
    ):
        Router(tiny_macs=1, bytes_per_offload=1, target_offload=0.5).fit(trace)
