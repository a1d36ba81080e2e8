"""Split computing on the RF transformer: device MACs (linear layers and attention products)
against counts by hand and an independent counter, bytes on air per cut, outputs per cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from tinylarge.integrate.inference.split_computing import (
    QUANT_HEADER_BYTES,
    activation_bytes_per_split,
    activation_shapes,
    attention_product_macs,
    cumulative_macs,
    device_macs_per_block,
    module_macs,
    split_outputs,
)
from tinylarge.models.registry import build_model
from tinylarge.models.rf_transformer import RfTransformer, attention_macs

SHAPE = (2, 128)  # 16 tokens of 8 samples


@pytest.fixture(scope="module")
def xs() -> RfTransformer:
    model = build_model("rf_transformer", SHAPE, 8, {"size": "xs", "checkpoint": "none"}, seed=0)
    assert isinstance(model, RfTransformer)
    return model.eval()


def test_device_macs_of_size_xs_counted_by_hand(xs: RfTransformer) -> None:
    tokens, width, hidden = 16, 32, 4 * 32
    embedding = tokens * (2 * 8) * width  # Linear(16, 32) on each of 16 patches
    layer = (
        tokens * width * 3 * width  # qkv
        + tokens * tokens * width  # Q K^T over 2 heads of 16
        + tokens * tokens * width  # softmax(.) V
        + tokens * width * width  # output projection
        + tokens * width * hidden  # fc1
        + tokens * hidden * width  # fc2
    )
    assert (embedding, layer) == (8_192, 212_992)
    np.testing.assert_array_equal(device_macs_per_block(xs, SHAPE), [embedding, layer, layer])
    np.testing.assert_array_equal(
        cumulative_macs(device_macs_per_block(xs, SHAPE)),
        [0, embedding, embedding + layer, embedding + 2 * layer],
    )


def test_device_macs_are_the_linear_flops_plus_the_attention_formula(xs: RfTransformer) -> None:
    """torch's FlopCounterMode counts the matrix products of linear layers (2 FLOPs a MAC) but
    not CPU attention; rf_transformer.attention_macs gives the attention products."""
    shapes = activation_shapes(xs, SHAPE)
    per_block = device_macs_per_block(xs, SHAPE)
    attention_per_layer = attention_macs("xs", tokens=16) // 2  # 2 layers
    for i, block in enumerate(xs.blocks):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            block(torch.zeros((1, *shapes[i])))
        linear = counter.get_total_flops() // 2
        assert per_block[i] == linear + (attention_per_layer if i > 0 else 0), i


def test_attention_product_macs_by_hand() -> None:
    q, k, v = torch.zeros(1, 3, 5, 4), torch.zeros(1, 3, 7, 4), torch.zeros(1, 3, 7, 6)
    assert attention_product_macs(q, k, v) == 3 * 5 * 7 * 4 + 3 * 5 * 7 * 6

    class Cross(nn.Module):  # keyword arguments and different query/key lengths
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            kv = torch.zeros(1, 3, 7, 4)
            out: torch.Tensor = F.scaled_dot_product_attention(
                query=x.reshape(1, 3, 5, 4), key=kv, value=kv
            )
            return out

    assert module_macs(Cross(), (60,)) == 2 * 3 * 5 * 7 * 4


def test_activation_bytes_per_cut(xs: RfTransformer) -> None:
    shapes = activation_shapes(xs, SHAPE)
    assert shapes == [SHAPE, (32, 16), (32, 16), (32, 16)]
    for bits in (4, 8, 16):
        expected = [256 * bits // 8] + [512 * bits // 8] * 3
        np.testing.assert_array_equal(
            activation_bytes_per_split(xs, SHAPE, bits),
            np.array(expected) + QUANT_HEADER_BYTES,
        )


def test_every_cut_matches_the_full_model(xs: RfTransformer) -> None:
    x = np.random.default_rng(0).normal(size=(64, *SHAPE)).astype(np.float32)
    with torch.no_grad():
        full = xs(torch.from_numpy(x)).numpy()
    scale = float(np.abs(full).max())
    for k in range(len(xs.blocks) + 1):
        err16 = np.abs(split_outputs(xs, x, k, 16) - full).max()
        err4 = np.abs(split_outputs(xs, x, k, 4) - full).max()
        assert err16 < 1e-3 * scale, (k, err16)
        assert err16 <= err4, k
