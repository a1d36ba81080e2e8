"""Export a `TinyModel` to ONNX with QLinear operators, and run it with ONNX Runtime.

The graph takes the int8 input ``(N, *input_shape)`` (``N`` symbolic) and returns the int8
output; every tensor keeps the model's scale and zero point. Op by op (standard ``ai.onnx``
operators only, opset 19):

``conv``             ``QLinearConv`` (per-channel weight scales, weight zero point 0, int32
                     bias, symmetric ``pads``, ``group``); 1-D convolutions stay 1-D.
``linear``           ``Reshape`` to ``(N, in, 1)``, a kernel-1 ``QLinearConv``, ``Reshape`` back.
``avg_pool``,        a depthwise ``QLinearConv`` with all-one int8 weights of scale
``global_avg_pool``  ``float32(1 / count)`` (the kernel covers the whole input for the global one).
``max_pool``         int8 ``MaxPool``.
``flatten``          ``Reshape`` to ``(N, -1)``.
``relu``             int8 ``Max`` with the zero point; a fused ReLU is the same after the op.
``add``              ``DequantizeLinear`` of both inputs, float32 ``Add``, ``QuantizeLinear``.

ONNX Runtime's CPU arithmetic for these (read from its source, confirmed element for element
with ONNX Runtime 1.32 on x86-64 by the tests; `tinylarge.tiny.runtime` with
``arithmetic="onnx"`` reproduces it):

* ``QLinearConv`` computes the multiplier in float32 as ``x_scale * w_scale[c] / y_scale``
  (``ComputeOutputScale`` in ``qlinearconv.cc``), adds the int32 bias to the int32 accumulator
  (wrapping), converts to float32, multiplies, clamps to ``[-128 - zp, 127 - zp]``, rounds half
  to even (``cvtps2dq``) and adds the zero point (``MlasRequantizeOutput``); padding uses the
  input zero point.
* ``QuantizeLinear`` divides by the scale in float32 (``MlasQuantizeLinear``; multiplying by
  the float32 reciprocal instead disagrees with ONNX Runtime near rounding ties), rounds half
  to even, saturates.
* ``DequantizeLinear`` computes ``float32(q - zp) * scale``.

With these rules every op above is bit-exact; no op needs a tolerance. Sessions are created
with graph optimizations disabled (`session_options`), so no fusion changes the arithmetic.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
from onnx import TensorProto, helper, numpy_helper

from tinylarge.tiny.graph import Op, TinyModel
from tinylarge.tiny.requantize import average_pool_weight_scale

OPSET = 19
PRODUCER = "tinylarge"
BATCH_DIM = "N"


def to_onnx(model: TinyModel) -> onnx.ModelProto:
    """Build the ONNX model (checked with ``onnx.checker``) for ``model``."""
    builder = _GraphBuilder(model)
    for op in model.ops:
        builder.add_op(op)
    if model.output == model.input:  # a model without ops
        builder.nodes.append(helper.make_node("Identity", [model.input], ["output_identity"]))
        output_name = "output_identity"
    else:
        output_name = model.output
    graph = helper.make_graph(
        builder.nodes,
        "tinylarge_tiny_model",
        [_value_info(model.input, model.input_spec.shape)],
        [_value_info(output_name, model.output_spec.shape)],
        list(builder.initializers.values()),
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER
    )
    proto.ir_version = 9  # ONNX Runtime reads IR <= 10; 9 is what opset 19 introduced
    helper.set_model_props(
        proto,
        {
            "class_names": json.dumps(list(model.class_names)),
            "tinylarge_manifest": json.dumps(dict(model.manifest), sort_keys=True, default=str),
            "tinylarge_input": model.input,
            "tinylarge_output": model.output,
        },
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: TinyModel, path: str | Path) -> Path:
    """Write ``to_onnx(model)`` to ``path`` (parent directories are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(to_onnx(model), str(path))
    return path


def session_options() -> ort.SessionOptions:
    """ONNX Runtime options with every graph optimization (fusion, layout change) disabled."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


def make_session(
    model_or_path: TinyModel | onnx.ModelProto | str | Path,
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """A CPU ``InferenceSession`` for a `TinyModel`, an ONNX model, or an ``.onnx`` path."""
    if isinstance(model_or_path, TinyModel):
        source: bytes | str = to_onnx(model_or_path).SerializeToString()
    elif isinstance(model_or_path, onnx.ModelProto):
        source = model_or_path.SerializeToString()
    elif isinstance(model_or_path, str | Path):
        if not Path(model_or_path).is_file():
            raise FileNotFoundError(f"no ONNX model file at {model_or_path}")
        source = str(model_or_path)
    else:
        raise TypeError(
            "model_or_path must be a TinyModel, an onnx.ModelProto or a path, got "
            f"{type(model_or_path).__name__}"
        )
    return ort.InferenceSession(
        source, options or session_options(), providers=["CPUExecutionProvider"]
    )


def run_onnxruntime(
    model_or_path: TinyModel | onnx.ModelProto | str | Path | ort.InferenceSession,
    x_int8: np.ndarray,
) -> np.ndarray:
    """Run the int8 batch ``x_int8`` (N, *input_shape) through ONNX Runtime.

    A model or path gets a session from `make_session` (graph optimizations disabled); a ready
    ``InferenceSession`` is used as is. Returns the int8 output (N, *output_shape).
    """
    session = (
        model_or_path
        if isinstance(model_or_path, ort.InferenceSession)
        else make_session(model_or_path)
    )
    if not isinstance(x_int8, np.ndarray) or x_int8.dtype != np.int8:
        got = x_int8.dtype if isinstance(x_int8, np.ndarray) else type(x_int8).__name__
        raise TypeError(f"x_int8 must be a numpy int8 array, got {got}")
    (graph_input,) = session.get_inputs()
    expected = list(graph_input.shape)[1:]
    if x_int8.ndim != len(expected) + 1 or list(x_int8.shape[1:]) != expected:
        raise ValueError(
            f"x_int8 must have shape (N, {', '.join(map(str, expected))}), got {x_int8.shape}"
        )
    (result,) = session.run(None, {graph_input.name: x_int8})
    return np.asarray(result)


def _value_info(name: str, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT8, [BATCH_DIM, *shape])


class _GraphBuilder:
    """Collects the nodes and initializers of the ONNX graph, op by op."""

    def __init__(self, model: TinyModel) -> None:
        self.model = model
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}
        self.aliases: dict[str, str] = {}  # ONNX-only intermediate -> model tensor (qparams)

    def constant(self, name: str, value: Any, dtype: type[np.generic]) -> str:
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
        return name

    def qparams(self, tensor: str) -> list[str]:
        """Initializer names of the scale and zero point of ``tensor`` (or of its alias)."""
        return [self.scale(tensor), self.zero_point(tensor)]

    def scale(self, tensor: str) -> str:
        tensor = self.aliases.get(tensor, tensor)
        return self.constant(f"{tensor}.scale", self.model.tensors[tensor].scale, np.float32)

    def zero_point(self, tensor: str) -> str:
        tensor = self.aliases.get(tensor, tensor)
        return self.constant(f"{tensor}.zero_point", self.model.tensors[tensor].zero_point, np.int8)

    def node(self, op_type: str, inputs: list[str], output: str, name: str, **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))

    def relu(self, source: str, output: str, name: str) -> None:
        """Clamp at the output's zero point (the quantized real 0)."""
        self.node("Max", [source, self.zero_point(output)], output, name)

    def qlinear_conv(
        self,
        op_name: str,
        x: str,
        y: str,
        *,
        weight: np.ndarray,
        weight_scale: np.ndarray,
        bias: np.ndarray | None,
        strides: tuple[int, ...],
        pads: tuple[int, ...],
        groups: int,
    ) -> None:
        c_out = weight.shape[0]
        inputs = [
            *self.qparams(x),
            self.constant(f"{op_name}.weight", weight, np.int8),
            self.constant(f"{op_name}.weight_scale", weight_scale, np.float32),
            self.constant(f"{op_name}.weight_zero_point", np.zeros(c_out), np.int8),
            *self.qparams(y),
        ]
        if bias is not None:
            inputs.append(self.constant(f"{op_name}.bias", bias, np.int32))
        self.node(
            "QLinearConv",
            [x, *inputs],
            y,
            op_name,
            kernel_shape=list(weight.shape[2:]),
            strides=list(strides),
            pads=list(pads) + list(pads),
            group=groups,
        )

    def add_op(self, op: Op) -> None:
        getattr(self, f"_op_{op.kind}")(op)

    def _fused_relu_target(self, op: Op) -> str:
        """Where the op writes before its fused ReLU (same qparams as the output)."""
        if not op.attrs.get("relu", False):
            return op.output
        target = f"{op.output}.before_relu"
        self.aliases[target] = op.output
        return target

    def _finish_relu(self, op: Op, produced: str) -> None:
        if produced != op.output:
            self.relu(produced, op.output, f"{op.name}.relu")

    def _op_conv(self, op: Op) -> None:
        weight = op.constant(self.model, "weight")
        dims = weight.ndim - 2
        target = self._fused_relu_target(op)
        self.qlinear_conv(
            op.name,
            op.inputs[0],
            target,
            weight=weight,
            weight_scale=op.constant(self.model, "weight_scale"),
            bias=op.constant(self.model, "bias"),
            strides=_per_dim(op.attrs.get("stride", 1), dims),
            pads=_per_dim(op.attrs.get("padding", 0), dims),
            groups=int(op.attrs.get("groups", 1)),
        )
        self._finish_relu(op, target)

    def _op_linear(self, op: Op) -> None:
        weight = op.constant(self.model, "weight")
        out_features, in_features = weight.shape
        x3, y3 = f"{op.name}.input_3d", f"{op.name}.output_3d"
        self.aliases[x3], self.aliases[y3] = op.inputs[0], op.output
        shape_in = self.constant(f"{op.name}.shape_in", [0, in_features, 1], np.int64)
        self.node("Reshape", [op.inputs[0], shape_in], x3, f"{op.name}.reshape_in")
        self.qlinear_conv(
            op.name,
            x3,
            y3,
            weight=weight.reshape(out_features, in_features, 1),
            weight_scale=op.constant(self.model, "weight_scale"),
            bias=op.constant(self.model, "bias"),
            strides=(1,),
            pads=(0,),
            groups=1,
        )
        target = self._fused_relu_target(op)
        shape_out = self.constant(f"{op.name}.shape_out", [0, out_features], np.int64)
        self.node("Reshape", [y3, shape_out], target, f"{op.name}.reshape_out")
        self._finish_relu(op, target)

    def _average(self, op: Op, kernel: tuple[int, ...], stride: tuple[int, ...]) -> None:
        channels = self.model.tensors[op.inputs[0]].shape[0]
        count = math.prod(kernel)
        self.qlinear_conv(
            op.name,
            op.inputs[0],
            op.output,
            weight=np.ones((channels, 1, *kernel), dtype=np.int8),
            weight_scale=np.full(channels, average_pool_weight_scale(count), dtype=np.float32),
            bias=None,
            strides=stride,
            pads=(0,) * len(kernel),
            groups=channels,
        )

    def _op_avg_pool(self, op: Op) -> None:
        dims = len(self.model.tensors[op.inputs[0]].shape) - 1
        kernel = _per_dim(op.attrs["kernel"], dims)
        self._average(op, kernel, _per_dim(op.attrs.get("stride", kernel), dims))

    def _op_global_avg_pool(self, op: Op) -> None:
        spatial = self.model.tensors[op.inputs[0]].shape[1:]
        self._average(op, tuple(spatial), (1,) * len(spatial))

    def _op_max_pool(self, op: Op) -> None:
        dims = len(self.model.tensors[op.inputs[0]].shape) - 1
        kernel = _per_dim(op.attrs["kernel"], dims)
        stride = _per_dim(op.attrs.get("stride", kernel), dims)
        self.node(
            "MaxPool", [op.inputs[0]], op.output, op.name, kernel_shape=kernel, strides=stride
        )

    def _op_flatten(self, op: Op) -> None:
        shape = self.constant(f"{op.name}.shape", [0, -1], np.int64)
        self.node("Reshape", [op.inputs[0], shape], op.output, op.name)

    def _op_relu(self, op: Op) -> None:
        self.relu(op.inputs[0], op.output, op.name)

    def _op_add(self, op: Op) -> None:
        a, b = op.inputs
        fa, fb, fsum = f"{op.name}.a_float", f"{op.name}.b_float", f"{op.name}.sum_float"
        self.node("DequantizeLinear", [a, *self.qparams(a)], fa, f"{op.name}.dequantize_a")
        self.node("DequantizeLinear", [b, *self.qparams(b)], fb, f"{op.name}.dequantize_b")
        self.node("Add", [fa, fb], fsum, f"{op.name}.add")
        target = self._fused_relu_target(op)
        self.node("QuantizeLinear", [fsum, *self.qparams(target)], target, f"{op.name}.quantize")
        self._finish_relu(op, target)


def _per_dim(value: Any, dims: int) -> tuple[int, ...]:
    return (int(value),) * dims if isinstance(value, int) else tuple(int(v) for v in value)
