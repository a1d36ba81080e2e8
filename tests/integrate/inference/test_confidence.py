"""Confidence measures against hand-computed values, and threshold tuning on validation data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinylarge.integrate.inference.confidence import (
    cascade_outcome,
    check_kind,
    confidence,
    entropy,
    margin,
    max_softmax,
    softmax,
    threshold_for_accuracy,
    threshold_for_offload_fraction,
)

# Probabilities 1/6, 2/6, 3/6 and uniform over 4 classes.
LOGITS_A = np.log(np.array([[1.0, 2.0, 3.0]]))
LOGITS_U = np.zeros((1, 4))


def test_hand_computed_values() -> None:
    p = np.array([1 / 6, 2 / 6, 3 / 6])
    assert max_softmax(LOGITS_A) == pytest.approx([0.5])
    assert margin(LOGITS_A) == pytest.approx([1 / 6])
    assert entropy(LOGITS_A) == pytest.approx([-(p * np.log(p)).sum()])
    assert entropy(LOGITS_U) == pytest.approx([math.log(4)])
    assert margin(LOGITS_U) == pytest.approx([0.0])
    assert max_softmax(LOGITS_U) == pytest.approx([0.25])
    assert confidence(LOGITS_A, "entropy") == pytest.approx(-entropy(LOGITS_A))
    assert confidence(LOGITS_A, "margin") == pytest.approx(margin(LOGITS_A))


def test_numerically_stable_and_shift_invariant() -> None:
    huge = np.array([[1000.0, 0.0, -1000.0], [3e4, 3e4, 0.0]])
    assert np.isfinite(softmax(huge)).all()
    assert entropy(huge) == pytest.approx([0.0, math.log(2)], abs=1e-12)
    assert margin(huge) == pytest.approx([1.0, 0.0])
    shifted = LOGITS_A + 500.0
    for kind in ("max_softmax", "margin", "entropy"):
        assert confidence(shifted, kind) == pytest.approx(confidence(LOGITS_A, kind))
    assert softmax(np.float32(LOGITS_A)).dtype == np.float64


@pytest.mark.parametrize(
    ("logits", "message"),
    [
        (np.zeros(3), r"shape \(n, C\)"),
        (np.zeros((2, 1)), "C >= 2"),
        (np.array([[0.0, np.nan]]), "finite"),
    ],
)
def test_bad_logits(logits: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        max_softmax(logits)


def test_unknown_kind_names_allowed() -> None:
    with pytest.raises(ValueError, match="max_softmax, margin, entropy"):
        confidence(LOGITS_A, "variance")


@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.1, 0.2, 1 / 3, 0.4, 0.5, 0.9, 0.99, 1.0])
def test_offload_fraction_within_one_point_with_ties(target: float) -> None:
    rng = np.random.default_rng(7)
    conf = np.round(rng.random(5000), 3)  # ~5 samples per distinct value
    threshold = threshold_for_offload_fraction(conf, target)
    achieved = float(np.mean(conf < threshold))
    assert abs(achieved - target) <= 0.01
    # The nearest achievable count: no tie-group boundary is closer to the target.
    boundaries = np.r_[np.searchsorted(np.sort(conf), np.unique(conf)), conf.size]
    best = np.min(np.abs(boundaries - target * conf.size))
    assert abs(achieved * conf.size - target * conf.size) == pytest.approx(best)


def test_offload_fraction_exact_quantile_and_edges() -> None:
    conf = np.array([0.9, 0.1, 0.5, 0.3, 0.7])
    assert threshold_for_offload_fraction(conf, 0.4) == 0.5  # offloads 0.1 and 0.3
    assert threshold_for_offload_fraction(conf, 0.0) == 0.1  # nothing below the minimum
    assert threshold_for_offload_fraction(conf, 1.0) == math.inf
    # All tied: only 0 or all achievable; an exact tie between them takes the lower count.
    assert threshold_for_offload_fraction(np.full(4, 0.5), 0.5) == 0.5
    assert threshold_for_offload_fraction(np.full(4, 0.5), 0.6) == math.inf


def test_offload_fraction_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        threshold_for_offload_fraction(np.ones(3), 1.5)
    with pytest.raises(ValueError, match="finite"):
        threshold_for_offload_fraction(np.array([0.1, np.nan]), 0.5)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        threshold_for_offload_fraction(np.ones((2, 2)), 0.5)


def test_accuracy_threshold_hand_example() -> None:
    # Sorted by confidence: sample 0 is fixed by the large model, sample 1 broken by it.
    conf = np.array([0.1, 0.2, 0.3, 0.8])
    tiny = np.array([False, True, False, True])
    large = np.array([True, False, True, True])
    assert threshold_for_accuracy(conf, tiny, large, 0.5) == 0.1  # tiny alone: 2/4
    assert threshold_for_accuracy(conf, tiny, large, 0.75) == 0.2  # offload sample 0: 3/4
    # 1.0 is unreachable: the most accurate threshold (3/4), the one offloading fewest, not
    # offloading everything (also 3/4, with every sample on air)
    assert threshold_for_accuracy(conf, tiny, large, 1.0) == 0.2


def test_accuracy_threshold_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    conf = np.round(rng.random(300), 2)
    tiny = rng.random(300) < 0.6
    large = rng.random(300) < 0.8
    candidates = np.r_[np.unique(conf), np.inf]
    accuracy = np.array([np.where(conf < t, large, tiny).mean() for t in candidates])
    for target in (0.5, 0.65, 0.7, 0.75, 0.8):
        reached = candidates[accuracy >= target - 1e-12]
        expected = reached[0] if reached.size else candidates[np.argmax(accuracy)]
        assert threshold_for_accuracy(conf, tiny, large, target) == expected
    assert accuracy.max() < 0.95  # ... and a target none reaches: the most accurate
    assert threshold_for_accuracy(conf, tiny, large, 0.95) == candidates[np.argmax(accuracy)]


def test_unreachable_accuracy_keeps_what_the_tiny_model_gets_right() -> None:
    # The large model is wrong where the tiny model is right (samples 2 and 3): no threshold
    # reaches 1.0; offloading sample 0 gives 3/4, offloading everything only 1/4.
    conf = np.array([0.1, 0.2, 0.3, 0.4])
    tiny = np.array([False, False, True, True])
    large = np.array([True, False, False, False])
    assert threshold_for_accuracy(conf, tiny, large, 1.0) == 0.2  # the first of the 3/4s
    assert np.where(conf < 0.2, large, tiny).mean() == 0.75
    assert np.where(conf < math.inf, large, tiny).mean() == 0.25


def test_tied_confidences_fall_on_the_same_side() -> None:
    # Samples 0 and 3 tie at 0.5: a threshold offloads both or neither. The achievable offload
    # counts are 0, 1 (threshold 0.5), 3 (0.9) and 4; a target of 2 is as near to 1 as to 3:
    # the lower count.
    conf = np.array([0.5, 0.1, 0.9, 0.5])
    threshold = threshold_for_offload_fraction(conf, 0.5)
    assert threshold == 0.5 and (conf < threshold).sum() == 1
    # Offloading samples 1 and 0 would be right everywhere, but no threshold splits the tie:
    # the best achievable is 3/4 (offload sample 1), so 1.0 is unreachable.
    tiny = np.array([False, False, True, True])
    large = np.array([True, True, False, False])
    assert threshold_for_accuracy(conf, tiny, large, 0.75) == 0.5
    assert threshold_for_accuracy(conf, tiny, large, 1.0) == 0.5
    assert np.where(conf < 0.5, large, tiny).mean() == 0.75


def test_max_softmax_matches_torch() -> None:
    import torch

    z = np.random.default_rng(0).normal(size=(5, 3)) * 10
    expected = torch.softmax(torch.from_numpy(z), dim=1).max(dim=1).values.numpy()
    np.testing.assert_allclose(max_softmax(z), expected, rtol=1e-12)


def test_accuracy_threshold_bad_arguments() -> None:
    conf = np.array([0.1, 0.2])
    ok = np.array([True, False])
    with pytest.raises(ValueError, match="tiny_correct must be bool of shape"):
        threshold_for_accuracy(conf, np.array([1, 0]), ok, 0.5)
    with pytest.raises(ValueError, match="large_correct must be bool of shape"):
        threshold_for_accuracy(conf, ok, ok[:1], 0.5)
    with pytest.raises(ValueError, match="target_accuracy"):
        threshold_for_accuracy(conf, ok, ok, -0.1)


def test_cascade_outcome_hand_example() -> None:
    conf = np.array([0.1, 0.2, 0.6, 0.9])
    device_ok = np.array([False, True, True, False])
    edge_ok = np.array([True, False, True, True])
    # below 0.5: samples 0 and 1 go to the edge (right, wrong); 2 and 3 stay (right, wrong)
    assert cascade_outcome(conf, 0.5, device_ok, edge_ok) == (0.5, 0.5)
    assert cascade_outcome(conf, -np.inf, device_ok, edge_ok) == (0.0, 0.5)
    assert cascade_outcome(conf, np.inf, device_ok, edge_ok) == (1.0, 0.75)


def test_check_kind_names_the_allowed_kinds() -> None:
    assert check_kind("margin") == "margin"
    with pytest.raises(ValueError, match="max_softmax, margin, entropy"):
        check_kind("softmax")
