"""Quantization-aware fine-tuning: it trains through fake quantization and hands back a plain
folded float model that quantizes at least as well as post-training quantization."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tinylarge.config import TrainingSpec
from tinylarge.models.registry import build_model
from tinylarge.models.training import train
from tinylarge.tiny.qat import quantization_aware_finetune
from tinylarge.tiny.quantize import quantize_model
from tinylarge.tiny.runtime import run


def _int8_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    tiny = quantize_model(model, x[:256], ("a", "b", "c", "d"))
    out = run(tiny, tiny.quantize_input(x))
    return float(np.mean(out.argmax(1) == y))


def test_qat_returns_a_folded_float_model_that_quantizes_well() -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 1600)
    x = (centers[y] + 0.9 * rng.standard_normal((1600, 1, 8, 8))).astype(np.float32)
    model = build_model("tiny_cnn", (1, 8, 8), 4, {"width": 3}, seed=0)
    train(model, x, y, TrainingSpec(epochs=4, batch_size=64, val_fraction=0.0), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = TrainingSpec(epochs=2, batch_size=64, learning_rate=1e-3, val_fraction=0.0)
    folded, report = quantization_aware_finetune(model, x, y, spec, calibration_x=x[:256], seed=0)
    assert report.epochs_run == 2
    for key, value in model.state_dict().items():  # the input model is left alone
        assert torch.equal(value, before[key]), key
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    code = folded.code
    assert "fake_quantize" not in code and "parametrizations" not in str(folded.state_dict().keys())
    ptq, qat = _int8_accuracy(model, x, y), _int8_accuracy(folded, x, y)
    assert qat > 0.6  # far above chance (0.25): the fine-tuned weights still classify
    assert qat >= ptq - 0.02
