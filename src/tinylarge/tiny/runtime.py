"""The integer runtime: the only code that executes a `TinyModel`.

``run(model, x_int8)`` maps an int8 batch ``(N, *input_shape)`` to the int8 output
``(N, *output_shape)``, vectorized over the batch (one im2col + BLAS product per convolution,
see `tinylarge.tiny.kernels`). Every accumulator is exact; only the requantization to int8
depends on the chosen arithmetic (`tinylarge.tiny.requantize`):

``arithmetic="tflm"`` (default)
    TensorFlow Lite Micro's reference kernels, integer only, which a C implementation on a
    microcontroller reproduces bit for bit: conv/linear multipliers
    ``double(s_in) * double(s_w[c]) / double(s_out)`` (TFLite's per-channel formula, used for
    linear too) encoded as Q31 + shift (frexp, round half away from zero, the ``2**31`` rule),
    ``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT`` (double rounding), zero
    point, clamp (fused ReLU clamps at the zero point); int32 sums wrap around as on the device.
    ADD as TFLite's int8 ADD (inputs shifted left by 20 bits, per-input and output Q31
    multipliers); average pooling as TFLite's ``AveragePool`` (raw int8 sum divided by the count,
    half away from zero); global average pooling is the same over all spatial positions (an
    ``AveragePool`` with a full-size filter; TFLite's ``MEAN`` op rounds differently); max
    pooling is a plain maximum.
``arithmetic="onnx"``
    What ONNX Runtime's CPU kernels compute for the graph written by
    `tinylarge.tiny.onnx_export` (bit for bit; the tests check it against ONNX Runtime):
    conv/linear as ``QLinearConv`` (int32 accumulator + bias, converted to float32, times the
    float32 multiplier ``float32(s_in * s_w[c]) / s_out``, rounded half to even, zero point,
    saturated); average pooling as a depthwise ``QLinearConv`` with all-one weights of scale
    ``float32(1 / count)``; ADD as ``DequantizeLinear`` + float32 ``Add`` + ``QuantizeLinear``
    (float32 division by the output scale, round half to even).

How the two differ: the multiplier (Q31 integer vs float32, 24-bit significand), the tie rule
(TFLM: ties toward +infinity in the high multiply, then half away from zero in the shift, i.e.
double rounding; ONNX Runtime: one rounding, half to even) and, for pooling, where the zero
point enters the rounding. Each op can therefore differ by 1 LSB between the modes for results
near a rounding tie (TensorFlow Lite's ``MultiplyByQuantizedMultiplier`` vs ONNX Runtime's
float requantization; onnxruntime issues #11759, #23202, #32132 show the same 1 LSB differences
between its own paths and reimplementations); through a chain of ops such a difference
can grow. One exception: with a multiplier of 1 or more TFLM shifts the int32 accumulator left,
and if that overflows int32 (huge biases) TFLM wraps around where ONNX Runtime saturates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.program import Step, compile_model
from tinylarge.tiny.requantize import ARITHMETICS, Arithmetic

__all__ = ["ARITHMETICS", "Arithmetic", "run"]

Int8Array = npt.NDArray[np.int8]


def run(
    model: TinyModel,
    x: np.ndarray,
    *,
    arithmetic: Arithmetic = "tflm",
    batch_size: int = 4096,
) -> Int8Array:
    """Run ``model`` on an int8 batch.

    Parameters
    ----------
    model : TinyModel
        The quantized model.
    x : int8 array, shape (N, *model.input_spec.shape)
        Quantized inputs (see `TinyModel.quantize_input`).
    arithmetic : {"tflm", "onnx"}
        ``"tflm"``: TensorFlow Lite Micro's integer arithmetic; ``"onnx"``: ONNX Runtime's
        (see the module docstring).
    batch_size : int
        Samples processed at once (bounds the memory of the im2col matrices).

    Returns
    -------
    int8 array, shape (N, *model.output_spec.shape)
        Quantized outputs (see `TinyModel.dequantize_output`).
    """
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {ARITHMETICS}, got {arithmetic!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    x = _check_input(model, x)
    steps = compile_model(model, arithmetic)
    if len(x) == 0:
        return np.zeros((0, *model.output_spec.shape), dtype=np.int8)
    outputs = [execute(model, steps, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]


def _check_input(model: TinyModel, x: np.ndarray) -> Int8Array:
    expected = model.input_spec.shape
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy int8 array of shape (N, {_fmt(expected)}), got {x!r}")
    if x.dtype != np.int8:
        raise TypeError(
            f"x must be int8 (quantize floats with TinyModel.quantize_input), got dtype {x.dtype}"
        )
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"x must have shape (N, {_fmt(expected)}) for input {model.input!r}, got {x.shape}"
        )
    return x


def _fmt(shape: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in shape)


def execute(model: TinyModel, steps: Sequence[Step], x: Int8Array) -> Int8Array:
    """Run compiled ``steps`` (from `compile_model`) on a checked int8 batch ``x``."""
    values = {model.input: swap_batch_axis(x)}
    for step in steps:
        values[step.output] = step.kernel([values[name] for name in step.inputs])
    return swap_batch_axis(values[model.output])


def swap_batch_axis(x: Int8Array) -> Int8Array:
    """``(N, C, *spatial)`` <-> channel-major ``(C, N, *spatial)`` (C-contiguous copy)."""
    return np.ascontiguousarray(x.swapaxes(0, 1))
