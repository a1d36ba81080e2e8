"""Adapting the RF transformer: probe, LoRA (peft), full fine-tuning; class and SNR heads."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tinylarge.config.training_config import TrainingSpec
from tinylarge.data import generate_radio_frames
from tinylarge.models.adaptation import (
    AdaptationSettings,
    adapt,
    fit_heads,
    predict_heads,
    probe_training_spec,
    snr_rmse_db,
)
from tinylarge.models.lora import attach_lora, merge_lora
from tinylarge.models.rf_transformer import RfTransformer, build_rf_transformer

SPEC = TrainingSpec(epochs=2, batch_size=64, learning_rate=3e-3)
CLASSES = 8
WIDTH, LAYERS, MLP = 32, 2, 4  # size "xs"
PATCH_IN = 2 * 8  # 8-sample patches: I and Q


def _model(seed: int = 0) -> RfTransformer:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_rf_transformer((2, 128), CLASSES, size="xs")


@pytest.fixture(scope="module")
def frames() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training frames with a wide SNR range (-10 to 30 dB)."""
    return generate_radio_frames(320, np.random.default_rng(0), snr_db_min=-10, snr_db_max=30)


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return generate_radio_frames(240, np.random.default_rng(1), snr_db_min=-10, snr_db_max=30)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


@dataclass
class LoraRun:
    """A LoRA-trained peft model before merging, and what it looked like before training."""

    peft_model: Any  # peft.PeftModel (peft is imported lazily)
    before: dict[str, torch.Tensor]
    x: np.ndarray


@pytest.fixture(scope="module")
def lora_run(frames: tuple[np.ndarray, np.ndarray, np.ndarray]) -> LoraRun:
    x, y, snr = frames
    settings = AdaptationSettings(method="lora", lora_rank=4, lora_alpha=8.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        peft_model = attach_lora(
            _model(), rank=4, alpha=8.0, dropout=0.0, targets=settings.lora_targets
        )
    before = _state(peft_model)
    fit_heads(peft_model.get_base_model(), x, y, snr, SPEC, settings, seed=0)
    return LoraRun(peft_model, before, x)


def test_lora_changes_only_adapters_and_head_copies(lora_run: LoraRun) -> None:
    changed = _changed(lora_run.before, _state(lora_run.peft_model))
    adapters = {k for k in lora_run.before if ".lora_" in k}
    copies = {k for k in lora_run.before if ".modules_to_save." in k}
    assert changed <= adapters | copies  # every base tensor is bit-identical
    assert {k for k in adapters if "lora_B" in k} <= changed  # B starts at 0 and learns
    assert copies <= changed
    # the frozen originals of the heads stay too
    assert not {k for k in changed if ".original_module." in k}


def test_merged_lora_equals_unmerged_and_folds_b_a(lora_run: LoraRun) -> None:
    base = lora_run.peft_model.get_base_model()
    x = torch.from_numpy(lora_run.x[:64])
    base.eval()
    with torch.no_grad():
        logits, snr = base.forward_heads(x)
        qkv: Any = base.blocks[1].attn.qkv
        scale = 8.0 / 4
        expected_w = qkv.base_layer.weight + scale * (
            qkv.lora_B["default"].weight @ qkv.lora_A["default"].weight
        )
    merged = merge_lora(copy.deepcopy(lora_run.peft_model))  # the fixture is shared
    assert type(merged) is RfTransformer
    assert not [m for m in merged.modules() if type(m).__module__.startswith("peft")]
    with torch.no_grad():
        merged_logits, merged_snr = merged.forward_heads(x)
    torch.testing.assert_close(merged_logits, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(merged_snr, snr, atol=1e-4, rtol=0)  # dB: ~1e-5 relative
    merged_qkv: Any = merged.blocks[1].attn.qkv  # type: ignore[union-attr]
    torch.testing.assert_close(merged_qkv.weight, expected_w, atol=1e-6, rtol=0)


def test_probe_changes_only_the_heads_and_leaves_the_input_alone(
    frames: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x, y, snr = frames
    model = _model()
    before = _state(model)
    result = adapt(model, x, y, snr, SPEC, AdaptationSettings(method="probe"), seed=0)
    assert not _changed(before, _state(model))  # adapt works on a copy
    assert _changed(before, _state(result.model)) == {
        "head.linear.weight",
        "head.linear.bias",
        "snr_head.weight",
        "snr_head.bias",
    }
    assert type(result.model) is RfTransformer and not result.model.training


def test_full_changes_the_encoder_but_not_the_pretraining_parts(
    frames: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x, y, _ = frames
    model = _model()
    before = _state(model)
    result = adapt(model, x, y, None, SPEC, AdaptationSettings(method="full"), seed=0)
    changed = _changed(before, _state(result.model))
    assert {k for k in before if k.startswith("blocks.") and k != "blocks.0.mask_token"} <= changed
    # without SNR targets the SNR head does not train; reconstruction is pretraining only
    assert not changed & {"snr_head.weight", "snr_head.bias", "reconstruction.weight",
                          "blocks.0.mask_token"}  # fmt: skip
    assert all(p.requires_grad for p in result.model.parameters())


def test_snr_head_learns(
    frames: tuple[np.ndarray, np.ndarray, np.ndarray],
    held_out: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x, y, snr = frames
    x_test, _, snr_test = held_out
    mean_only = snr_rmse_db(np.full_like(snr_test, snr.mean()), snr_test)  # ~11.5 dB
    untrained = snr_rmse_db(predict_heads(_model(), x_test)[1], snr_test)
    probe = adapt(_model(), x, y, snr, SPEC, AdaptationSettings(method="probe"), seed=0)
    probe_rmse = snr_rmse_db(predict_heads(probe.model, x_test)[1], snr_test)
    assert probe_rmse < 0.9 * mean_only < untrained
    spec = TrainingSpec(epochs=10, batch_size=32, learning_rate=1e-2, val_fraction=0.0)
    settings = AdaptationSettings(method="full", snr_loss_weight=1.0)
    full = adapt(_model(), x, y, snr, spec, settings, seed=0)
    full_rmse = snr_rmse_db(predict_heads(full.model, x_test)[1], snr_test)
    assert full_rmse < 0.85 * mean_only  # it starts as the mean (measured: 0.72)


def test_onnx_export_of_adapted_model_matches_pytorch(
    frames: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from tinylarge.deploy.edge_model import OnnxPredict, export_large_onnx

    x, y, snr = frames
    result = adapt(_model(), x, y, snr, SPEC, AdaptationSettings(method="lora"), seed=0)
    path = export_large_onnx(result.model, (2, 128), tmp_path / "adapted.onnx")
    onnx_logits = OnnxPredict(path)(x[:37])
    torch_logits, _ = predict_heads(result.model, x[:37])
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4, rtol=0)


def test_trainable_parameter_counts(frames: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, y, snr = frames
    heads = (WIDTH * CLASSES + CLASSES) + (WIDTH + 1)
    rank = 2
    lora_per_layer = rank * (
        (WIDTH + 3 * WIDTH) + (WIDTH + WIDTH) + (WIDTH + MLP * WIDTH) + (MLP * WIDTH + WIDTH)
    )
    adapters = LAYERS * lora_per_layer + rank * (PATCH_IN + WIDTH)  # "proj": patch embedding too
    total = sum(p.numel() for p in _model().parameters())
    pretraining_only = (WIDTH * PATCH_IN + PATCH_IN) + WIDTH  # reconstruction, mask token
    spec = TrainingSpec(epochs=1, batch_size=64)
    cases = {
        "probe": (snr, heads),
        "lora": (snr, adapters + heads),
        "full": (snr, total - pretraining_only),
    }
    for method, (targets, expected) in cases.items():
        settings = AdaptationSettings(method=method, lora_rank=rank)  # type: ignore[arg-type]
        result = adapt(_model(), x, y, targets, spec, settings, seed=0)
        assert (method, result.trainable_parameters) == (method, expected)
        assert result.total_parameters == total
    settings = AdaptationSettings(method="lora", lora_rank=rank, lora_targets=("attn.proj",))
    result = adapt(_model(), x, y, None, spec, settings, seed=0)  # no SNR head, attention only
    assert result.trainable_parameters == LAYERS * rank * 2 * WIDTH + WIDTH * CLASSES + CLASSES


def test_seeded_runs_are_reproducible_and_leave_global_rng_alone(
    frames: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x, y, snr = frames
    settings = AdaptationSettings(method="lora", lora_dropout=0.1)
    rng_state = torch.get_rng_state()
    runs = [adapt(_model(), x, y, snr, SPEC, settings, seed=s).model for s in (5, 5, 6)]
    assert torch.equal(torch.get_rng_state(), rng_state)
    first, again, other = (_state(m) for m in runs)
    assert not _changed(first, again)
    assert _changed(first, other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "adapter"}, "method 'adapter' is not one of probe, lora, full"),
        ({"lora_rank": 0}, "lora_rank must be >= 1, got 0"),
        ({"lora_alpha": 0.0}, "lora_alpha must be > 0"),
        ({"lora_dropout": 1.0}, r"lora_dropout must be in \[0, 1\)"),
        ({"lora_targets": ()}, "lora_targets must name at least one layer"),
        ({"snr_loss_weight": -1.0}, "snr_loss_weight must be >= 0"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdaptationSettings(**kwargs)  # type: ignore[arg-type]


def test_unknown_lora_target_lists_the_layers(
    frames: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x, y, snr = frames
    settings = AdaptationSettings(method="lora", lora_targets=("qkv", "out_proj"))
    with pytest.raises(ValueError, match=r"'out_proj' matches no .*available: fc1, fc2, proj, qkv"):
        adapt(_model(), x, y, snr, SPEC, settings, seed=0)
    with pytest.raises(ValueError, match=r"snr_db must have shape \(320,\)"):
        adapt(_model(), x, y, snr[:10], SPEC, AdaptationSettings(), seed=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 8\)"):
        adapt(_model(), x, y + 1, snr, SPEC, AdaptationSettings(), seed=0)


def test_probe_spec_drops_a_validation_split_smaller_than_the_classes() -> None:
    spec = TrainingSpec(epochs=5, val_fraction=0.1, patience_epochs=5)
    few = probe_training_spec(spec, n_frames=8 * 10, num_classes=8, epochs=100)
    assert (few.val_fraction, few.epochs, few.patience_epochs) == (0.0, 100, 10)
    many = probe_training_spec(spec, n_frames=8 * 100, num_classes=8, epochs=100)
    assert many.val_fraction == 0.1


def test_snr_rmse_and_predict_heads(frames: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    assert snr_rmse_db([0.0, 3.0, -4.0], [0.0, 0.0, 0.0]) == pytest.approx(np.sqrt(25 / 3))
    with pytest.raises(ValueError, match="equal, non-empty shapes"):
        snr_rmse_db([1.0, 2.0], [1.0])
    model, x = _model(), frames[0][:50]
    logits, snr = predict_heads(model, x, batch_size=7)
    with torch.no_grad():
        ref_logits, ref_snr = model.eval().forward_heads(torch.from_numpy(x))
    assert logits.dtype == np.float32 and logits.shape == (50, CLASSES) and snr.shape == (50,)
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-6)
    np.testing.assert_allclose(snr, ref_snr.numpy(), atol=1e-6)
