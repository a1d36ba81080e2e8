"""Compile a `TinyModel` into runtime steps: checked shapes, bound kernels, fused pooling.

`compile_model` checks every op's attributes and infers every tensor's shape from the input
spec (a spec that disagrees fails with `TinyModelError`), and binds each op to a kernel that
maps channel-major int8 arrays (see `tinylarge.tiny.kernels`) to int8 in one arithmetic
(see `tinylarge.tiny.requantize`).

One exact optimization: a ``conv`` whose only reader is a ``max_pool`` is fused with it: the
pool runs on the exact accumulators and only the pooled values are requantized. That is exact
because requantization (with its clamp) is non-decreasing in the accumulator for a positive
multiplier; it is only applied when no int32 wrap-around can occur, the one thing that would
break monotonicity.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.tiny import kernels
from tinylarge.tiny.graph import Op, TinyModel, TinyModelError
from tinylarge.tiny.requantize import Arithmetic, Requantizer, add, average, conv_requantizer

Int8Array = npt.NDArray[np.int8]
Kernel = Callable[[Sequence[Int8Array]], Int8Array]

#: Attributes each op kind accepts (missing ones take the defaults documented in `graph`).
ALLOWED_ATTRS: Mapping[str, frozenset[str]] = {
    "conv": frozenset({"stride", "padding", "groups", "relu"}),
    "linear": frozenset({"relu"}),
    "max_pool": frozenset({"kernel", "stride"}),
    "avg_pool": frozenset({"kernel", "stride"}),
    "global_avg_pool": frozenset(),
    "flatten": frozenset(),
    "relu": frozenset(),
    "add": frozenset({"relu"}),
}


@dataclass(frozen=True)
class Step:
    """One executable step: reads tensors ``inputs``, writes tensor ``output``.

    ``kernel`` maps the channel-major int8 inputs to the channel-major int8 output; ``ops``
    names the model op(s) the step executes (two when a conv and max-pool are fused).
    """

    ops: tuple[str, ...]
    inputs: tuple[str, ...]
    output: str
    kernel: Kernel


@dataclass(frozen=True)
class Accumulating:
    """A conv/linear kernel: exact accumulators, then requantization."""

    accumulate: Callable[[Sequence[Int8Array]], npt.NDArray[np.floating]]
    requantize: Requantizer

    def __call__(self, xs: Sequence[Int8Array]) -> Int8Array:
        return self.requantize(self.accumulate(xs))


@dataclass(frozen=True)
class MaxPooling:
    """A max-pool kernel (works on int8 values and on exact accumulators alike)."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]

    def __call__(self, xs: Sequence[Any]) -> Any:
        return kernels.max_pool(xs[0], self.kernel, self.stride)


@dataclass(frozen=True)
class PooledAccumulating:
    """A conv fused with the max-pool that reads it: pool the accumulators, then requantize."""

    conv: Accumulating
    pool: MaxPooling

    def __call__(self, xs: Sequence[Int8Array]) -> Int8Array:
        return self.conv.requantize(self.pool([self.conv.accumulate(xs)]))


def compile_model(model: TinyModel, arithmetic: Arithmetic, *, fuse: bool = True) -> list[Step]:
    """Check every op's attributes and shapes and bind its kernel.

    Parameters
    ----------
    model : TinyModel
        The model.
    arithmetic : {"tflm", "onnx"}
        The requantization arithmetic.
    fuse : bool
        Fuse each conv with a max-pool that is its only reader (exact; see the module
        docstring).

    Raises
    ------
    TinyModelError
        If an op has unknown attributes, or a tensor's spec shape is not the shape the op
        produces from its inputs.
    """
    steps = []
    for op in model.ops:
        unknown = set(op.attrs) - ALLOWED_ATTRS[op.kind]
        if unknown:
            allowed = ", ".join(sorted(ALLOWED_ATTRS[op.kind])) or "none"
            raise TinyModelError(
                f"invalid TinyModel ({op.name}): unknown attribute(s) {sorted(unknown)} for "
                f"{op.kind}; allowed: {allowed}"
            )
        in_shapes = [model.tensors[name].shape for name in op.inputs]
        try:
            shape, kernel = _BUILDERS[op.kind](model, op, in_shapes, arithmetic)
        except (ValueError, TypeError) as exc:
            raise TinyModelError(f"invalid TinyModel ({op.name}, {op.kind}): {exc}") from exc
        spec_shape = model.tensors[op.output].shape
        if tuple(shape) != tuple(spec_shape):
            raise TinyModelError(
                f"invalid TinyModel ({op.name}, {op.kind}): computes shape {tuple(shape)} from "
                f"input shape(s) {in_shapes}, but tensor {op.output!r} is declared {spec_shape}"
            )
        steps.append(Step((op.name,), op.inputs, op.output, kernel))
    return _fuse_conv_max_pool(model, steps) if fuse else steps


def _fuse_conv_max_pool(model: TinyModel, steps: list[Step]) -> list[Step]:
    readers = Counter(name for step in steps for name in step.inputs)
    readers[model.output] += 1
    producers = {step.output: step for step in steps}
    fused: list[Step] = []
    absorbed: set[str] = set()
    for step in steps:
        source = producers.get(step.inputs[0])
        if (
            isinstance(step.kernel, MaxPooling)
            and source is not None
            and isinstance(source.kernel, Accumulating)
            and len(source.ops) == 1
            and source.kernel.requantize.monotone
            and readers[source.output] == 1
        ):
            kernel = PooledAccumulating(source.kernel, step.kernel)
            fused.append(Step(source.ops + step.ops, source.inputs, step.output, kernel))
            absorbed.add(source.output)
        else:
            fused.append(step)
    return [step for step in fused if step.output not in absorbed]


def _per_dim(value: Any, dims: int, name: str, default: int) -> tuple[int, ...]:
    """An int or a sequence of ``dims`` ints as a tuple of non-negative Python ints."""
    if value is None:
        return (default,) * dims
    raw = (value,) * dims if isinstance(value, int | np.integer) else tuple(value)
    if len(raw) != dims or not all(isinstance(v, int | np.integer) and v >= 0 for v in raw):
        raise ValueError(f"{name} must be {dims} non-negative int(s), got {value!r}")
    return tuple(int(v) for v in raw)


def _spatial(shape: tuple[int, ...], dims: int, kind: str) -> tuple[int, tuple[int, ...]]:
    if len(shape) != dims + 1:
        raise ValueError(f"{kind} needs an input (C, {', '.join('S' * dims)}), got {shape}")
    return shape[0], shape[1:]


Built = tuple[tuple[int, ...], Kernel]


def weighted_requantizer(
    model: TinyModel, op: Op, arith: Arithmetic, weight: Int8Array
) -> Requantizer:
    """The int32 -> int8 step of a conv/linear op: its scales, bias and fused ReLU (the
    runtime's, and the generated C's with ``arith="tflm"``)."""
    x_spec, y_spec = model.tensors[op.inputs[0]], model.tensors[op.output]
    return conv_requantizer(
        arith,
        input_scale=x_spec.scale,
        weight_scale=op.constant(model, "weight_scale"),
        output_scale=y_spec.scale,
        output_zero_point=y_spec.zero_point,
        bias=op.constant(model, "bias"),
        relu=bool(op.attrs.get("relu", False)),
        acc_bound=kernels.accumulator_bound(weight, x_spec.zero_point),
    )


def _conv(model: TinyModel, op: Op, shapes: list[tuple[int, ...]], arith: Arithmetic) -> Built:
    weight = op.constant(model, "weight")
    dims = weight.ndim - 2
    if dims not in (1, 2):
        raise ValueError(f"conv weight must be 3-D or 4-D, got shape {weight.shape}")
    c_in, size = _spatial(shapes[0], dims, "conv")
    stride = _per_dim(op.attrs.get("stride"), dims, "stride", 1)
    padding = _per_dim(op.attrs.get("padding"), dims, "padding", 0)
    groups = int(op.attrs.get("groups", 1))
    c_out, kernel = weight.shape[0], weight.shape[2:]
    if min(stride) < 1 or groups < 1 or c_in % groups or c_out % groups:
        raise ValueError(f"stride {stride} and groups {groups} invalid for {c_in}->{c_out}")
    if weight.shape[1] * groups != c_in:
        raise ValueError(f"weight {weight.shape} with groups={groups} needs {c_in} in-channels")
    out = tuple(
        kernels.conv_output_size(s, k, st, p)
        for s, k, st, p in zip(size, kernel, stride, padding, strict=True)
    )
    if min(out) < 1:
        raise ValueError(f"kernel {kernel} does not fit input {size} with padding {padding}")
    x_spec = model.tensors[op.inputs[0]]
    requant = weighted_requantizer(model, op, arith, weight)

    def accumulate(xs: Sequence[Int8Array]) -> npt.NDArray[np.floating]:
        return kernels.conv(
            xs[0], x_spec.zero_point, weight, stride=stride, padding=padding, groups=groups
        )

    return (c_out, *out), Accumulating(accumulate, requant)


def _linear(model: TinyModel, op: Op, shapes: list[tuple[int, ...]], arith: Arithmetic) -> Built:
    weight = op.constant(model, "weight")
    if weight.ndim != 2 or shapes[0] != (weight.shape[1],):
        raise ValueError(
            f"weight {weight.shape} needs input ({weight.shape[-1]},), got {shapes[0]}"
        )
    x_spec = model.tensors[op.inputs[0]]
    requant = weighted_requantizer(model, op, arith, weight)

    def accumulate(xs: Sequence[Int8Array]) -> npt.NDArray[np.floating]:
        return kernels.linear(xs[0], x_spec.zero_point, weight)

    return (weight.shape[0],), Accumulating(accumulate, requant)


def _pool(model: TinyModel, op: Op, shapes: list[tuple[int, ...]], arith: Arithmetic) -> Built:
    kernel_attr = op.attrs.get("kernel")
    if kernel_attr is None:
        raise ValueError("pooling needs a 'kernel' attribute")
    dims = len(shapes[0]) - 1
    kernel = _per_dim(kernel_attr, dims, "kernel", 1)
    stride = _per_dim(op.attrs.get("stride", kernel), dims, "stride", 1)
    channels, size = _spatial(shapes[0], dims, op.kind)
    if min(kernel) < 1 or min(stride) < 1 or any(k > s for k, s in zip(kernel, size, strict=True)):
        raise ValueError(f"kernel {kernel} / stride {stride} invalid for input {shapes[0]}")
    out = tuple(
        kernels.conv_output_size(s, k, st, 0) for s, k, st in zip(size, kernel, stride, strict=True)
    )
    if op.kind == "max_pool":
        return (channels, *out), MaxPooling(kernel, stride)
    spec = model.tensors[op.inputs[0]]
    count = math.prod(kernel)
    offset = spec.zero_point if arith == "onnx" else 0

    def kernel_fn(xs: Sequence[Int8Array]) -> Int8Array:
        sums = kernels.window_sum(xs[0], kernel, stride, offset)
        return average(arith, sums, count, zero_point=spec.zero_point, scale=spec.scale)

    return (channels, *out), kernel_fn


def _global_pool(
    model: TinyModel, op: Op, shapes: list[tuple[int, ...]], arith: Arithmetic
) -> Built:
    if len(shapes[0]) not in (2, 3):
        raise ValueError(f"global_avg_pool needs an input (C, *spatial), got {shapes[0]}")
    channels, size = shapes[0][0], shapes[0][1:]
    spec = model.tensors[op.inputs[0]]
    count = math.prod(size)
    offset = spec.zero_point * count if arith == "onnx" else 0
    axes = tuple(range(2, len(size) + 2))

    def kernel_fn(xs: Sequence[Int8Array]) -> Int8Array:
        sums = xs[0].sum(axis=axes, dtype=np.int64, keepdims=True) - offset
        return average(arith, sums, count, zero_point=spec.zero_point, scale=spec.scale)

    return (channels, *(1 for _ in size)), kernel_fn


def _flatten(model: TinyModel, op: Op, shapes: list[tuple[int, ...]], arith: Arithmetic) -> Built:
    def kernel_fn(xs: Sequence[Int8Array]) -> Int8Array:
        x = xs[0]  # (C, N, *spatial) -> (C * prod(spatial), N), C-order per sample
        return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]) if x.ndim > 2 else x

    return (math.prod(shapes[0]),), kernel_fn


def _relu(model: TinyModel, op: Op, shapes: list[tuple[int, ...]], arith: Arithmetic) -> Built:
    zero_point = np.int8(model.tensors[op.output].zero_point)
    return shapes[0], lambda xs: np.maximum(xs[0], zero_point)


def _add(model: TinyModel, op: Op, shapes: list[tuple[int, ...]], arith: Arithmetic) -> Built:
    if shapes[0] != shapes[1]:
        raise ValueError(f"add needs inputs of one shape, got {shapes[0]} and {shapes[1]}")
    a, b, y = (model.tensors[name] for name in (*op.inputs, op.output))
    relu = bool(op.attrs.get("relu", False))

    def kernel_fn(xs: Sequence[Int8Array]) -> Int8Array:
        return add(
            arith,
            xs[0],
            xs[1],
            a_qparams=(a.scale, a.zero_point),
            b_qparams=(b.scale, b.zero_point),
            out_qparams=(y.scale, y.zero_point),
            relu=relu,
        )

    return shapes[0], kernel_fn


_BUILDERS: Mapping[str, Callable[[TinyModel, Op, list[tuple[int, ...]], Arithmetic], Built]] = {
    "conv": _conv,
    "linear": _linear,
    "max_pool": _pool,
    "avg_pool": _pool,
    "global_avg_pool": _global_pool,
    "flatten": _flatten,
    "relu": _relu,
    "add": _add,
}
