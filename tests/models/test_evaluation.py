from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

from tinylarge.models.evaluation import evaluate


def test_matches_scikit_learn_on_random_predictions() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 1000)
    predicted = np.where(rng.random(1000) < 0.6, y, rng.integers(0, 6, 1000))
    ev = evaluate(predicted, y, 6)
    assert ev.accuracy == pytest.approx(accuracy_score(y, predicted))
    np.testing.assert_array_equal(ev.confusion, confusion_matrix(y, predicted, labels=range(6)))
    np.testing.assert_allclose(ev.accuracy_by_class, recall_score(y, predicted, average=None))


def test_accuracy_by_snr_on_a_hand_example() -> None:
    y = np.array([0, 1, 1, 0, 1])
    predicted = np.array([0, 0, 1, 0, 0])
    snr = np.array([-4.0, -4.0, 6.0, 6.0, 10.0])
    ev = evaluate(predicted, y, 2, snr)
    np.testing.assert_array_equal(ev.snr_db, [-4.0, 6.0, 10.0])
    np.testing.assert_array_equal(ev.count_by_snr, [2, 2, 1])
    np.testing.assert_allclose(ev.accuracy_by_snr, [0.5, 1.0, 0.0])
    assert ev.accuracy_where(6.0) == pytest.approx(2 / 3)
    assert np.isnan(ev.accuracy_where(20.0))


def test_absent_class_has_nan_recall_and_bad_labels_fail() -> None:
    ev = evaluate(np.array([0, 1]), np.array([0, 1]), 3)
    assert np.isnan(ev.accuracy_by_class[2])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        evaluate(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="equal-length"):
        evaluate(np.array([0]), np.array([0, 1]), 3)
