"""`TinyModel`: a quantized int8 model as data — op graph, int8/int32 constants, scales.

The model is pure data (no code runs in it); `tinylarge.tiny.runtime` is the only code that
executes it. Quantization follows the TensorFlow Lite int8 scheme (``real = (q - zp) * scale``,
see the "TensorFlow Lite 8-bit quantization specification",
tensorflow.org/lite/performance/quantization_spec):

* activations: int8, asymmetric, one float32 ``scale`` and int ``zero_point`` per tensor;
* weights: int8 in [-127, 127], symmetric per output channel (zero point 0), float32 scales;
* biases: int32 with scale ``input_scale * weight_scale[c]`` and zero point 0.

Ops (``Op.kind``) and their attributes; ``relu`` means a fused ReLU (the output is clamped at the
zero point, which is -128 when the calibrated range starts at 0):

``conv``            constants ``<op>.weight`` int8 ``(C_out, C_in / groups, *kernel)``,
                    ``<op>.bias`` int32 ``(C_out,)``, ``<op>.weight_scale`` float32 ``(C_out,)``;
                    attrs ``stride``, ``padding`` (per spatial dim, symmetric zero-point padding),
                    ``groups``, ``relu``. 1-D or 2-D by the weight's rank.
``linear``          ``<op>.weight`` int8 ``(out, in)``, ``<op>.bias``, ``<op>.weight_scale``;
                    attrs ``relu``. Input ``(in,)``.
``max_pool``        attrs ``kernel``, ``stride`` (per spatial dim, no padding); keeps qparams.
``avg_pool``        attrs ``kernel``, ``stride``; keeps qparams.
``global_avg_pool`` ``(C, *spatial) -> (C, 1[, 1])``; keeps qparams.
``flatten``         ``(C, *spatial) -> (C * prod(spatial),)``; keeps qparams (an alias).
``relu``            clamp at the zero point; keeps qparams.
``add``             two inputs of the same shape, own output qparams; attrs ``relu``.

Shapes exclude the batch dimension.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT_VERSION = 1
OP_KINDS = (
    "conv",
    "linear",
    "max_pool",
    "avg_pool",
    "global_avg_pool",
    "flatten",
    "relu",
    "add",
)
# Ops whose output reuses the input's scale and zero point (TFLite semantics).
QPARAM_PRESERVING = ("max_pool", "avg_pool", "global_avg_pool", "flatten", "relu")
WEIGHTED = ("conv", "linear")
INT8_MIN, INT8_MAX = -128, 127


class TinyModelError(ValueError):
    """A TinyModel that is inconsistent, or a file that is not a valid TinyModel."""


@dataclass(frozen=True)
class TensorSpec:
    """An int8 activation tensor: shape without batch, float32 scale, zero point."""

    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def size(self) -> int:
        """Elements (= bytes, int8) per sample."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class Op:
    """One operator: reads ``inputs`` (activation tensor names), writes ``output``."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    output: str
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def constant(self, model: TinyModel, suffix: str) -> np.ndarray:
        """The op's constant ``<name>.<suffix>`` (``weight``, ``bias``, ``weight_scale``)."""
        return model.constants[f"{self.name}.{suffix}"]


@dataclass(frozen=True)
class TinyModel:
    """A quantized model: ops in execution order, tensor specs, constants and a manifest.

    ``manifest`` holds at least ``format_version``, ``source_model_sha256`` and
    ``quantization`` (the settings used); ``class_names`` label the output logits.
    """

    ops: tuple[Op, ...]
    tensors: Mapping[str, TensorSpec]
    constants: Mapping[str, np.ndarray]
    input: str
    output: str
    class_names: tuple[str, ...]
    manifest: Mapping[str, Any]

    def __post_init__(self) -> None:
        validate(self)

    @property
    def input_spec(self) -> TensorSpec:
        return self.tensors[self.input]

    @property
    def output_spec(self) -> TensorSpec:
        return self.tensors[self.output]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float input ``(N, *input_shape)`` to int8, as ONNX ``QuantizeLinear`` does.

        ``q = saturate(round_half_to_even(x / scale) + zero_point)`` in float32.
        """
        spec = self.input_spec
        q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(spec.scale))
        out: np.ndarray = np.clip(q + spec.zero_point, INT8_MIN, INT8_MAX).astype(np.int8)
        return out

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """int8 output to float32 logits."""
        spec = self.output_spec
        out: np.ndarray = (q.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)
        return out


def _fail(model_part: str, message: str) -> TinyModelError:
    return TinyModelError(f"invalid TinyModel ({model_part}): {message}")


def validate(model: TinyModel) -> None:
    """Check that every op is known, reads defined tensors and has well-typed constants."""
    if model.input not in model.tensors:
        raise _fail("input", f"input tensor {model.input!r} has no spec")
    defined = {model.input}
    for op in model.ops:
        if op.kind not in OP_KINDS:
            raise _fail(op.name, f"unknown op kind {op.kind!r}; allowed: {', '.join(OP_KINDS)}")
        want_inputs = 2 if op.kind == "add" else 1
        if len(op.inputs) != want_inputs:
            raise _fail(op.name, f"{op.kind} takes {want_inputs} input(s), got {len(op.inputs)}")
        for name in op.inputs:
            if name not in defined:
                raise _fail(op.name, f"reads {name!r} before it is written")
        if op.output not in model.tensors:
            raise _fail(op.name, f"output tensor {op.output!r} has no spec")
        if op.output in defined:
            raise _fail(op.name, f"output tensor {op.output!r} is written twice")
        defined.add(op.output)
        if op.kind in WEIGHTED:
            _validate_weights(model, op)
        if op.kind in QPARAM_PRESERVING:
            src, dst = model.tensors[op.inputs[0]], model.tensors[op.output]
            if (src.scale, src.zero_point) != (dst.scale, dst.zero_point):
                raise _fail(op.name, f"{op.kind} must keep its input's scale and zero point")
    if model.output not in defined:
        raise _fail("output", f"output tensor {model.output!r} is never written")
    for name, spec in model.tensors.items():
        if not (spec.scale > 0 and math.isfinite(spec.scale)):
            raise _fail(name, f"scale must be positive and finite, got {spec.scale}")
        if not INT8_MIN <= spec.zero_point <= INT8_MAX:
            raise _fail(name, f"zero point must be in [-128, 127], got {spec.zero_point}")
    if len(model.class_names) != model.output_spec.size:
        raise _fail(
            "class_names",
            f"{len(model.class_names)} class names for {model.output_spec.size} outputs",
        )


def _validate_weights(model: TinyModel, op: Op) -> None:
    expected = {"weight": np.int8, "bias": np.int32, "weight_scale": np.float32}
    arrays = {}
    for suffix, dtype in expected.items():
        key = f"{op.name}.{suffix}"
        if key not in model.constants:
            raise _fail(op.name, f"missing constant {key!r}")
        arr = model.constants[key]
        if arr.dtype != dtype:
            raise _fail(op.name, f"{key} must be {np.dtype(dtype).name}, got {arr.dtype}")
        arrays[suffix] = arr
    c_out = arrays["weight"].shape[0]
    if arrays["bias"].shape != (c_out,) or arrays["weight_scale"].shape != (c_out,):
        raise _fail(op.name, f"bias and weight_scale must have shape ({c_out},)")
    if arrays["weight"].min(initial=0) < -127:
        raise _fail(op.name, "weights must lie in [-127, 127] (symmetric int8)")
    if not np.all(arrays["weight_scale"] > 0):
        raise _fail(op.name, "weight scales must be positive")
