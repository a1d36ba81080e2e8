"""Example `TinyModel`s with random weights, for benchmarks and demonstrations.

`random_tiny_cnn` has the layout of ``tinylarge.models.tiny_cnn`` after quantization (three
conv + fused ReLU + max-pool blocks, global average pooling, flatten, linear) with random int8
weights and plausible scales; it needs no training, so the runtime can be timed on its own.
"""

from __future__ import annotations

import math

import numpy as np

from tinylarge.tiny.graph import FORMAT_VERSION, Op, TensorSpec, TinyModel

#: Typical |output| in LSBs the random scales aim at (keeps most outputs unsaturated).
_TARGET_LSB = 40.0


def random_tiny_cnn(
    rng: np.random.Generator,
    *,
    input_shape: tuple[int, int] = (2, 128),
    width: int = 6,
    num_classes: int = 8,
) -> TinyModel:
    """A quantized 1-D tiny CNN with random weights.

    Layout: conv1d k7 ``C -> width``, ReLU, max-pool 2; conv1d k5 ``width -> 2 width``, ReLU,
    max-pool 2; conv1d k3 ``2 width -> 2 width``, ReLU, max-pool 2; global average pool;
    flatten; linear ``2 width -> num_classes``. Convolutions are ``same``-padded.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the weights, biases and scales.
    input_shape : (int, int)
        ``(channels, length)`` of one input frame; length must be at least 8.
    width, num_classes : int
        Channels of the first block and number of output classes.
    """
    channels, length = input_shape
    if channels < 1 or length < 8 or width < 1 or num_classes < 1:
        raise ValueError(
            "random_tiny_cnn needs channels >= 1, length >= 8, width >= 1, num_classes >= 1; "
            f"got input_shape={input_shape}, width={width}, num_classes={num_classes}"
        )
    tensors = {"input": TensorSpec(input_shape, 0.02, 0)}
    constants: dict[str, np.ndarray] = {}
    ops: list[Op] = []
    current, c_in = "input", channels
    for block, (c_out, kernel) in enumerate(((width, 7), (2 * width, 5), (2 * width, 3))):
        conv = f"block{block}.conv"
        _weights(rng, constants, conv, (c_out, c_in, kernel), tensors[current].scale)
        tensors[conv] = TensorSpec(
            (c_out, length), _output_scale(constants, conv, tensors[current]), -128
        )
        attrs = {"stride": (1,), "padding": (kernel // 2,), "groups": 1, "relu": True}
        ops.append(Op(conv, "conv", (current,), conv, attrs))
        pool = f"block{block}.pool"
        length //= 2
        tensors[pool] = TensorSpec((c_out, length), tensors[conv].scale, -128)
        ops.append(Op(pool, "max_pool", (conv,), pool, {"kernel": (2,), "stride": (2,)}))
        current, c_in = pool, c_out
    tensors["gap"] = TensorSpec((c_in, 1), tensors[current].scale, -128)
    ops.append(Op("gap", "global_avg_pool", (current,), "gap", {}))
    tensors["flat"] = TensorSpec((c_in,), tensors[current].scale, -128)
    ops.append(Op("flat", "flatten", ("gap",), "flat", {}))
    _weights(rng, constants, "head", (num_classes, c_in), tensors["flat"].scale)
    tensors["head"] = TensorSpec(
        (num_classes,), _output_scale(constants, "head", tensors["flat"]), 0
    )
    ops.append(Op("head", "linear", ("flat",), "head", {"relu": False}))
    return TinyModel(
        ops=tuple(ops),
        tensors=tensors,
        constants=constants,
        input="input",
        output="head",
        class_names=tuple(f"class_{i}" for i in range(num_classes)),
        manifest={
            "format_version": FORMAT_VERSION,
            "source_model_sha256": "",
            "quantization": {"example": "random_tiny_cnn", "width": width},
        },
    )


def _weights(
    rng: np.random.Generator,
    constants: dict[str, np.ndarray],
    name: str,
    shape: tuple[int, ...],
    input_scale: float,
) -> None:
    """Random symmetric int8 weights, float32 per-channel scales and int32 biases."""
    constants[f"{name}.weight"] = rng.integers(-127, 128, shape).astype(np.int8)
    constants[f"{name}.weight_scale"] = (0.01 * 2.0 ** rng.uniform(-1, 1, shape[0])).astype(
        np.float32
    )
    fan_in = math.prod(shape[1:])
    constants[f"{name}.bias"] = rng.integers(-40 * fan_in, 40 * fan_in + 1, shape[0]).astype(
        np.int32
    )


def _output_scale(constants: dict[str, np.ndarray], name: str, source: TensorSpec) -> float:
    """A float32 scale that maps the layer's typical accumulator to about 40 LSB."""
    weight = constants[f"{name}.weight"].astype(np.float64)
    fan_in = math.prod(weight.shape[1:])
    typical_acc = float(np.sqrt(fan_in) * weight.std() * 64.0)  # |x - zp| ~ 64 on average
    w_scale = float(np.median(constants[f"{name}.weight_scale"]))
    return float(np.float32(source.scale * w_scale * typical_acc / _TARGET_LSB))
