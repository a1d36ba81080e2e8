"""`Task`: the train/test arrays, class names and per-sample metadata every layer codes against."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _check_x(task_name: str, split: str, x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"Task {task_name!r}: x_{split} must be a numpy array, got {type(x)}")
    if x.dtype != np.float32:
        raise ValueError(f"Task {task_name!r}: x_{split} must have dtype float32, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(
            f"Task {task_name!r}: x_{split} must have shape (n, *input_shape) with at least "
            f"2 dimensions, got shape {x.shape}"
        )
    if x.shape[0] < 1:
        raise ValueError(f"Task {task_name!r}: x_{split} must hold at least one sample")
    return x


def _check_y(task_name: str, split: str, y: object, n: int, num_classes: int) -> None:
    if not isinstance(y, np.ndarray):
        raise ValueError(f"Task {task_name!r}: y_{split} must be a numpy array, got {type(y)}")
    if y.dtype != np.int64:
        raise ValueError(f"Task {task_name!r}: y_{split} must have dtype int64, got {y.dtype}")
    if y.shape != (n,):
        raise ValueError(
            f"Task {task_name!r}: y_{split} must have shape ({n},) to match x_{split}, "
            f"got {y.shape}"
        )
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"Task {task_name!r}: y_{split} values must lie in [0, {num_classes}) "
            f"(num_classes = len(class_names)), got range [{low}, {high}]"
        )


def _check_meta(task_name: str, split: str, meta: object, n: int) -> None:
    if not isinstance(meta, dict):
        raise ValueError(f"Task {task_name!r}: meta_{split} must be a dict, got {type(meta)}")
    for key, values in meta.items():
        if not isinstance(key, str):
            raise ValueError(f"Task {task_name!r}: meta_{split} keys must be str, got {key!r}")
        if not isinstance(values, np.ndarray) or values.shape != (n,):
            shape = values.shape if isinstance(values, np.ndarray) else type(values)
            raise ValueError(
                f"Task {task_name!r}: meta_{split}[{key!r}] must be a numpy array of shape "
                f"({n},), one value per sample, got {shape}"
            )


@dataclass(frozen=True, eq=False)
class Task:
    """A classification task: train/test arrays, class names and per-sample metadata.

    Equality is identity (``eq=False``): comparing array fields element-wise is ambiguous.

    Attributes
    ----------
    name : str
        Task kind: ``"radio"``, ``"digits"`` or ``"npz"``.
    x_train : numpy.ndarray of float32, shape (n_train, *input_shape)
        Training inputs.
    y_train : numpy.ndarray of int64, shape (n_train,)
        Training labels in ``[0, num_classes)``.
    x_test : numpy.ndarray of float32, shape (n_test, *input_shape)
        Test inputs.
    y_test : numpy.ndarray of int64, shape (n_test,)
        Test labels in ``[0, num_classes)``.
    class_names : tuple of str
        Name of each class; ``num_classes == len(class_names)``.
    meta_train : dict of str to numpy.ndarray, each of shape (n_train,)
        Per-sample metadata, e.g. ``"snr_db"`` (float32, dB) for the radio task.
    meta_test : dict of str to numpy.ndarray, each of shape (n_test,)
        The same keys as ``meta_train``.
    description : str
        One human-readable line about the data.

    Raises
    ------
    ValueError
        On construction, if dtypes, shapes, lengths, label ranges or metadata keys disagree.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    meta_train: dict[str, np.ndarray] = field(default_factory=dict)
    meta_test: dict[str, np.ndarray] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task name must be a non-empty string, got {self.name!r}")
        if (
            not isinstance(self.class_names, tuple)
            or not self.class_names
            or not all(isinstance(c, str) for c in self.class_names)
        ):
            raise ValueError(
                f"Task {self.name!r}: class_names must be a non-empty tuple of str, "
                f"got {self.class_names!r}"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(
                f"Task {self.name!r}: class_names must be unique, got {self.class_names!r}"
            )
        x_train = _check_x(self.name, "train", self.x_train)
        x_test = _check_x(self.name, "test", self.x_test)
        if x_train.shape[1:] != x_test.shape[1:]:
            raise ValueError(
                f"Task {self.name!r}: x_test per-sample shape {x_test.shape[1:]} differs from "
                f"x_train per-sample shape {x_train.shape[1:]}"
            )
        n_classes = len(self.class_names)
        _check_y(self.name, "train", self.y_train, x_train.shape[0], n_classes)
        _check_y(self.name, "test", self.y_test, x_test.shape[0], n_classes)
        _check_meta(self.name, "train", self.meta_train, x_train.shape[0])
        _check_meta(self.name, "test", self.meta_test, x_test.shape[0])
        if set(self.meta_train) != set(self.meta_test):
            raise ValueError(
                f"Task {self.name!r}: meta_train keys {sorted(self.meta_train)} and meta_test "
                f"keys {sorted(self.meta_test)} must be the same"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, e.g. ``(2, 128)`` for radio frames."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(class_names)``."""
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test samples."""
        return int(self.x_test.shape[0])
