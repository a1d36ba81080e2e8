"""Argument checks shared by every layer: an error says what was wrong and what is allowed."""

from __future__ import annotations

import math

import numpy as np


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not a bool) in
    ``[low, high]`` (no upper bound when ``high`` is None); else ``ValueError``.

    Parameters
    ----------
    name : str
        The argument's name, as the error message shows it.
    value : object
        What the caller passed.
    low, high : int
        Smallest and largest allowed value (``high`` optional).
    """
    number = int(value) if isinstance(value, int | np.integer) else None
    too_high = high is not None and number is not None and number > high
    if isinstance(value, bool) or number is None or number < low or too_high:
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


def check_fraction(name: str, value: object) -> float:
    """``value`` as a ``float`` if it is a real number (Python or NumPy, not a bool) in
    [0, 1]; else ``ValueError`` naming the argument ``name`` (as in `check_int`)."""
    number = float(value) if isinstance(value, int | float | np.number) else math.nan
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}")
    return number
