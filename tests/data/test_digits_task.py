"""The scikit-learn digits task."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.data import make_digits_task


def test_digits_shapes_range_and_classes() -> None:
    task = make_digits_task(0)
    assert task.name == "digits"
    assert task.input_shape == (1, 8, 8)
    assert task.x_train.dtype == np.float32 and task.y_train.dtype == np.int64
    assert task.n_train + task.n_test == 1797
    assert task.n_test == pytest.approx(0.25 * 1797, abs=1)
    assert task.x_train.min() == 0.0 and task.x_train.max() == 1.0
    assert task.class_names == tuple(str(d) for d in range(10))
    assert task.meta_train == {} and task.meta_test == {}


def test_digits_split_is_stratified_and_seeded() -> None:
    task = make_digits_task(1, test_fraction=0.3)
    train_share = np.bincount(task.y_train) / task.n_train
    test_share = np.bincount(task.y_test) / task.n_test
    np.testing.assert_allclose(train_share, test_share, atol=0.01)
    again = make_digits_task(1, test_fraction=0.3)
    np.testing.assert_array_equal(task.x_test, again.x_test)
    other = make_digits_task(2, test_fraction=0.3)
    assert not np.array_equal(task.y_test, other.y_test)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_digits_rejects_bad_test_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"test_fraction must be a number in \(0, 1\)"):
        make_digits_task(0, test_fraction=fraction)
