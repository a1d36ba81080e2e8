"""TensorFlow Lite Micro fixed-point helpers, vectorized over NumPy int64 arrays.

These reproduce, bit for bit, the integer arithmetic of the TFLite (Micro) reference kernels
(``tensorflow/lite/kernels/internal/common.h``, ``quantization_util.cc`` and gemmlowp's
``fixedpoint.h``) that a C implementation on a microcontroller executes:

* `quantize_multiplier` encodes a real multiplier ``M > 0`` as a Q31 integer and a power-of-two
  exponent, ``M ~= q_fixed * 2**(shift - 31)``;
* `saturating_rounding_doubling_high_mul` is gemmlowp's ``SaturatingRoundingDoublingHighMul``;
* `rounding_divide_by_pot` is gemmlowp's ``RoundingDivideByPOT`` (round half away from zero);
* `multiply_by_quantized_multiplier` is TFLite's ``MultiplyByQuantizedMultiplier`` (the default
  "double rounding" build: the two functions above in sequence).

Inputs are int64 arrays holding int32 values (the C code works on ``int32_t``); products are
formed in int64 exactly as the C code's ``int64_t`` intermediate. Where the C code would
overflow an ``int32_t`` (a left shift of a large accumulator), `wrap_int32` reproduces the
two's-complement wrap-around of the device.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

IntArray = npt.NDArray[np.int64]


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """Encode a real multiplier as TFLite's ``QuantizeMultiplier`` does.

    ``frexp`` splits ``real_multiplier`` into ``q * 2**shift`` with ``q`` in [0.5, 1);
    ``q_fixed = round(q * 2**31)`` rounds half away from zero; if it reaches ``2**31`` it is
    halved and ``shift`` grows by one; a shift below -31 encodes the multiplier as 0.

    Parameters
    ----------
    real_multiplier : float
        The real multiplier (float64), ``>= 0`` and finite.

    Returns
    -------
    q_fixed : int
        The Q31 significand in [2**30, 2**31 - 1], or 0.
    shift : int
        The power-of-two exponent: ``real ~= q_fixed * 2**(shift - 31)``.
    """
    if not (math.isfinite(real_multiplier) and real_multiplier >= 0.0):
        raise ValueError(f"multiplier must be finite and >= 0, got {real_multiplier!r}")
    if real_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(real_multiplier)
    scaled = q * float(1 << 31)  # exact: a power-of-two scaling of a float64
    q_fixed = math.floor(scaled + 0.5)  # scaled > 0: round half away from zero
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def wrap_int32(x: IntArray) -> IntArray:
    """Reduce int64 values to int32 with two's-complement wrap-around (``int32_t`` overflow)."""
    return ((x - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


def saturating_rounding_doubling_high_mul(
    a: IntArray, b: IntArray | int, *, inplace: bool = False
) -> IntArray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` of int32 values ``a`` and ``b``.

    The C code computes ``(a * b + nudge) / 2**31`` with ``nudge = 2**30`` if ``a * b >= 0`` and
    ``1 - 2**30`` otherwise, dividing with truncation toward zero; that equals
    ``floor((a * b + 2**30) / 2**31)`` for every sign (ties of ``a * b / 2**31`` go toward
    +infinity), computed here with an arithmetic shift. The single overflowing case
    ``a == b == INT32_MIN`` saturates to ``INT32_MAX``.

    Parameters
    ----------
    a, b : int64 array or int
        int32 values; broadcast against each other.
    inplace : bool
        Overwrite ``a`` (an int64 array of the result's shape) with the result.

    Returns
    -------
    int64 array
        int32 values.
    """
    a = np.asarray(a, dtype=np.int64)
    b_arr = np.asarray(b, dtype=np.int64)
    saturate = bool(np.any(b_arr == INT32_MIN))
    overflow = (a == INT32_MIN) & (b_arr == INT32_MIN) if saturate else None
    if inplace:
        a *= b_arr
        result = a
    else:
        result = a * b_arr
    result += 1 << 30
    result >>= 31
    if overflow is not None:
        result = np.where(overflow, INT32_MAX, result)
    return result


def rounding_divide_by_pot(
    x: IntArray, exponent: IntArray | int, *, inplace: bool = False
) -> IntArray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero.

    gemmlowp adds one when the remainder exceeds half the divisor (minus one for negative
    ``x``); equivalently, for ``exponent >= 1``, ``(x + 2**(exponent - 1) - [x < 0]) >>
    exponent`` with an arithmetic shift, which is what is computed here (``x >> 63`` gives the
    ``-[x < 0]`` term without a boolean pass).

    Parameters
    ----------
    x : int64 array
        int32 values.
    exponent : int64 array or int
        Right-shift amounts in [0, 31]; broadcast against ``x`` (per channel, for instance).
    inplace : bool
        Overwrite ``x`` (an int64 array of the result's shape) with the result.

    Returns
    -------
    int64 array
        int32 values.
    """
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError(f"exponent must lie in [0, 31], got {exponent}")
    positive = exponent > 0
    if not np.any(positive):
        return x if inplace else x.copy()
    half = np.where(positive, np.int64(1) << np.maximum(exponent - 1, 0), 0)
    correction = x >> 63  # -1 where x < 0, else 0
    if not np.all(positive):
        correction &= -positive.astype(np.int64)  # exponent 0 divides exactly: no correction
    result = x if inplace else x.copy()
    result += correction
    result += half
    result >>= exponent
    return result


def multiply_by_quantized_multiplier(
    x: IntArray,
    quantized_multiplier: IntArray | int,
    shift: IntArray | int,
    *,
    inplace: bool = False,
) -> IntArray:
    """TFLite ``MultiplyByQuantizedMultiplier`` (double rounding) of int32 values.

    ``x * 2**max(shift, 0)`` (wrapping like ``int32_t``), then
    `saturating_rounding_doubling_high_mul` by ``quantized_multiplier``, then
    `rounding_divide_by_pot` by ``max(-shift, 0)``.

    Parameters
    ----------
    x : int64 array
        int32 values (an accumulator).
    quantized_multiplier, shift : int64 array or int
        From `quantize_multiplier`; broadcast against ``x``.
    inplace : bool
        Overwrite ``x`` (an int64 array of the result's shape) with the result.

    Returns
    -------
    int64 array
        int32 values.
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    if np.any(left > 0):
        x, inplace = wrap_int32(x << left), True
    high = saturating_rounding_doubling_high_mul(x, quantized_multiplier, inplace=inplace)
    return rounding_divide_by_pot(high, right, inplace=True)
