"""Write a `TinyModel` as a standard int8 ``.tflite`` file, without TensorFlow.

The file is a FlatBuffer of the TensorFlow Lite schema (version 3, identifier ``TFL3``), built
with the ``flatbuffers`` package and the schema's generated object API that ships with the
``tflite-micro`` package. TensorFlow Lite Micro (TFLM) runs it; `tinylarge.tiny.tflm_check`
checks that it computes what the integer runtime's ``tflm`` arithmetic computes.

Layouts: TFLite activations are NHWC, this project's are channel-major. A 1-D activation
``(C, L)`` becomes ``[1, 1, L, C]`` (a 1-D convolution is a CONV_2D with height 1), a 2-D one
``(C, H, W)`` becomes ``[1, H, W, C]``, a vector ``(N,)`` becomes ``[1, N]``; callers transpose
frames with `to_nhwc`. Operators (TFLite builtin, TFLM reference kernel):

=================  =====================================================================
``conv``           CONV_2D (filter OHWI; grouped: ``[O, KH, KW, I / groups]``), or
                   DEPTHWISE_CONV_2D (filter ``[1, KH, KW, O]``) when ``groups`` equals the
                   input channels (more than one); per-output-channel int8
                   weights, int32 bias at ``s_in * s_w[c]``; padding SAME when it equals the
                   symmetric zero-point padding (stride 1, ``2 p = k - 1``), else a PAD op
                   (pads with the zero point) then VALID; fused RELU
``linear``         FULLY_CONNECTED, per-output-channel weights
``max_pool``       MAX_POOL_2D, VALID
``avg_pool``       AVERAGE_POOL_2D, VALID
``global_avg_pool`` AVERAGE_POOL_2D over the whole feature map (not MEAN: TFLM's int8 MEAN
                   rescales with its own algorithm, ``QuantizedMeanOrSum``, and disagrees
                   with an average-pool kernel by up to 4 LSB at the logits)
``flatten``        RESHAPE, after a TRANSPOSE to channel-major when there are spatial positions
``relu``           RELU
``add``            ADD, fused RELU
=================  =====================================================================

Sources: the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs) and TFLite's
8-bit quantization specification (https://ai.google.dev/edge/litert/models/quantization_spec).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from tinylarge.tiny.graph import Op, TinyModel, TinyModelError

#: The schema version and file identifier every TFLite reader checks.
SCHEMA_VERSION, FILE_IDENTIFIER = 3, b"TFL3"
_OPS = fb.BuiltinOperator
#: Operator versions TFLM loads for these kernels (checked with the ``tflite-micro`` package's
#: interpreter, `tinylarge.tiny.tflm_check`).
_VERSIONS = {
    _OPS.CONV_2D: 3, _OPS.DEPTHWISE_CONV_2D: 3, _OPS.MAX_POOL_2D: 2, _OPS.AVERAGE_POOL_2D: 2,
    _OPS.FULLY_CONNECTED: 4, _OPS.ADD: 2, _OPS.RESHAPE: 1, _OPS.PAD: 2, _OPS.RELU: 2,
    _OPS.TRANSPOSE: 2,
}  # fmt: skip


def nhwc_shape(shape: tuple[int, ...]) -> list[int]:
    """The TFLite shape of a channel-major activation ``shape`` (batch 1)."""
    if len(shape) == 1:
        return [1, shape[0]]
    if len(shape) == 2:
        return [1, 1, shape[1], shape[0]]
    if len(shape) == 3:
        return [1, shape[1], shape[2], shape[0]]
    raise TinyModelError(f"no TFLite layout for an activation of shape {shape}")


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """Channel-major frames ``(N, C, *spatial)`` (or vectors ``(N, F)``) in TFLite's layout,
    one frame per row: ``(N, *nhwc_shape(frame))``."""
    x = np.asarray(x)
    if x.ndim == 2:
        return np.ascontiguousarray(x)
    moved = np.moveaxis(x, 1, -1)  # (N, *spatial, C)
    return np.ascontiguousarray(moved[:, None] if x.ndim == 3 else moved)


def from_nhwc(y: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """TFLite outputs ``(N, *nhwc_shape(shape))`` back to channel-major ``(N, *shape)``."""
    y = np.asarray(y).reshape(len(y), *nhwc_shape(shape)[1:])
    if len(shape) == 1:
        return y
    return np.moveaxis(y.reshape(len(y), *shape[1:], shape[0]), -1, 1)


def _quant(scale: Any, zero_point: Any, dimension: int = 0) -> Any:
    q = fb.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(np.asarray(scale, np.float32))]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    if len(q.zeroPoint) == 1 and len(q.scale) > 1:
        q.zeroPoint = q.zeroPoint * len(q.scale)
    q.quantizedDimension = dimension
    return q


@dataclass
class _Graph:
    """The tensors, buffers, operator codes and operators being written."""

    model: TinyModel
    tensors: list[Any] = field(default_factory=list)
    buffers: list[Any] = field(default_factory=lambda: [fb.BufferT()])  # 0: the empty buffer
    codes: dict[int, int] = field(default_factory=dict)
    operators: list[Any] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def tensor(self, name: str, shape: list[int], dtype: int, *, data: np.ndarray | None = None,
               quant: Any = None) -> int:  # fmt: skip
        t = fb.TensorT()
        t.name, t.shape, t.type, t.quantization = name, shape, dtype, quant
        if data is not None:
            buffer = fb.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(buffer)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def activation(self, name: str, *, shape: tuple[int, ...] | None = None) -> int:
        """The int8 activation tensor ``name`` of the model (made on first use)."""
        if name not in self.index:
            spec = self.model.tensors[name]
            self.index[name] = self.tensor(
                name, nhwc_shape(shape or spec.shape), fb.TensorType.INT8,
                quant=_quant(spec.scale, spec.zero_point),
            )  # fmt: skip
        return self.index[name]

    def int32(self, name: str, values: np.ndarray, quant: Any = None) -> int:
        data = np.asarray(values, np.int32)
        return self.tensor(name, list(data.shape), fb.TensorType.INT32, data=data, quant=quant)

    def operator(self, code: int, inputs: list[int], outputs: list[int],
                 options_type: int = 0, options: Any = None) -> None:  # fmt: skip
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        op = fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.codes[code], inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        self.operators.append(op)


def _activation_fn(op: Op) -> int:
    relu = bool(op.attrs.get("relu", False))
    return int(fb.ActivationFunctionType.RELU if relu else fb.ActivationFunctionType.NONE)


def _per_dim(value: Any, dims: int, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * dims
    if isinstance(value, int | np.integer):
        return (int(value),) * dims
    return tuple(int(v) for v in value)


def _hw(values: tuple[int, ...], height: int = 1) -> tuple[int, int]:
    """(height, width) of per-dim values (1-D: ``height``, 1 for sizes, 0 for padding)."""
    return (height, values[0]) if len(values) == 1 else (values[0], values[1])


def _conv(g: _Graph, op: Op) -> None:
    model = g.model
    weight = op.constant(model, "weight")
    dims = weight.ndim - 2
    c_out, c_in = weight.shape[0], model.tensors[op.inputs[0]].shape[0]
    groups = int(op.attrs.get("groups", 1))
    kernel = _hw(tuple(weight.shape[2:]))
    stride = _hw(_per_dim(op.attrs.get("stride"), dims, 1))
    padding = _hw(_per_dim(op.attrs.get("padding"), dims, 0), height=0)
    x = g.activation(op.inputs[0])
    w_scale = op.constant(model, "weight_scale")
    x_spec = model.tensors[op.inputs[0]]
    if padding == (0, 0):
        pad = fb.Padding.VALID
    elif stride == (1, 1) and all(2 * p == k - 1 for p, k in zip(padding, kernel, strict=True)):
        pad = fb.Padding.SAME  # the same zero-point padding, in TFLite's terms
    else:  # an explicit PAD (zero point), then VALID
        spatial = model.tensors[op.inputs[0]].shape[1:]
        padded_hw = tuple(s + 2 * p for s, p in zip(_hw(spatial), padding, strict=True))
        padded = g.tensor(
            f"{op.name}.padded", [1, *padded_hw, c_in], fb.TensorType.INT8,
            quant=_quant(x_spec.scale, x_spec.zero_point),
        )  # fmt: skip
        pads = np.array([[0, 0], [padding[0]] * 2, [padding[1]] * 2, [0, 0]], np.int32)
        g.operator(_OPS.PAD, [x, g.int32(f"{op.name}.paddings", pads)], [padded],
                   fb.BuiltinOptions.PadOptions, fb.PadOptionsT())  # fmt: skip
        x, pad = padded, fb.Padding.VALID
    w4 = weight.reshape(c_out, weight.shape[1], *kernel)  # (O, I/groups, KH, KW)
    bias = g.int32(
        f"{op.name}.bias", op.constant(model, "bias"),
        quant=_quant(np.float64(x_spec.scale) * w_scale.astype(np.float64), 0),
    )  # fmt: skip
    y = g.activation(op.output)
    if groups == 1 or groups < c_in:  # grouped: filter [O, KH, KW, I / groups]
        filt = np.ascontiguousarray(w4.transpose(0, 2, 3, 1))  # OHWI
        w = g.tensor(f"{op.name}.weight", list(filt.shape), fb.TensorType.INT8, data=filt,
                     quant=_quant(w_scale, 0, dimension=0))  # fmt: skip
        options = fb.Conv2DOptionsT()
        code, options_type = _OPS.CONV_2D, fb.BuiltinOptions.Conv2DOptions
    elif groups == c_in:
        filt = np.ascontiguousarray(w4.transpose(1, 2, 3, 0))  # [1, KH, KW, O]
        w = g.tensor(f"{op.name}.weight", list(filt.shape), fb.TensorType.INT8, data=filt,
                     quant=_quant(w_scale, 0, dimension=3))  # fmt: skip
        options = fb.DepthwiseConv2DOptionsT()
        options.depthMultiplier = c_out // c_in
        code, options_type = _OPS.DEPTHWISE_CONV_2D, fb.BuiltinOptions.DepthwiseConv2DOptions
    else:  # unreachable: the runtime checks that groups divide the input channels
        raise TinyModelError(f"{op.name}: {groups} groups over {c_in} input channels")
    options.padding, options.strideH, options.strideW = pad, stride[0], stride[1]
    options.fusedActivationFunction = _activation_fn(op)
    g.operator(code, [x, w, bias], [y], options_type, options)


def _linear(g: _Graph, op: Op) -> None:
    model = g.model
    weight, w_scale = op.constant(model, "weight"), op.constant(model, "weight_scale")
    x_spec = model.tensors[op.inputs[0]]
    w = g.tensor(f"{op.name}.weight", list(weight.shape), fb.TensorType.INT8, data=weight,
                 quant=_quant(w_scale, 0, dimension=0))  # fmt: skip
    bias = g.int32(
        f"{op.name}.bias", op.constant(model, "bias"),
        quant=_quant(np.float64(x_spec.scale) * w_scale.astype(np.float64), 0),
    )  # fmt: skip
    options = fb.FullyConnectedOptionsT()
    options.fusedActivationFunction = _activation_fn(op)
    inputs, outputs = [g.activation(op.inputs[0]), w, bias], [g.activation(op.output)]
    g.operator(_OPS.FULLY_CONNECTED, inputs, outputs, fb.BuiltinOptions.FullyConnectedOptions,
               options)  # fmt: skip


def _pool(g: _Graph, op: Op) -> None:
    shape = g.model.tensors[op.inputs[0]].shape
    dims = len(shape) - 1
    if op.kind == "global_avg_pool":
        kernel = stride = _hw(shape[1:])
    else:
        raw_kernel = _per_dim(op.attrs.get("kernel"), dims, 1)
        kernel = _hw(raw_kernel)
        stride = _hw(_per_dim(op.attrs.get("stride", raw_kernel), dims, 1))
    options = fb.Pool2DOptionsT()
    options.padding = fb.Padding.VALID
    options.filterHeight, options.filterWidth = kernel
    options.strideH, options.strideW = stride
    code = _OPS.MAX_POOL_2D if op.kind == "max_pool" else _OPS.AVERAGE_POOL_2D
    g.operator(code, [g.activation(op.inputs[0])], [g.activation(op.output)],
               fb.BuiltinOptions.Pool2DOptions, options)  # fmt: skip


def _flatten(g: _Graph, op: Op) -> None:
    model = g.model
    shape = model.tensors[op.inputs[0]].shape
    x = g.activation(op.inputs[0])
    if len(shape) > 1 and math.prod(shape[1:]) > 1:  # NHWC -> N,C,H,W: channel-major order
        spec = model.tensors[op.inputs[0]]
        nchw = [1, shape[0], *nhwc_shape(shape)[1:-1]]
        moved = g.tensor(f"{op.name}.channel_major", nchw, fb.TensorType.INT8,
                         quant=_quant(spec.scale, spec.zero_point))  # fmt: skip
        perm = g.int32(f"{op.name}.perm", np.array([0, 3, 1, 2], np.int32))
        g.operator(_OPS.TRANSPOSE, [x, perm], [moved], fb.BuiltinOptions.TransposeOptions,
                   fb.TransposeOptionsT())  # fmt: skip
        x = moved
    y = g.activation(op.output)
    new_shape = np.array([1, math.prod(shape)], np.int32)
    options = fb.ReshapeOptionsT()
    options.newShape = new_shape.tolist()
    g.operator(_OPS.RESHAPE, [x, g.int32(f"{op.name}.shape", new_shape)], [y],
               fb.BuiltinOptions.ReshapeOptions, options)  # fmt: skip


def _relu(g: _Graph, op: Op) -> None:
    g.operator(_OPS.RELU, [g.activation(op.inputs[0])], [g.activation(op.output)])


def _add(g: _Graph, op: Op) -> None:
    options = fb.AddOptionsT()
    options.fusedActivationFunction = _activation_fn(op)
    inputs = [g.activation(name) for name in op.inputs]
    g.operator(_OPS.ADD, inputs, [g.activation(op.output)], fb.BuiltinOptions.AddOptions, options)


_WRITERS = {"conv": _conv, "linear": _linear, "max_pool": _pool, "avg_pool": _pool,
            "global_avg_pool": _pool, "flatten": _flatten, "relu": _relu, "add": _add}  # fmt: skip


def to_tflite(model: TinyModel) -> bytes:
    """The ``.tflite`` bytes of ``model`` (see the module doc for the operator mapping)."""
    g = _Graph(model)
    first = g.activation(model.input)
    for op in model.ops:
        _WRITERS[op.kind](g, op)
    graph = fb.SubGraphT()
    graph.tensors, graph.operators = g.tensors, g.operators
    graph.inputs, graph.outputs = [first], [g.activation(model.output)]
    graph.name = "main"
    codes = []
    for code in sorted(g.codes, key=g.codes.__getitem__):
        c = fb.OperatorCodeT()
        c.builtinCode, c.version = code, _VERSIONS[code]
        c.deprecatedBuiltinCode = min(code, 127)  # the int8 field readers fall back to
        codes.append(c)
    m = fb.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers = SCHEMA_VERSION, codes, [graph], g.buffers
    m.description = f"tinylarge int8 model ({', '.join(model.class_names)})"
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def export_tflite(model: TinyModel, path: str | Path) -> Path:
    """Write ``model`` as a ``.tflite`` file; the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_tflite(model))
    return out
