"""Validation of array arguments shared by the network model's modules."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def floats(
    name: str, value: ArrayLike, *, low: float | None = None, strict: bool = False,
    finite: bool = False,
) -> FloatArray:  # fmt: skip
    """``value`` as float64; NaN, non-finite (if ``finite``) and values below ``low`` rejected."""
    arr = np.asarray(value, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    if low is not None and (arr <= low if strict else arr < low).any():
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}")
    return arr
