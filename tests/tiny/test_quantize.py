"""Post-training quantization: BN folding, graph mapping, qparams, weights and biases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinylarge.models.registry import build_model
from tinylarge.tiny.quantize import (
    QuantizationError,
    activation_qparams,
    fold_batch_norm,
    quantize_bias,
    quantize_model,
    quantize_weights,
)

CLASSES = tuple("abcdefgh")


def _with_random_batch_norm(model: nn.Module, seed: int) -> nn.Module:
    """Give every batch norm non-trivial statistics, so that folding has work to do."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
            module.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.3)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "shape", "options"),
    [
        ("tiny_cnn", (2, 128), {"width": 6}),
        ("tiny_cnn", (1, 8, 8), {"width": 4}),
        ("large_resnet", (2, 128), {"width": 4}),
    ],
)
def test_folding_keeps_float_outputs_within_1e_5(
    name: str, shape: tuple[int, ...], options: dict[str, int]
) -> None:
    model = _with_random_batch_norm(build_model(name, shape, 8, options, seed=0), seed=1)
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((64, *shape)).astype("f4"))
    with torch.no_grad():
        assert torch.max(torch.abs(model(x) - folded(x))) < 1e-5


def test_activation_qparams_make_zero_exact_and_relu_outputs_start_at_minus_128() -> None:
    scale, zp = activation_qparams(0.0, 2.55)
    assert zp == -128 and scale == pytest.approx(0.01, rel=1e-6)
    scale, zp = activation_qparams(-1.0, 1.0)
    assert scale == pytest.approx(2 / 255, rel=1e-6)
    assert zp == round(-128 + 1.0 / scale)  # real 0 sits at the zero point
    _, zp = activation_qparams(0.5, 3.0)  # range widened to include 0
    assert zp == -128
    assert np.float32(scale) == scale  # stored exactly as float32


def test_weights_are_symmetric_per_output_channel() -> None:
    w = np.array([[0.6, -1.0, 0.25], [0.03, 0.01, -0.04]])
    q, scale = quantize_weights(w)
    assert q.dtype == np.int8 and scale.dtype == np.float32
    np.testing.assert_allclose(scale, [1.0 / 127, 0.04 / 127], rtol=1e-6)
    # 0.6 * 127 = 76.2, 0.25 * 127 = 31.75, 0.03 / 0.04 * 127 = 95.25, 0.01 / 0.04 * 127 = 31.75
    np.testing.assert_array_equal(q, [[76, -127, 32], [95, 32, -127]])
    bias = quantize_bias(np.array([0.1, -0.2]), 0.05, scale)
    np.testing.assert_array_equal(bias, np.rint([0.1 / (0.05 / 127), -0.2 / (0.05 * 0.04 / 127)]))


def test_quantized_graph_of_the_resnet_has_fused_relus_and_residual_adds() -> None:
    model = _with_random_batch_norm(
        build_model("large_resnet", (2, 64), 8, {"width": 4}, seed=0), 0
    )
    x = np.random.default_rng(0).standard_normal((32, 2, 64)).astype(np.float32)
    tiny = quantize_model(model, x, CLASSES)
    kinds = [op.kind for op in tiny.ops]
    assert kinds.count("add") == 8  # 4 stages x 2 blocks
    assert "relu" not in kinds  # every ReLU fused into its conv or add
    assert kinds[-3:] == ["global_avg_pool", "flatten", "linear"]
    for op in tiny.ops:
        if op.attrs.get("relu"):
            assert tiny.tensors[op.output].zero_point == -128
    assert tiny.manifest["source_model_sha256"]
    assert tiny.output_spec.shape == (8,)


def test_unsupported_ops_are_named() -> None:
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 14, 3))
    x = np.zeros((4, 2, 16), dtype=np.float32)
    with pytest.raises(QuantizationError, match=r"Tanh.*supported: Conv1d"):
        quantize_model(model, x, ("a", "b", "c"))
    dilated = nn.Sequential(nn.Conv1d(2, 4, 3, dilation=2), nn.Flatten(), nn.Linear(48, 3))
    with pytest.raises(QuantizationError, match="dilated"):
        quantize_model(dilated, x, ("a", "b", "c"))
