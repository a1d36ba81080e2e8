"""Requantization of int32 results to int8, in TFLite Micro's and in ONNX Runtime's arithmetic.

Each function takes exact integer results (accumulators, window sums, int8 inputs) and returns
int8 in one of two arithmetics (see `tinylarge.tiny.runtime` for how they differ):

``"tflm"``
    TensorFlow Lite Micro reference kernels: integer only, multipliers in Q31 fixed point
    (`tinylarge.tiny.fixed_point`), double rounding, int32 wrap-around like the device.
``"onnx"``
    ONNX Runtime's CPU kernels (MLAS): the int32 result converted to float32, multiplied by a
    float32 multiplier, rounded half to even, zero point added, saturated.

Arrays are channel-major (``(C, ...)``, see `tinylarge.tiny.kernels`), so per-channel
parameters broadcast over the first axis. Scales are taken as float32 values (as stored in the
model and in ONNX initializers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tinylarge.tiny.fixed_point import (
    INT32_MAX,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    wrap_int32,
)
from tinylarge.tiny.graph import INT8_MAX, INT8_MIN

Arithmetic = Literal["tflm", "onnx"]
ARITHMETICS: tuple[Arithmetic, ...] = ("tflm", "onnx")

#: Integers up to this magnitude are exact in float32 (24-bit significand).
FLOAT32_EXACT = 2**24
#: TFLite's int8 ADD shifts both inputs left by 20 bits before rescaling them.
ADD_LEFT_SHIFT = 20

Int8Array = npt.NDArray[np.int8]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating]


def f32(value: float | npt.ArrayLike) -> npt.NDArray[np.float32]:
    """``value`` as float32 (0-d for a scalar)."""
    return np.asarray(value, dtype=np.float32)


def activation_range(zero_point: int, relu: bool) -> tuple[int, int]:
    """int8 output range: a fused ReLU clamps at the zero point (the quantized real 0)."""
    return (max(INT8_MIN, zero_point) if relu else INT8_MIN), INT8_MAX


@dataclass(frozen=True)
class Requantizer:
    """Maps per-channel int32 accumulators (before bias) to int8 in one arithmetic.

    Parameters
    ----------
    arithmetic : {"tflm", "onnx"}
        Which arithmetic to reproduce.
    bias : int64 array, shape (C,)
        int32 bias added to the accumulator.
    multiplier : int64 array, shape (C,)
        ``"tflm"``: Q31 significands of ``input_scale * weight_scale / output_scale``.
    shift : int64 array, shape (C,)
        ``"tflm"``: their power-of-two exponents.
    scale : float32 array, shape (C,)
        ``"onnx"``: the float32 multipliers.
    zero_point, low, high : int
        Output zero point and clamp range.
    acc_bound : int
        An upper bound of ``|accumulator|`` (before bias), used to skip overflow handling.
    """

    arithmetic: Arithmetic
    bias: IntArray
    multiplier: IntArray
    shift: IntArray
    scale: npt.NDArray[np.float32]
    zero_point: int
    low: int
    high: int
    acc_bound: int

    @property
    def monotone(self) -> bool:
        """Whether the output is non-decreasing in the accumulator (no int32 wrap possible)."""
        bound = self.acc_bound + int(np.abs(self.bias).max(initial=0))
        if self.arithmetic == "tflm":
            bound <<= int(np.maximum(self.shift, 0).max(initial=0))
        return bound <= INT32_MAX

    def __call__(self, acc: FloatArray | IntArray) -> Int8Array:
        """Requantize exact accumulators ``acc`` of shape ``(C, ...)`` (float or int)."""
        column = (-1,) + (1,) * (acc.ndim - 1)  # per-channel values broadcast over axis 0
        bias = self.bias.reshape(column)
        bias_bound = int(np.abs(self.bias).max(initial=0))
        if self.arithmetic == "onnx":
            if self.acc_bound + bias_bound < FLOAT32_EXACT:
                # acc + bias is an integer below 2**24: float32 holds it (and the sum) exactly.
                value = acc.astype(np.float32) + bias.astype(np.float32)
            else:
                value = wrap_int32(acc.astype(np.int64) + bias).astype(np.float32)
            value *= self.scale.reshape(column)
            return saturate_onnx(value, self.zero_point, self.low, self.high)
        total = acc.astype(np.int64)
        total += bias
        if self.acc_bound + bias_bound > INT32_MAX:
            total = wrap_int32(total)
        scaled = multiply_by_quantized_multiplier(
            total, self.multiplier.reshape(column), self.shift.reshape(column), inplace=True
        )
        scaled += self.zero_point
        return np.clip(scaled, self.low, self.high, out=scaled).astype(np.int8)


def saturate_onnx(
    value: npt.NDArray[np.float32], zero_point: int, low: int, high: int
) -> Int8Array:
    """Round float32 values half to even, add the zero point and clamp to ``[low, high]``."""
    rounded = np.rint(value)
    rounded += np.float32(zero_point)
    return np.clip(rounded, np.float32(low), np.float32(high), out=rounded).astype(np.int8)


def conv_requantizer(
    arithmetic: Arithmetic,
    *,
    input_scale: float,
    weight_scale: npt.NDArray[np.float32],
    output_scale: float,
    output_zero_point: int,
    bias: npt.NDArray[np.int32],
    relu: bool,
    acc_bound: int,
) -> Requantizer:
    """The `Requantizer` of a conv or linear op.

    ``"tflm"``: ``M = double(input_scale) * double(weight_scale[c]) / double(output_scale)``
    (TFLite's per-channel ``PopulateConvolutionQuantizationParams``), encoded by
    `quantize_multiplier`. ``"onnx"``: ``float32(float32(input_scale * weight_scale[c]) /
    output_scale)`` (ONNX Runtime's ``QLinearConv`` ``ComputeOutputScale``).
    """
    ws = f32(weight_scale)
    if arithmetic == "tflm":
        real = np.float64(f32(input_scale)) * ws.astype(np.float64) / np.float64(f32(output_scale))
        pairs = [quantize_multiplier(float(m)) for m in real]
        multiplier = np.array([p[0] for p in pairs], dtype=np.int64)
        shift = np.array([p[1] for p in pairs], dtype=np.int64)
        scale = np.zeros_like(ws)
    else:
        scale = (f32(input_scale) * ws / f32(output_scale)).astype(np.float32)
        multiplier = shift = np.zeros(ws.shape, dtype=np.int64)
    low, high = activation_range(output_zero_point, relu)
    return Requantizer(
        arithmetic=arithmetic,
        bias=bias.astype(np.int64),
        multiplier=multiplier,
        shift=shift,
        scale=scale,
        zero_point=output_zero_point,
        low=low,
        high=high,
        acc_bound=acc_bound,
    )


def average_pool_weight_scale(count: int) -> np.float32:
    """float32 ``1 / count``: the weight scale that makes a ones-kernel conv an average."""
    return np.float32(1.0 / count)


def average(
    arithmetic: Arithmetic,
    window_sum: IntArray,
    count: int,
    *,
    zero_point: int,
    scale: float,
) -> Int8Array:
    """Average of ``count`` int8 values from their exact sum.

    Parameters
    ----------
    arithmetic : {"tflm", "onnx"}
        ``"tflm"``: TFLite's reference ``AveragePool``: ``window_sum`` is the sum of the *raw*
        int8 values, divided by ``count`` rounding half away from zero (C integer division).
        ``"onnx"``: a depthwise ``QLinearConv`` with all-one weights of scale ``1 / count``:
        ``window_sum`` is the sum of ``q - zero_point``, requantized in float32.
    window_sum : int64 array
        The exact window sums (see above), any shape.
    count : int
        Values per window.
    zero_point, scale : int, float
        The input's (= output's) zero point and scale.
    """
    if arithmetic == "tflm":
        half = count // 2
        nudged = np.where(window_sum > 0, window_sum + half, window_sum - half)
        quotient = np.sign(nudged) * (np.abs(nudged) // count)  # C division truncates
        result: Int8Array = np.clip(quotient, INT8_MIN, INT8_MAX).astype(np.int8)
        return result
    multiplier = f32(scale) * average_pool_weight_scale(count) / f32(scale)
    value = window_sum.astype(np.float32) * np.float32(multiplier)
    return saturate_onnx(value, zero_point, INT8_MIN, INT8_MAX)


def add(
    arithmetic: Arithmetic,
    a: Int8Array,
    b: Int8Array,
    *,
    a_qparams: tuple[float, int],
    b_qparams: tuple[float, int],
    out_qparams: tuple[float, int],
    relu: bool,
) -> Int8Array:
    """Elementwise int8 addition with rescaling (a residual connection).

    ``"tflm"``: TFLite's int8 ``ADD``: both inputs (minus zero point) shifted left by 20 bits,
    each scaled by ``scale / (2 * max_scale)``, summed, scaled by
    ``2 * max_scale / (2**20 * output_scale)``, all with `multiply_by_quantized_multiplier`.
    ``"onnx"``: ``DequantizeLinear`` of both (``float32(q - zp) * scale``), a float32 ``Add``,
    ``QuantizeLinear`` (float32 division by the output scale, round half to even, saturate).

    Parameters
    ----------
    a, b : int8 arrays
        Same shape.
    a_qparams, b_qparams, out_qparams : (float, int)
        ``(scale, zero_point)`` of the inputs and the output.
    relu : bool
        Fused ReLU: clamp the output at its zero point.
    """
    (sa, za), (sb, zb), (so, zo) = a_qparams, b_qparams, out_qparams
    low, high = activation_range(zo, relu)
    if arithmetic == "onnx":
        fa = (a.astype(np.int32) - za).astype(np.float32) * f32(sa)
        fb = (b.astype(np.int32) - zb).astype(np.float32) * f32(sb)
        quotient: npt.NDArray[np.float32] = np.divide(fa + fb, f32(so), dtype=np.float32)
        return saturate_onnx(quotient, zo, low, high)
    twice_max = 2.0 * float(max(f32(sa), f32(sb)))  # exact in float32 and float64
    q1, s1 = quantize_multiplier(float(f32(sa)) / twice_max)
    q2, s2 = quantize_multiplier(float(f32(sb)) / twice_max)
    qo, so_shift = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT) * float(f32(so))))
    shifted_a = (a.astype(np.int64) - za) << ADD_LEFT_SHIFT
    shifted_b = (b.astype(np.int64) - zb) << ADD_LEFT_SHIFT
    raw_sum = multiply_by_quantized_multiplier(
        shifted_a, q1, s1
    ) + multiply_by_quantized_multiplier(shifted_b, q2, s2)
    raw_out = multiply_by_quantized_multiplier(raw_sum, qo, so_shift) + zo
    return np.clip(raw_out, low, high).astype(np.int8)
