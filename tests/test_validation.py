"""The shared integer and fraction argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.validation import check_fraction, check_int


def test_integers_in_range_pass_as_int() -> None:
    assert check_int("n", 3, 1) == 3
    value = check_int("n", np.int64(7), 0, 7)
    assert value == 7 and type(value) is int


@pytest.mark.parametrize(
    ("value", "low", "high", "message"),
    [
        (0, 1, None, r"n must be an integer >= 1, got 0"),
        (9, 1, 8, r"n must be an integer in \[1, 8\], got 9"),
        (2.0, 1, None, r"n must be an integer >= 1, got 2\.0"),
        (True, 0, None, r"n must be an integer >= 0, got True"),
        ("3", 0, None, r"n must be an integer >= 0, got '3'"),
    ],
)
def test_everything_else_is_refused(
    value: object, low: int, high: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_int("n", value, low, high)


def test_fractions_pass_as_float_and_the_rest_is_refused() -> None:
    assert check_fraction("f", 1) == 1.0 and type(check_fraction("f", np.float32(0.5))) is float
    for value in (-0.1, 1.5, float("nan"), True, "0.5", None):
        with pytest.raises(ValueError, match=r"f must be a number in \[0, 1\]; got"):
            check_fraction("f", value)
