"""Post-training static int8 quantization: PyTorch model -> `TinyModel`.

Steps (TensorFlow Lite's int8 scheme, "TensorFlow Lite 8-bit quantization specification",
tensorflow.org/lite/performance/quantization_spec):

1. Trace the float model with ``torch.fx`` and fold every batch norm into the preceding
   convolution or linear layer (``torch.fx.experimental.optimization.fuse``).
2. Map the traced graph onto `TinyModel` ops, fusing a ReLU that directly follows a conv,
   linear or add into it. `QuantizationError` names any op outside the supported set.
3. Calibrate: run calibration data through the folded float graph and record each activation's
   min and max (widened to include 0, so that 0 is exactly representable).
4. Quantize: activations asymmetric per tensor, weights symmetric per output channel in
   [-127, 127], biases int32 at ``input_scale * weight_scale``.
"""

from __future__ import annotations

import copy
import hashlib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.fx.experimental.optimization import fuse

from tinylarge.tiny.graph import FORMAT_VERSION, INT8_MAX, INT8_MIN, Op, TensorSpec, TinyModel

CONV_TYPES = (nn.Conv1d, nn.Conv2d)
MAX_POOL_TYPES = (nn.MaxPool1d, nn.MaxPool2d)
AVG_POOL_TYPES = (nn.AvgPool1d, nn.AvgPool2d)
GLOBAL_POOL_TYPES = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
ADD_FUNCTIONS: tuple[Callable[..., Any], ...] = (operator.add, torch.add)
RELU_FUNCTIONS: tuple[Callable[..., Any], ...] = (torch.relu, nn.functional.relu)
SUPPORTED = (
    "Conv1d, Conv2d, Linear (each optionally followed by BatchNorm and ReLU), ReLU, "
    "MaxPool1d/2d, AvgPool1d/2d (no padding), AdaptiveAvgPool1d/2d(1), Flatten, Identity, "
    "residual add"
)


class QuantizationError(ValueError):
    """The model uses an op or setting that the int8 converter does not support."""


@dataclass(frozen=True)
class QuantizationSettings:
    """How a model was quantized (recorded in the TinyModel manifest)."""

    calibration_samples: int
    scheme: str = "int8: activations asymmetric per tensor, weights symmetric per channel"

    def to_dict(self) -> dict[str, Any]:
        return {"calibration_samples": self.calibration_samples, "scheme": self.scheme}


def fold_batch_norm(model: nn.Module) -> fx.GraphModule:
    """A traced copy of ``model`` (eval mode) with every batch norm folded into its conv/linear."""
    traced = fx.symbolic_trace(copy.deepcopy(model).eval())
    folded = fuse(traced, inplace=True)
    if not isinstance(folded, fx.GraphModule):  # fuse returns its (traced) input
        raise TypeError(f"torch.fx fuse returned {type(folded).__name__}, not a GraphModule")
    return folded


def model_sha256(model: nn.Module) -> str:
    """SHA-256 over the model's state dict (names, shapes and float bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _is_relu(node: fx.Node, modules: Mapping[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], nn.ReLU)
    return node.op == "call_function" and node.target in RELU_FUNCTIONS


def _tuple(value: int | tuple[int, ...], dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (int(value),) * dims


@dataclass
class _Draft:
    """An op under construction: which fx node's output its tensor carries."""

    op: Op
    node: fx.Node  # the node whose output is the op's (post-ReLU) output tensor
    module: nn.Module | None = None


class GraphMapping:
    """Maps a folded fx graph onto TinyModel ops (float weights still attached)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.modules = dict(gm.named_modules())
        self.drafts: list[_Draft] = []
        self.tensor_of: dict[fx.Node, str] = {}  # fx node -> TinyModel tensor name
        self.defining_node: dict[str, fx.Node] = {}
        self.input_name = ""
        self.output_name = ""
        self.fused: set[fx.Node] = set()
        for node in gm.graph.nodes:
            self._visit(node)

    def _single_relu_user(self, node: fx.Node) -> fx.Node | None:
        users = list(node.users)
        if len(users) == 1 and _is_relu(users[0], self.modules):
            return users[0]
        return None

    def _add(
        self,
        node: fx.Node,
        kind: str,
        inputs: list[fx.Node],
        attrs: dict[str, Any],
        fuse_relu: bool,
    ) -> None:
        out_node = node
        if fuse_relu:
            relu = self._single_relu_user(node)
            if relu is not None:
                self.fused.add(relu)
                out_node = relu
            attrs["relu"] = relu is not None
        name = node.name
        self.tensor_of[node] = name
        self.tensor_of[out_node] = name
        self.defining_node[name] = out_node
        module = self.modules.get(str(node.target)) if node.op == "call_module" else None
        op = Op(name, kind, tuple(self.tensor_of[i] for i in inputs), name, attrs)
        self.drafts.append(_Draft(op, out_node, module))

    def _alias(self, node: fx.Node, source: fx.Node) -> None:
        self.tensor_of[node] = self.tensor_of[source]

    def _visit(self, node: fx.Node) -> None:
        if node in self.fused:
            return
        args = [a for a in node.args if isinstance(a, fx.Node)]
        if node.op == "placeholder":
            if self.input_name:
                raise QuantizationError("the model must take exactly one input tensor")
            self.input_name = "input"
            self.tensor_of[node] = "input"
            self.defining_node["input"] = node
        elif node.op == "output":
            (result,) = args
            self.output_name = self.tensor_of[result]
        elif node.op == "call_module":
            self._visit_module(node, self.modules[str(node.target)], args)
        elif node.op == "call_function" and node.target in ADD_FUNCTIONS and len(args) == 2:
            self._add(node, "add", args, {}, fuse_relu=True)
        elif node.op == "call_function" and node.target in RELU_FUNCTIONS:
            self._add(node, "relu", args[:1], {}, fuse_relu=False)
        elif node.op == "call_function" and node.target is torch.flatten:
            self._add(node, "flatten", args[:1], {}, fuse_relu=False)
        else:
            raise QuantizationError(
                f"cannot quantize node {node.name!r} ({node.op} {node.target}); supported: "
                f"{SUPPORTED}"
            )

    def _visit_module(self, node: fx.Node, module: nn.Module, args: list[fx.Node]) -> None:
        if isinstance(module, CONV_TYPES):
            dims = 1 if isinstance(module, nn.Conv1d) else 2
            padding = module.padding
            if isinstance(padding, str) or module.padding_mode != "zeros":
                raise QuantizationError(f"{node.name}: only explicit zero padding is supported")
            if any(d != 1 for d in _tuple(module.dilation, dims)):
                raise QuantizationError(f"{node.name}: dilated convolutions are not supported")
            attrs = {
                "stride": _tuple(module.stride, dims),
                "padding": _tuple(padding, dims),
                "groups": module.groups,
            }
            self._add(node, "conv", args, attrs, fuse_relu=True)
        elif isinstance(module, nn.Linear):
            self._add(node, "linear", args, {}, fuse_relu=True)
        elif isinstance(module, nn.ReLU):
            self._add(node, "relu", args, {}, fuse_relu=False)
        elif isinstance(module, MAX_POOL_TYPES + AVG_POOL_TYPES):
            dims = 1 if isinstance(module, nn.MaxPool1d | nn.AvgPool1d) else 2
            kernel = _tuple(module.kernel_size, dims)
            stride = _tuple(module.stride or module.kernel_size, dims)
            if any(_tuple(module.padding, dims)) or module.ceil_mode:
                raise QuantizationError(f"{node.name}: pooling with padding or ceil_mode")
            if isinstance(module, MAX_POOL_TYPES) and any(
                d != 1 for d in _tuple(module.dilation, dims)
            ):
                raise QuantizationError(f"{node.name}: dilated pooling is not supported")
            kind = "max_pool" if isinstance(module, MAX_POOL_TYPES) else "avg_pool"
            self._add(node, kind, args, {"kernel": kernel, "stride": stride}, fuse_relu=False)
        elif isinstance(module, GLOBAL_POOL_TYPES):
            size = module.output_size
            if any(s != 1 for s in (size if isinstance(size, tuple) else (size,))):
                raise QuantizationError(f"{node.name}: adaptive pooling must have output size 1")
            self._add(node, "global_avg_pool", args, {}, fuse_relu=False)
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise QuantizationError(f"{node.name}: Flatten must flatten all but the batch dim")
            self._add(node, "flatten", args, {}, fuse_relu=False)
        elif isinstance(module, nn.Identity | nn.Dropout):
            self._alias(node, args[0])
        else:
            raise QuantizationError(
                f"cannot quantize module {node.target!r} ({type(module).__name__}); supported: "
                f"{SUPPORTED}"
            )


class _RangeRecorder(fx.Interpreter):
    """Runs the folded graph and records min, max and shape of every node's output."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.low: dict[fx.Node, float] = {}
        self.high: dict[fx.Node, float] = {}
        self.shape: dict[fx.Node, tuple[int, ...]] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            lo, hi = float(out.min()), float(out.max())
            self.low[n] = min(lo, self.low.get(n, lo))
            self.high[n] = max(hi, self.high.get(n, hi))
            self.shape[n] = tuple(out.shape[1:])
        return out


def activation_qparams(low: float, high: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) for a range widened to include 0.

    The scale is rounded to float32 (as stored); the zero point is ``-128 - round(low / scale)``
    clamped to int8, so ``low = 0`` (a ReLU output) gives -128.
    """
    low, high = min(low, 0.0), max(high, 0.0)
    span = high - low
    scale = float(np.float32(span / 255.0)) if span > 0 else float(np.float32(1e-8))
    zero_point = int(np.clip(INT8_MIN - round(low / scale), INT8_MIN, INT8_MAX))
    return scale, zero_point


def quantize_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8 weights in [-127, 127] and their float32 scales."""
    flat = weight.reshape(weight.shape[0], -1).astype(np.float64)
    absmax = np.abs(flat).max(axis=1)
    scale = np.where(absmax > 0, absmax / 127.0, 1e-8).astype(np.float32)
    q = np.clip(np.rint(flat / scale.astype(np.float64)[:, None]), -127, 127)
    return q.astype(np.int8).reshape(weight.shape), scale


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scale: np.ndarray) -> np.ndarray:
    """int32 bias at scale ``input_scale * weight_scale[c]``, zero point 0."""
    bias_scale = np.float64(input_scale) * weight_scale.astype(np.float64)
    q = np.rint(bias.astype(np.float64) / bias_scale)
    return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32)


def calibrate(gm: fx.GraphModule, x: np.ndarray, batch_size: int = 1024) -> _RangeRecorder:
    """Run ``x`` (float32, (n, *input_shape)) through ``gm`` recording every node's range."""
    recorder = _RangeRecorder(gm)
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))
            recorder.run(batch.float())
    return recorder


def quantize_model(
    model: nn.Module,
    calibration_x: np.ndarray,
    class_names: tuple[str, ...],
    *,
    extra_manifest: Mapping[str, Any] | None = None,
) -> TinyModel:
    """Quantize a float model to a `TinyModel` with post-training static quantization.

    Parameters
    ----------
    model : nn.Module
        Float model; traced with ``torch.fx`` (see `SUPPORTED` for the ops it may use).
    calibration_x : ndarray, float32, shape (n, *input_shape)
        Representative inputs (a few thousand training samples suffice).
    class_names : tuple of str
        Names of the output classes.
    extra_manifest : mapping, optional
        Added to the manifest (e.g. the model's registry name and options).
    """
    if len(calibration_x) == 0:
        raise ValueError("quantize_model needs at least one calibration sample")
    gm = fold_batch_norm(model)
    graph = GraphMapping(gm)
    ranges = calibrate(gm, calibration_x)
    tensors: dict[str, TensorSpec] = {}
    for name, node in graph.defining_node.items():
        scale, zp = activation_qparams(ranges.low[node], ranges.high[node])
        shape = ranges.shape[node]
        tensors[name] = TensorSpec(shape, scale, zp)
    constants: dict[str, np.ndarray] = {}
    ops: list[Op] = []
    for draft in graph.drafts:
        op = draft.op
        if op.kind in ("max_pool", "avg_pool", "global_avg_pool", "flatten", "relu"):
            src = tensors[op.inputs[0]]
            tensors[op.output] = TensorSpec(tensors[op.output].shape, src.scale, src.zero_point)
        if op.kind in ("conv", "linear"):
            module = draft.module
            if not isinstance(module, nn.Conv1d | nn.Conv2d | nn.Linear):
                raise QuantizationError(f"{op.name}: {op.kind} must come from a torch module")
            weight = module.weight.detach().double().numpy()
            bias = (
                module.bias.detach().double().numpy()
                if module.bias is not None
                else np.zeros(weight.shape[0])
            )
            q_weight, w_scale = quantize_weights(weight)
            constants[f"{op.name}.weight"] = q_weight
            constants[f"{op.name}.weight_scale"] = w_scale
            constants[f"{op.name}.bias"] = quantize_bias(bias, tensors[op.inputs[0]].scale, w_scale)
        ops.append(op)
    manifest = {
        "format_version": FORMAT_VERSION,
        "source_model_sha256": model_sha256(model),
        "quantization": QuantizationSettings(len(calibration_x)).to_dict(),
        **(extra_manifest or {}),
    }
    return TinyModel(
        ops=tuple(ops),
        tensors=tensors,
        constants=constants,
        input=graph.input_name,
        output=graph.output_name,
        class_names=tuple(class_names),
        manifest=manifest,
    )
