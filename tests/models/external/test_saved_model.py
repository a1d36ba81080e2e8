"""`saved_model`: an `rf_transformer` (size xs) saved by `save_model` and as a checkpoint directory
loads back bit for bit through the registry; other heads, shapes and damaged files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tinylarge.models import build_model
from tinylarge.models.checkpoints import save_checkpoint
from tinylarge.models.external import is_inference_only
from tinylarge.models.persistence import ModelManifest, save_model
from tinylarge.models.rf_transformer import RfTransformer

SHAPE = (2, 128)
CLASSES = 8


def trained_elsewhere() -> RfTransformer:
    """An xs transformer with every weight moved off its initialisation (so a load that missed
    a tensor, or kept a fresh head, shows)."""
    model = build_model(
        "rf_transformer", SHAPE, CLASSES, {"size": "xs", "checkpoint": "none"}, seed=11
    )
    assert isinstance(model, RfTransformer)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    return model


def assert_identical(loaded: nn.Module, original: nn.Module) -> None:
    assert type(loaded) is type(original)
    own, theirs = original.state_dict(), loaded.state_dict()
    assert own.keys() == theirs.keys()
    for name, tensor in own.items():
        assert torch.equal(theirs[name], tensor), name
    x = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), original.eval()(x))


def load(path: Path | str, shape: tuple[int, ...] = SHAPE, classes: int = CLASSES) -> nn.Module:
    return build_model("saved_model", shape, classes, {"path": str(path)}, seed=99)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[RfTransformer, Path]:
    """``trained_elsewhere()`` saved by `save_model`; its manifest names a checkpoint directory
    that no longer exists (rebuilding must not try to load it)."""
    model = trained_elsewhere()
    options = {"size": "xs", "checkpoint": str(tmp_path / "gone")}
    save_model(model, tmp_path / "mine", ModelManifest("rf_transformer", options, SHAPE, CLASSES))
    return model, tmp_path / "mine"


@pytest.mark.parametrize("suffix", ["", ".json", ".safetensors"])
def test_save_model_files_load_bit_for_bit(saved: tuple[RfTransformer, Path], suffix: str) -> None:
    model, base = saved
    loaded = load(f"{base}{suffix}")
    assert loaded.training and not is_inference_only(loaded)
    assert_identical(loaded, model)


def test_checkpoint_directory_loads_bit_for_bit(tmp_path: Path) -> None:
    model = trained_elsewhere()
    architecture = {
        "name": "rf_transformer", "options": {"size": "xs"}, "input_shape": list(SHAPE),
        "num_classes": CLASSES,
    }  # fmt: skip
    save_checkpoint(tmp_path / "ckpt", model, architecture, {"steps": 0})
    assert_identical(load(tmp_path / "ckpt"), model)


def test_another_head_or_frame_is_refused(
    saved: tuple[RfTransformer, Path], tmp_path: Path
) -> None:
    model, base = saved
    with pytest.raises(ValueError, match=r"has a class head of 8 classes; the task has 5$"):
        load(base, classes=5)
    with pytest.raises(ValueError, match=r"samples of shape \(2, 128\); the task's are \(2, 64\)"):
        load(base, shape=(2, 64))
    architecture = {
        "name": "rf_transformer", "options": {"size": "xs"}, "input_shape": list(SHAPE),
        "num_classes": CLASSES,
    }  # fmt: skip
    save_checkpoint(tmp_path / "ckpt", model, architecture, {})
    with pytest.raises(ValueError, match=r"the task has 5; to fine-tune its encoder with a new"):
        load(tmp_path / "ckpt", classes=5)


def test_damaged_or_missing_files_are_refused(
    saved: tuple[RfTransformer, Path], tmp_path: Path
) -> None:
    _, base = saved
    weights = base.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its manifest's SHA-256"):
        load(base)
    weights.unlink()
    with pytest.raises(ValueError, match=r"saved_model: path '.*mine': no .*mine.safetensors"):
        load(base)
    with pytest.raises(ValueError, match=r"no .*config.json and no .*model.safetensors"):
        load(tmp_path)
