"""The `Task` container validates its arrays on construction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tinylarge.data import Task


def _arrays(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "npz",
        "x_train": np.zeros((6, 2, 4), dtype=np.float32),
        "y_train": np.array([0, 1, 2, 0, 1, 2], dtype=np.int64),
        "x_test": np.zeros((3, 2, 4), dtype=np.float32),
        "y_test": np.array([2, 1, 0], dtype=np.int64),
        "class_names": ("a", "b", "c"),
        "meta_train": {"snr_db": np.zeros(6, dtype=np.float32)},
        "meta_test": {"snr_db": np.zeros(3, dtype=np.float32)},
    }
    base.update(overrides)
    return base


def test_valid_task_properties() -> None:
    task = Task(**_arrays(description="toy"))
    assert task.input_shape == (2, 4)
    assert task.num_classes == 3
    assert (task.n_train, task.n_test) == (6, 3)
    assert task.description == "toy"
    assert task == task and task != Task(**_arrays())  # identity equality, no array compare


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"x_train": np.zeros((6, 2, 4))}, "x_train must have dtype float32, got float64"),
        ({"x_test": np.zeros(3, dtype=np.float32)}, "x_test must have shape"),
        ({"x_test": np.zeros((3, 4, 2), dtype=np.float32)}, "x_test per-sample shape"),
        ({"y_train": np.zeros(6, dtype=np.int32)}, "y_train must have dtype int64"),
        ({"y_test": np.zeros(4, dtype=np.int64)}, r"y_test must have shape \(3,\)"),
        ({"y_test": np.array([0, 1, 3])}, r"y_test values must lie in \[0, 3\)"),
        ({"y_train": -np.ones(6, dtype=np.int64)}, r"got range \[-1, -1\]"),
        ({"class_names": ["a", "b", "c"]}, "class_names must be a non-empty tuple"),
        ({"class_names": ("a", "a", "c")}, "class_names must be unique"),
        ({"meta_test": {"snr_db": np.zeros(2)}}, r"meta_test\['snr_db'\] must be a numpy array"),
        ({"meta_test": {}}, "meta_train keys .* must be the same"),
        ({"name": ""}, "Task name must be a non-empty string"),
        (
            {"x_train": np.zeros((0, 2, 4), dtype=np.float32), "y_train": np.zeros(0, np.int64)},
            "at least one sample",
        ),
    ],
)
def test_invalid_tasks_are_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Task(**_arrays(**overrides))
