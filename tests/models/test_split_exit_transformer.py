"""The bottleneck + exit graft on the RF transformer: the cut is recognised as a signed residual
stream and the decoder's output is linear, the transformer stays frozen and both parts learn;
the ResNet keeps its ReLU decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinylarge.config.training_config import TrainingSpec
from tinylarge.integrate.inference.split_computing import module_macs
from tinylarge.models.registry import build_model
from tinylarge.models.rf_transformer import RfTransformer
from tinylarge.models.split_exit import (
    SplitExitModel,
    cut_is_signed,
    split_exit_logits,
    train_split_exit,
)
from tinylarge.models.training import train

SHAPE = (2, 64)  # 8 tokens of 8 samples


def toy_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 when channel 0 carries a positive offset."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 1.0, (n, *SHAPE)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 1.5, -1.5)[:, None]
    return x, y.astype(np.int64)


def transformer(*, trained: bool = False) -> RfTransformer:
    model = build_model("rf_transformer", SHAPE, 2, {"size": "xs", "checkpoint": "none"}, seed=0)
    assert isinstance(model, RfTransformer)
    if trained:
        x, y = toy_data(1500, seed=5)
        train(model, x, y, TrainingSpec(epochs=2, batch_size=64, learning_rate=0.003), seed=0)
    return model.eval()


@pytest.mark.parametrize("split_at", [1, 2, 3])
def test_the_cut_is_signed_so_the_decoder_is_linear(
    split_at: int,
) -> None:
    graft = SplitExitModel(transformer(), SHAPE, split_at=split_at, code_channels=2)
    assert graft.signed and graft.activation_shape == (32, 8) and graft.code_shape == (2, 4)
    assert not any(isinstance(m, nn.ReLU) for m in graft.decoder.modules())
    graft.train()  # batch norm on batch statistics: the output must reach both signs
    out = graft.decoder(torch.randn(16, 2, 4), graft.activation_shape[1:])
    assert out.shape == (16, 32, 8) and bool((out < 0).any())


def test_resnet_keeps_its_relu_decoder() -> None:
    resnet = build_model("large_resnet", SHAPE, 2, {"width": 4}, seed=0).eval()
    graft = SplitExitModel(resnet, SHAPE, split_at=2)
    assert not graft.signed and not cut_is_signed(graft.device_blocks, SHAPE)
    assert isinstance(list(graft.decoder.modules())[-1], nn.ReLU)


def test_cut_is_signed_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    assert cut_is_signed(nn.Identity(), SHAPE)
    assert not cut_is_signed(nn.ReLU(), SHAPE)
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)


def test_exit_head_macs_on_the_transformer_by_hand() -> None:
    graft = SplitExitModel(transformer(), SHAPE, split_at=1, exit_widths=(12, 24))
    # strided 3-wide convs: 32 -> 12 channels over 8 -> 4 tokens, 12 -> 24 over 4 -> 2; linear
    assert (
        module_macs(graft.exit, graft.activation_shape)
        == 4 * 12 * 32 * 3 + 2 * 24 * 12 * 3 + 24 * 2
    )
    embedding = 8 * 16 * 32  # Linear(16, 32) on each of 8 patches
    assert module_macs(graft.device_blocks, SHAPE) == embedding


def test_training_leaves_the_transformer_untouched_and_both_parts_learn() -> None:
    large = transformer(trained=True)
    before = {k: v.clone() for k, v in large.state_dict().items()}
    graft = SplitExitModel(large, SHAPE, split_at=1, code_channels=2, code_bits=4)
    x, y = toy_data(1500, seed=0)
    spec = TrainingSpec(epochs=3, batch_size=64, learning_rate=0.01)
    torch.manual_seed(0)
    train_split_exit(graft, x, y, spec, part="exit", seed=0)
    train_split_exit(graft, x, y, spec, part="bottleneck", seed=1)
    for key, value in large.state_dict().items():
        assert torch.equal(value, before[key]), key
    x_test, y_test = toy_data(600, seed=1)
    with torch.no_grad():
        large_accuracy = float(np.mean(large(torch.from_numpy(x_test)).argmax(1).numpy() == y_test))
    exit_logits, edge_logits = split_exit_logits(graft, x_test)
    assert large_accuracy > 0.9
    assert np.mean(exit_logits.argmax(1) == y_test) > 0.9
    assert np.mean(edge_logits.argmax(1) == y_test) > 0.9
