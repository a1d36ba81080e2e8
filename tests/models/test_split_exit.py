"""The bottleneck + exit graft: the large model stays frozen, the code is what goes on air,
both parts learn, and a cached graft gives identical outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tinylarge.config.training_config import TrainingSpec
from tinylarge.integrate.inference.split_computing import module_macs, quantize_activation
from tinylarge.models.blocks import BlockModel
from tinylarge.models.cache import ModelCache
from tinylarge.models.persistence import ModelManifest
from tinylarge.models.registry import build_model
from tinylarge.models.split_exit import (
    SplitExitModel,
    quantize_ste,
    split_exit_logits,
    train_split_exit,
)
from tinylarge.models.training import train

SHAPE = (2, 32)


def toy_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 when channel 0 carries a positive offset: separable after any conv stem."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 1.0, (n, *SHAPE)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 1.5, -1.5)[:, None]
    return x, y.astype(np.int64)


def large_model(*, trained: bool = False) -> BlockModel:
    model = build_model("large_resnet", SHAPE, 2, {"width": 4}, seed=0)
    assert isinstance(model, BlockModel)
    if trained:
        x, y = toy_data(2000, seed=5)
        train(model, x, y, TrainingSpec(epochs=3, batch_size=64, learning_rate=0.01), seed=0)
    return model.eval()


def test_quantize_ste_sends_the_on_air_values_and_passes_gradients() -> None:
    h = torch.randn(5, 4, 8, requires_grad=True)
    q = quantize_ste(h, 4)
    torch.testing.assert_close(q.detach(), quantize_activation(h.detach(), 4))
    q.sum().backward()  # type: ignore[no-untyped-call]
    assert h.grad is not None
    torch.testing.assert_close(h.grad, torch.ones_like(h))


def test_training_leaves_the_large_model_untouched_and_both_parts_learn() -> None:
    large = large_model(trained=True)
    before = {k: v.clone() for k, v in large.state_dict().items()}
    graft = SplitExitModel(large, SHAPE, split_at=1, code_channels=2, code_bits=4)
    frozen_before = {k: v.clone() for k, v in graft.edge_blocks.state_dict().items()}
    x, y = toy_data(2000, seed=0)
    spec = TrainingSpec(epochs=4, batch_size=64, learning_rate=0.01, val_fraction=0.1)
    torch.manual_seed(0)
    train_split_exit(graft, x, y, spec, part="exit", seed=0)
    train_split_exit(graft, x, y, spec, part="bottleneck", seed=1)
    for key, value in large.state_dict().items():  # the caller's model: bit for bit
        assert torch.equal(value, before[key]), key
    for key, value in graft.edge_blocks.state_dict().items():  # incl. batch-norm statistics
        assert torch.equal(value, frozen_before[key]), key
    x_test, y_test = toy_data(1000, seed=1)
    exit_logits, edge_logits = split_exit_logits(graft, x_test)
    assert np.mean(exit_logits.argmax(1) == y_test) > 0.9
    assert np.mean(edge_logits.argmax(1) == y_test) > 0.9
    # the edge's logits are those of the quantized code through decoder and frozen blocks
    with torch.no_grad():
        manual = graft.final_logits(torch.from_numpy(x_test[:7]))
    np.testing.assert_allclose(edge_logits[:7], manual.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="part"):
        train_split_exit(graft, x, y, spec, part="both", seed=0)  # type: ignore[arg-type]


def test_shapes_device_macs_and_arguments() -> None:
    large = large_model()
    graft = SplitExitModel(large, SHAPE, split_at=1, code_channels=3, code_bits=2)
    # stem: conv 2->4, kernel 7 on 32 samples, then max-pool to 16
    assert graft.activation_shape == (4, 16)
    assert graft.code_shape == (3, 8) and graft.code_elements == 24
    assert module_macs(graft.device_blocks, SHAPE) == 4 * 32 * 2 * 7
    assert module_macs(graft.encoder, graft.activation_shape) == 3 * 8 * 4 * 3
    with pytest.raises(ValueError, match="split_at"):
        SplitExitModel(large, SHAPE, split_at=0)
    with pytest.raises(ValueError, match="code_bits"):
        SplitExitModel(large, SHAPE, code_bits=9)
    with pytest.raises(ValueError, match="exit width"):
        SplitExitModel(large, SHAPE, exit_widths=())


def test_cached_graft_gives_identical_outputs(tmp_path: Path) -> None:
    large = large_model()
    torch.manual_seed(3)
    graft = SplitExitModel(large, SHAPE, code_channels=2)
    x, y = toy_data(300, seed=2)
    train_split_exit(graft, x, y, TrainingSpec(epochs=1, batch_size=64), part="exit", seed=0)
    cache = ModelCache(tmp_path)
    manifest = ModelManifest("split_exit", {"code_channels": 2}, SHAPE, 2)
    cache.put("graft", graft, manifest)
    loaded, _ = cache.get("graft", lambda _m: SplitExitModel(large, SHAPE, code_channels=2)) or (
        None,
        None,
    )
    assert isinstance(loaded, SplitExitModel)
    for a, b in zip(split_exit_logits(graft, x), split_exit_logits(loaded, x), strict=True):
        np.testing.assert_array_equal(a, b)
