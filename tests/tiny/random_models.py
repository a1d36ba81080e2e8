"""Random valid `TinyModel`s for the runtime and ONNX export tests.

`random_model` draws a chain of ops (conv1d/conv2d with stride, padding and groups including
depthwise, linear, relu, max/avg/global-avg pooling, flatten, residual adds with their own
qparams, fused ReLU on and off) with random scales, zero points, weights and biases. Some
models use power-of-two scales, so that the requantization multipliers are powers of two and
many accumulators land exactly on rounding ties; some use large biases, some biases near the ends of
the int32 range (so that ``accumulator + bias`` wraps around like int32 arithmetic).
`single_op_model` wraps one op of a given kind.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinylarge.tiny.graph import FORMAT_VERSION, Op, TensorSpec, TinyModel

SPATIAL_OPS = ("conv", "conv", "max_pool", "avg_pool", "relu", "residual")
VECTOR_OPS = ("linear", "linear", "relu", "residual")


class ModelBuilder:
    """Builds a chain of ops one by one, keeping each tensor's shape and qparams."""

    def __init__(self, rng: np.random.Generator, input_shape: tuple[int, ...]) -> None:
        self.rng = rng
        self.ties = bool(rng.random() < 0.4)  # power-of-two scales: many exact ties
        # bias range: typical, large (2**24) or the full int32 range (accumulators wrap)
        self.bias_mode = str(rng.choice(["typical", "typical", "large", "huge"]))
        self.ops: list[Op] = []
        self.tensors: dict[str, TensorSpec] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.current = "input"
        self.tensors["input"] = TensorSpec(input_shape, self.scale(), self.zero_point())

    # -- random parameters ------------------------------------------------------------------
    def scale(self, around: float = 0.05) -> float:
        if self.ties:
            return float(2.0 ** round(math.log2(around) + self.rng.integers(-2, 3)))
        return float(np.float32(around * 2.0 ** self.rng.uniform(-2.5, 2.5)))

    def zero_point(self) -> int:
        return int(self.rng.integers(-128, 128))

    def weights(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.integers(-127, 128, shape).astype(np.int8)

    def weight_scales(self, count: int) -> np.ndarray:
        if self.ties:
            return (2.0 ** self.rng.integers(-9, -5, count)).astype(np.float32)
        return (0.01 * 2.0 ** self.rng.uniform(-2, 2, count)).astype(np.float32)

    def bias(self, count: int, typical: float) -> np.ndarray:
        if self.bias_mode == "huge":  # near +-2**31: accumulator + bias often wraps
            margin = self.rng.integers(0, max(int(typical), 1) + 1, count)
            sign = self.rng.choice([-1, 1], count)
            return (sign * (2**31 - 1 - margin)).astype(np.int32)
        limit = 2**24 if self.bias_mode == "large" else max(int(typical), 1)
        return self.rng.integers(-limit, limit + 1, count).astype(np.int32)

    # -- tensors and ops --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensors[self.current].shape

    def new_tensor(self, shape: tuple[int, ...], like: str | None = None, **scale: float) -> str:
        name = f"t{len(self.tensors)}"
        if like is not None:
            spec = self.tensors[like]
            self.tensors[name] = TensorSpec(shape, spec.scale, spec.zero_point)
        else:
            self.tensors[name] = TensorSpec(shape, self.scale(**scale), self.zero_point())
        return name

    def add(self, kind: str, inputs: tuple[str, ...], output: str, **attrs: Any) -> str:
        name = f"op{len(self.ops)}_{kind}"
        self.ops.append(Op(name, kind, inputs, output, attrs))
        self.current = output
        return name

    def weighted(
        self, kind: str, weight: np.ndarray, out_shape: tuple[int, ...], **attrs: Any
    ) -> None:
        """Add a conv/linear op whose output scale suits its typical accumulator.

        Sometimes (not with near-int32 biases) the output scale is below ``input_scale *
        weight_scale``: a multiplier above 1, which TFLite applies as a left shift.
        """
        source = self.tensors[self.current]
        fan_in = math.prod(weight.shape[1:])
        w_scale = self.weight_scales(weight.shape[0])
        typical_acc = 60.0 * 70.0 * math.sqrt(fan_in)
        product = source.scale * float(np.median(w_scale))
        if self.bias_mode != "huge" and self.rng.random() < 0.15:
            out_scale = product / float(self.rng.uniform(1.5, 6.0))
        else:
            out_scale = product * typical_acc / 60.0
        output = self.new_tensor(out_shape, around=out_scale)
        name = self.add(kind, (self.current,), output, relu=bool(self.rng.random() < 0.5), **attrs)
        self.constants[f"{name}.weight"] = weight
        self.constants[f"{name}.weight_scale"] = w_scale
        self.constants[f"{name}.bias"] = self.bias(weight.shape[0], typical_acc)

    def conv(self, c_out: int | None = None, same: bool = False) -> None:
        c_in, *size = self.shape
        dims = len(size)
        options = [g for g in (1, 2, c_in) if c_in % g == 0]
        groups = 1 if same else int(self.rng.choice(options))
        if c_out is None:
            per_group = int(self.rng.integers(1, 4 if groups > 1 else 7))
            c_out = groups * per_group
        kernel = tuple(int(self.rng.integers(1, min(s, 4) + 1)) for s in size)
        if same:
            kernel = tuple(k | 1 if k | 1 <= s else 1 for k, s in zip(kernel, size, strict=True))
            stride, padding = (1,) * dims, tuple(k // 2 for k in kernel)
        else:
            stride = tuple(int(self.rng.integers(1, 3)) for _ in size)
            padding = tuple(int(self.rng.integers(0, k)) for k in kernel)
        out = tuple(
            (s + 2 * p - k) // st + 1
            for s, k, st, p in zip(size, kernel, stride, padding, strict=True)
        )
        weight = self.weights((c_out, c_in // groups, *kernel))
        self.weighted("conv", weight, (c_out, *out), stride=stride, padding=padding, groups=groups)

    def linear(self, out_features: int | None = None) -> None:
        (features,) = self.shape
        out_features = out_features or int(self.rng.integers(1, 9))
        self.weighted("linear", self.weights((out_features, features)), (out_features,))

    def pool(self, kind: str) -> None:
        c, *size = self.shape
        kernel = tuple(int(self.rng.integers(1, min(s, 3) + 1)) for s in size)
        stride = tuple(int(self.rng.integers(1, 3)) for _ in size)
        out = tuple((s - k) // st + 1 for s, k, st in zip(size, kernel, stride, strict=True))
        self.add(
            kind,
            (self.current,),
            self.new_tensor((c, *out), like=self.current),
            kernel=kernel,
            stride=stride,
        )

    def simple(self, kind: str) -> None:
        c, *size = self.shape
        shapes = {
            "relu": self.shape,
            "global_avg_pool": (c, *(1 for _ in size)),
            "flatten": (math.prod(self.shape),),
        }
        self.add(kind, (self.current,), self.new_tensor(shapes[kind], like=self.current))

    def residual(self) -> None:
        """``current + branch(current)`` with the add's own output qparams."""
        skip = self.current
        if len(self.shape) == 1:
            self.linear(self.shape[0])
        else:
            self.conv(self.shape[0], same=True)
        base = self.tensors[skip].scale
        output = self.new_tensor(self.shape, around=base)
        self.add("add", (skip, self.current), output, relu=bool(self.rng.random() < 0.5))

    def build(self) -> TinyModel:
        out = self.tensors[self.current]
        return TinyModel(
            ops=tuple(self.ops),
            tensors=dict(self.tensors),
            constants=dict(self.constants),
            input="input",
            output=self.current,
            class_names=tuple(f"c{i}" for i in range(out.size)),
            manifest={
                "format_version": FORMAT_VERSION,
                "source_model_sha256": "0" * 64,
                "quantization": {"generator": "tests/tiny/random_models.py"},
            },
        )


def random_input_shape(rng: np.random.Generator) -> tuple[int, ...]:
    channels = int(rng.integers(1, 5))
    if rng.random() < 0.5:
        return (channels, int(rng.integers(4, 25)))
    return (channels, int(rng.integers(3, 9)), int(rng.integers(3, 9)))


def random_model(rng: np.random.Generator, max_ops: int = 7) -> TinyModel:
    """A random chain of 1 to ``max_ops`` (plus a head) ops on a random 1-D or 2-D input."""
    builder = ModelBuilder(rng, random_input_shape(rng))
    for _ in range(int(rng.integers(1, max_ops + 1))):
        if len(builder.shape) == 1:
            kind = str(rng.choice(VECTOR_OPS))
        else:
            kind = str(rng.choice((*SPATIAL_OPS, "global_avg_pool", "flatten")))
        if kind in ("max_pool", "avg_pool"):
            builder.pool(kind)
        elif kind in ("relu", "global_avg_pool", "flatten"):
            builder.simple(kind)
        else:
            getattr(builder, kind)()
    if len(builder.shape) > 1 and rng.random() < 0.6:  # a classifier head
        builder.simple("global_avg_pool" if rng.random() < 0.5 else "flatten")
        if len(builder.shape) > 1:
            builder.simple("flatten")
        builder.linear()
    return builder.build()


def single_op_model(rng: np.random.Generator, kind: str) -> TinyModel:
    """One op of ``kind`` on a random input (``add`` adds the input to ``relu(input)``)."""
    shape = random_input_shape(rng)
    if kind == "linear":
        shape = (int(rng.integers(1, 40)),)
    builder = ModelBuilder(rng, shape)
    if kind == "add":  # input + relu(input): both exact in every arithmetic, own out qparams
        builder.simple("relu")
        output = builder.new_tensor(builder.shape, around=builder.tensors["input"].scale)
        builder.add("add", ("input", builder.current), output, relu=bool(rng.random() < 0.5))
    elif kind in ("max_pool", "avg_pool"):
        builder.pool(kind)
    elif kind in ("relu", "global_avg_pool", "flatten"):
        builder.simple(kind)
    else:
        getattr(builder, kind)()
    return builder.build()


def random_input(rng: np.random.Generator, model: TinyModel, n: int) -> np.ndarray:
    """Uniform random int8 inputs (N, *input_shape)."""
    return rng.integers(-128, 128, (n, *model.input_spec.shape)).astype(np.int8)
