"""Exact integer accumulation kernels of the runtime, vectorized over the batch.

Activations are *channel-major* inside the runtime: the first per-sample axis comes before
the batch axis, so a tensor ``(C, *spatial)`` is held as ``(C, N, *spatial)`` and a vector
``(F,)`` as ``(F, N)``. Then a convolution is one im2col matrix ``(C_in * K, N * positions)``
for the whole batch (built from contiguous row copies) and one BLAS product
``(C_out, C_in * K) @ (C_in * K, N * positions)`` whose result is already channel-major, and
per-channel requantization runs over long contiguous rows. The products and sums are
integers, computed in float32 when every partial sum stays below 2**24 (exact) and in float64
otherwise (exact below 2**53).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from tinylarge.tiny.graph import INT8_MAX, INT8_MIN

Int8Array = npt.NDArray[np.int8]
FloatArray = npt.NDArray[np.floating]

#: Partial sums of integers below this magnitude are exact in float32.
_FLOAT32_EXACT = 2**24


def max_abs_offset(zero_point: int) -> int:
    """Largest ``|q - zero_point|`` over int8 ``q``."""
    return max(zero_point - INT8_MIN, INT8_MAX - zero_point)


def accumulator_bound(weight: npt.NDArray[np.int8], zero_point: int) -> int:
    """Upper bound of ``|sum(w * (x - zero_point))|`` over one output channel's window."""
    per_channel = np.abs(weight.astype(np.int64)).reshape(weight.shape[0], -1).sum(axis=1)
    return int(per_channel.max(initial=0)) * max_abs_offset(zero_point)


def _dtype_for(bound: int) -> type[np.floating]:
    return np.float32 if bound < _FLOAT32_EXACT else np.float64


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of one spatial dimension (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def conv(
    x: Int8Array,
    zero_point: int,
    weight: npt.NDArray[np.int8],
    *,
    stride: Sequence[int],
    padding: Sequence[int],
    groups: int,
) -> FloatArray:
    """Exact convolution accumulators ``sum(w * (x - zero_point))`` without bias.

    Parameters
    ----------
    x : int8 array, shape (C_in, N, *spatial)
        Channel-major input; padding uses the zero point (a real 0).
    zero_point : int
        The input's zero point.
    weight : int8 array, shape (C_out, C_in / groups, *kernel)
        Weights (zero point 0).
    stride, padding : sequence of int
        Per spatial dimension; padding is symmetric.
    groups : int
        Channel groups (``C_in`` is depthwise).

    Returns
    -------
    float32 or float64 array, shape (C_out, N, *out_spatial)
        Integer-valued accumulators.
    """
    dims = weight.ndim - 2
    kernel = weight.shape[2:]
    c_in, n = x.shape[:2]
    c_out = weight.shape[0]
    dtype = _dtype_for(accumulator_bound(weight, zero_point))
    xf = x.astype(dtype)
    xf -= dtype(zero_point)
    if any(padding):
        xf = np.pad(xf, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    spatial_axes = tuple(range(2, dims + 2))
    windows = sliding_window_view(xf, kernel, axis=spatial_axes)  # (C, N, *S', *k)
    windows = windows[(slice(None), slice(None), *(slice(None, None, s) for s in stride))]
    out_spatial = windows.shape[2 : dims + 2]
    order = (0, *range(dims + 2, 2 * dims + 2), 1, *range(2, dims + 2))  # (C, *k, N, *S_out)
    cols = windows.transpose(order).reshape(c_in * math.prod(kernel), -1)  # copies
    w = weight.astype(dtype)
    acc: FloatArray
    if groups == 1:
        acc = w.reshape(c_out, -1) @ cols
    else:
        per_group = cols.reshape(groups, -1, cols.shape[-1])  # (G, C_in/G * K, P)
        acc = np.matmul(w.reshape(groups, c_out // groups, -1), per_group).reshape(c_out, -1)
    return acc.reshape(c_out, n, *out_spatial)


def linear(x: Int8Array, zero_point: int, weight: npt.NDArray[np.int8]) -> FloatArray:
    """Exact ``weight @ (x - zero_point)`` for ``x`` (in, N) and ``weight`` (out, in)."""
    dtype = _dtype_for(accumulator_bound(weight, zero_point))
    xf = x.astype(dtype)
    xf -= dtype(zero_point)
    result: FloatArray = weight.astype(dtype) @ xf
    return result


def pool_windows(
    spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int]
) -> Iterator[tuple[slice, ...]]:
    """Index tuples selecting, for each kernel tap, that tap of every window.

    For a channel-major array ``(C, N, *spatial)`` each yielded index gives an array
    ``(C, N, *out_spatial)``; reducing over the taps reduces over each window (no padding).
    """
    out = [conv_output_size(s, k, st, 0) for s, k, st in zip(spatial, kernel, stride, strict=True)]
    for offsets in itertools.product(*(range(k) for k in kernel)):
        yield (
            slice(None),
            slice(None),
            *(
                slice(o, o + st * (n - 1) + 1, st)
                for o, st, n in zip(offsets, stride, out, strict=True)
            ),
        )


def max_pool(x: Int8Array, kernel: Sequence[int], stride: Sequence[int]) -> Int8Array:
    """Window maximum of channel-major ``x`` (C, N, *spatial)."""
    taps = pool_windows(x.shape[2:], kernel, stride)
    result = x[next(taps)].copy()
    for index in taps:
        np.maximum(result, x[index], out=result)
    return result


def window_sum(
    x: Int8Array, kernel: Sequence[int], stride: Sequence[int], offset: int = 0
) -> npt.NDArray[np.int64]:
    """Exact window sums of ``x - offset`` for channel-major ``x`` (C, N, *spatial)."""
    taps = pool_windows(x.shape[2:], kernel, stride)
    result = x[next(taps)].astype(np.int64)
    for index in taps:
        result += x[index]
    if offset:
        result -= offset * math.prod(kernel)
    return result
