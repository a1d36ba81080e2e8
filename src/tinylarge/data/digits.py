"""The `digits` task: scikit-learn's bundled 8x8 handwritten digits (no download needed)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tinylarge.data.task import Task
from tinylarge.seeding import derive_seed

#: Pixel values of `load_digits` are counts of set pixels in 4x4 blocks of the original
#: 32x32 bitmaps (UCI "Optical Recognition of Handwritten Digits"), so they range 0..16.
_MAX_PIXEL_VALUE = 16.0


def make_digits_task(seed: int, *, test_fraction: float = 0.25) -> Task:
    """Build the digits `Task`: 1797 images, 10 classes, stratified train/test split.

    Parameters
    ----------
    seed : int
        Scenario seed (>= 0); the split uses the named stream ``("task", "digits", "split")``.
    test_fraction : float
        Fraction of samples in the test set, in (0, 1).

    Returns
    -------
    Task
        ``x`` float32 of shape (n, 1, 8, 8) with values in [0, 1] (pixel / 16); labels int64
        in 0..9; class names "0".."9"; no metadata.
    """
    if not (
        isinstance(test_fraction, int | float)
        and math.isfinite(test_fraction)
        and 0.0 < test_fraction < 1.0
    ):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / _MAX_PIXEL_VALUE).astype(np.float32)
    x = x.reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    # scikit-learn accepts integer seeds in [0, 2**32).
    split_seed = derive_seed(seed, "task", "digits", "split") % (2**32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed
    )
    return Task(
        name="digits",
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=np.ascontiguousarray(y_train, dtype=np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=np.ascontiguousarray(y_test, dtype=np.int64),
        class_names=tuple(str(d) for d in range(10)),
        meta_train={},
        meta_test={},
        description="scikit-learn digits: 8x8 grey-level images of handwritten digits 0-9.",
    )
