"""C code of each `TinyModel` op: its ``const`` data and its kernel call (`op_code`).

Each op becomes a ``const`` parameter struct (and, for conv/linear, ``const`` weight, bias,
multiplier and shift arrays) plus one call into ``tl_kernels.c``. The numbers are the runtime's:
conv/linear requantization from `tinylarge.tiny.program.weighted_requantizer` (``"tflm"``),
ADD multipliers from `tinylarge.tiny.fixed_point.quantize_multiplier` with the formulas of
`tinylarge.tiny.requantize.add` (TFLite's int8 ADD). 1-D tensors ``(C, L)`` are passed to the
kernels as ``(C, 1, L)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tinylarge.tiny.codegen.c_text import c_array, c_struct
from tinylarge.tiny.fixed_point import INT32_MAX, quantize_multiplier
from tinylarge.tiny.graph import Op, TinyModel
from tinylarge.tiny.program import weighted_requantizer
from tinylarge.tiny.requantize import (
    ADD_LEFT_SHIFT,
    Requantizer,
    activation_range,
    f32,
)

#: Largest left shift (multiplier >= 1) the C kernels apply: ``x << shift`` on 32 bits.
MAX_LEFT_SHIFT = 31


@dataclass(frozen=True)
class OpCode:
    """The C of one op: ``data`` (file-scope definitions) and ``call`` (statements).

    ``call(input_offsets, output_offset)`` gives the statements for the arena offsets (bytes)
    of the op's inputs and output; ``arena`` is the arena pointer in ``<prefix>invoke``.
    """

    title: str
    inputs: tuple[str, ...]
    output: str
    data: list[str] = field(default_factory=list)
    call: Callable[[Sequence[int], int], list[str]] = lambda ins, out: []


def _hw(shape: tuple[int, ...]) -> tuple[int, int]:
    """Spatial (H, W) of a (C, L) or (C, H, W) shape: 1-D is H = 1."""
    return (1, shape[1]) if len(shape) == 2 else (shape[1], shape[2])


def _per_dim(value: object, dims: int, default: int) -> tuple[int, int]:
    """An attribute given as an int or per spatial dim, as (H, W) with H = default for 1-D."""
    if value is None:
        raw: tuple[int, ...] = (default,) * dims
    elif isinstance(value, int | np.integer):
        raw = (int(value),) * dims
    else:
        raw = tuple(int(v) for v in value)  # type: ignore[attr-defined]
    return (default, raw[0]) if dims == 1 else (raw[0], raw[1])


def _requant_arrays(name: str, requant: Requantizer) -> list[str]:
    shift = requant.shift
    if int(shift.max(initial=0)) > MAX_LEFT_SHIFT:
        raise ValueError(f"{name}: multiplier too large for a 32-bit left shift")
    return [
        c_array("int32_t", f"{name}_bias", requant.bias),
        c_array("int32_t", f"{name}_mult", requant.multiplier),
        c_array("int32_t", f"{name}_shift", shift),
    ]


def _weighted(model: TinyModel, op: Op, name: str, kernel: str, geometry: dict[str, int]) -> OpCode:
    """A conv/linear op: its weight and requantization arrays, its ``tl_<kernel>_params``
    struct (``geometry``, then the zero-point offsets and the activation range) and the call
    of ``tl_<kernel>``."""
    weight = op.constant(model, "weight")
    x, y = model.tensors[op.inputs[0]], model.tensors[op.output]
    fan_in = math.prod(weight.shape[1:])
    if fan_in * 127 * 255 > INT32_MAX:
        raise ValueError(f"{op.name}: fan-in {fan_in} could overflow the int32 accumulator")
    requant = weighted_requantizer(model, op, "tflm", weight)
    params = {
        **geometry,
        "in_offset": -x.zero_point,
        "out_offset": y.zero_point,
        "act_min": requant.low,
        "act_max": requant.high,
    }
    data = [
        c_array("int8_t", f"{name}_weight", weight),
        *_requant_arrays(name, requant),
        *c_struct(f"tl_{kernel}_params", f"{name}_params", params),
    ]

    def call(ins: Sequence[int], out: int) -> list[str]:
        return [
            f"tl_{kernel}(&{name}_params, arena + {ins[0]}, {name}_weight, {name}_bias, "
            f"{name}_mult, {name}_shift, arena + {out});"
        ]

    return OpCode("", op.inputs, op.output, data, call)


def _conv(model: TinyModel, op: Op, name: str) -> OpCode:
    x, y = model.tensors[op.inputs[0]], model.tensors[op.output]
    weight = op.constant(model, "weight")
    dims = weight.ndim - 2
    k_h, k_w = (1, weight.shape[2]) if dims == 1 else (weight.shape[2], weight.shape[3])
    stride = _per_dim(op.attrs.get("stride"), dims, 1)
    padding = _per_dim(op.attrs.get("padding"), dims, 0)
    (in_h, in_w), (out_h, out_w) = _hw(x.shape), _hw(y.shape)
    geometry = {
        "in_c": x.shape[0],
        "in_h": in_h,
        "in_w": in_w,
        "out_c": y.shape[0],
        "out_h": out_h,
        "out_w": out_w,
        "k_h": k_h,
        "k_w": k_w,
        "stride_h": stride[0],
        "stride_w": stride[1],
        "pad_h": padding[0],
        "pad_w": padding[1],
        "groups": int(op.attrs.get("groups", 1)),
    }
    return _weighted(model, op, name, "conv", geometry)


def _linear(model: TinyModel, op: Op, name: str) -> OpCode:
    x, y = model.tensors[op.inputs[0]], model.tensors[op.output]
    return _weighted(model, op, name, "linear", {"in_features": x.size, "out_features": y.size})


def _pool(model: TinyModel, op: Op, name: str) -> OpCode:
    x, y = model.tensors[op.inputs[0]], model.tensors[op.output]
    dims = len(x.shape) - 1
    (in_h, in_w), (out_h, out_w) = _hw(x.shape), _hw(y.shape)
    if op.kind == "global_avg_pool":
        kernel, stride = (in_h, in_w), (1, 1)
    else:
        kernel = _per_dim(op.attrs["kernel"], dims, 1)
        stride = _per_dim(op.attrs.get("stride", op.attrs["kernel"]), dims, 1)
    params = {
        "channels": x.shape[0],
        "in_h": in_h,
        "in_w": in_w,
        "out_h": out_h,
        "out_w": out_w,
        "k_h": kernel[0],
        "k_w": kernel[1],
        "stride_h": stride[0],
        "stride_w": stride[1],
    }
    data = c_struct("tl_pool_params", f"{name}_params", params)
    function = "tl_max_pool" if op.kind == "max_pool" else "tl_avg_pool"

    def call(ins: Sequence[int], out: int) -> list[str]:
        return [f"{function}(&{name}_params, arena + {ins[0]}, arena + {out});"]

    return OpCode("", op.inputs, op.output, data, call)


def _flatten(model: TinyModel, op: Op, name: str) -> OpCode:
    def call(ins: Sequence[int], out: int) -> list[str]:
        if ins[0] != out:  # the memory plan always aliases flatten
            raise ValueError(f"{op.name}: flatten must alias its input (memory plan)")
        return ["/* alias of its input: nothing to do */"]

    return OpCode("", op.inputs, op.output, [], call)


def _relu(model: TinyModel, op: Op, name: str) -> OpCode:
    y = model.tensors[op.output]

    def call(ins: Sequence[int], out: int) -> list[str]:
        return [f"tl_relu({y.size}, {y.zero_point}, arena + {ins[0]}, arena + {out});"]

    return OpCode("", op.inputs, op.output, [], call)


def add_parameters(
    a_qparams: tuple[float, int],
    b_qparams: tuple[float, int],
    out_qparams: tuple[float, int],
    relu: bool,
) -> dict[str, int]:
    """``tl_add_params`` fields of TFLite's int8 ADD, as `tinylarge.tiny.requantize.add`.

    Multipliers ``s_a / (2 max_s)``, ``s_b / (2 max_s)`` and ``2 max_s / (2**20 s_out)`` (float32
    scales, float64 arithmetic) encoded with `quantize_multiplier`.
    """
    (sa, za), (sb, zb), (so, zo) = a_qparams, b_qparams, out_qparams
    twice_max = 2.0 * float(max(f32(sa), f32(sb)))
    q1, s1 = quantize_multiplier(float(f32(sa)) / twice_max)
    q2, s2 = quantize_multiplier(float(f32(sb)) / twice_max)
    qo, so_shift = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT) * float(f32(so))))
    if max(s1, s2, so_shift) > MAX_LEFT_SHIFT:
        raise ValueError("add: output multiplier too large for a 32-bit left shift")
    low, high = activation_range(zo, relu)
    return {
        "in1_offset": -za,
        "in2_offset": -zb,
        "left_shift": ADD_LEFT_SHIFT,
        "in1_multiplier": q1,
        "in1_shift": s1,
        "in2_multiplier": q2,
        "in2_shift": s2,
        "out_multiplier": qo,
        "out_shift": so_shift,
        "out_offset": zo,
        "act_min": low,
        "act_max": high,
    }


def _add(model: TinyModel, op: Op, name: str) -> OpCode:
    a, b, y = (model.tensors[t] for t in (*op.inputs, op.output))
    fields = add_parameters(
        (a.scale, a.zero_point),
        (b.scale, b.zero_point),
        (y.scale, y.zero_point),
        bool(op.attrs.get("relu", False)),
    )
    data = c_struct("tl_add_params", f"{name}_params", {"size": y.size, **fields})

    def call(ins: Sequence[int], out: int) -> list[str]:
        return [f"tl_add(&{name}_params, arena + {ins[0]}, arena + {ins[1]}, arena + {out});"]

    return OpCode("", op.inputs, op.output, data, call)


_BUILDERS: dict[str, Callable[[TinyModel, Op, str], OpCode]] = {
    "conv": _conv,
    "linear": _linear,
    "max_pool": _pool,
    "avg_pool": _pool,
    "global_avg_pool": _pool,
    "flatten": _flatten,
    "relu": _relu,
    "add": _add,
}


def op_code(model: TinyModel, op: Op, name: str) -> OpCode:
    """The C of ``op``; ``name`` (a C identifier) prefixes its data symbols."""
    code = _BUILDERS[op.kind](model, op, name)
    shape = model.tensors[op.output].shape
    title = f"{op.name}: {op.kind}({', '.join(op.inputs)}) -> {op.output} {shape}"
    return OpCode(title, code.inputs, code.output, code.data, code.call)


__all__ = ["OpCode", "add_parameters", "op_code"]
