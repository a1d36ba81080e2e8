"""The RF foundation transformer: layout, sizes, checkpoints, and the checkpoints we ship."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tinylarge.models import build_model
from tinylarge.models.checkpoints import (
    builtin_checkpoint,
    load_checkpoint_weights,
    save_checkpoint,
    sha256_of,
)
from tinylarge.models.pretraining.loop import HeldOut, PretrainConfig
from tinylarge.models.rf_transformer import (
    RF_TRANSFORMER_SIZES,
    RfTransformer,
    build_rf_transformer,
    parameter_count,
    patchify,
)

SHIPPED = ("rf_transformer_xs", "rf_transformer_s")


def _expected_parameters(size: str, tokens: int = 16, patch: int = 8, classes: int = 8) -> int:
    """Independent count: embedding + position + mask token, per layer 2 LayerNorms, qkv,
    proj, fc1, fc2; final LayerNorm, class head, SNR head, reconstruction head."""
    s = RF_TRANSFORMER_SIZES[size]
    d, h = s.width, s.mlp_ratio * s.width
    embedding = (2 * patch + 1) * d + tokens * d + d
    layer = 2 * 2 * d + (d + 1) * 3 * d + (d + 1) * d + (d + 1) * h + (h + 1) * d
    heads = 2 * d + (d + 1) * classes + (d + 1) + (d + 1) * 2 * patch
    return embedding + s.layers * layer + heads


@pytest.mark.parametrize("size", ["xs", "s", "m"])
def test_parameter_counts_match_an_independent_count(size: str) -> None:
    assert parameter_count(size) == _expected_parameters(size)


def test_the_ladder_spans_about_1m_to_100m_parameters() -> None:
    assert 0.7e6 < _expected_parameters("s") < 1.2e6
    assert 70e6 < _expected_parameters("xl") < 100e6


def test_patches_are_i_then_q_samples_of_consecutive_windows() -> None:
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(1, 2, 16)
    patches = patchify(x, 4)
    assert patches.shape == (1, 4, 8)
    # patch 1 holds I samples 4..7 then Q samples 4..7 (Q is offset by 16 here)
    assert patches[0, 1].tolist() == [4, 5, 6, 7, 20, 21, 22, 23]


def test_blocks_keep_channel_first_tokens_and_forward_equals_the_heads() -> None:
    model = build_rf_transformer((2, 128), 5, size="xs").eval()
    x = torch.randn(3, 2, 128, generator=torch.Generator().manual_seed(0))
    for k in range(len(model.blocks) + 1):
        h = model.forward_until(x, k)
        assert h.shape == ((3, 2, 128) if k == 0 else (3, 32, 16))
        torch.testing.assert_close(model.forward_from(h, k), model(x))
    logits, snr = model.forward_heads(x)
    torch.testing.assert_close(logits, model(x))
    assert snr.shape == (3,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": "huge"}, "unknown size 'huge'; sizes: xs, s, m, l, xl"),
        ({"size": "xs", "patch_samples": 7}, "patch_samples (7) must divide the frame length"),
        ({"size": "xs", "checkpoint": "/no/such/dir"}, "is not 'builtin', 'none' or a directory"),
    ],
)
def test_bad_options_say_what_is_allowed(options: dict[str, object], message: str) -> None:
    options = {"checkpoint": "none", **options}
    with pytest.raises(ValueError, match=None) as error:
        build_model("rf_transformer", (2, 128), 8, options, seed=0)
    assert message in str(error.value)


def test_a_checkpoint_loads_into_the_encoder_and_leaves_the_task_heads(tmp_path: Path) -> None:
    source = build_rf_transformer((2, 128), 14, size="xs")
    arch = {"name": "rf_transformer", "options": {"size": "xs", "patch_samples": 8},
            "input_shape": [2, 128], "num_classes": 14}  # fmt: skip
    save_checkpoint(tmp_path, source, arch, {"steps": 0})
    model = build_model("rf_transformer", (2, 128), 8, {"size": "xs", "checkpoint": str(tmp_path)},
                        seed=1)  # fmt: skip
    assert isinstance(model, RfTransformer)
    theirs = source.state_dict()
    for name, tensor in model.state_dict().items():
        if name.startswith(("head.linear.", "snr_head.")):
            continue
        torch.testing.assert_close(tensor, theirs[name], rtol=0, atol=0)
    assert model.head.linear.weight.shape == (8, 32)


def test_a_checkpoint_of_another_size_is_refused_with_its_architecture(tmp_path: Path) -> None:
    source = build_rf_transformer((2, 128), 8, size="xs")
    arch = {"name": "rf_transformer", "options": {"size": "xs"}, "input_shape": [2, 128]}
    save_checkpoint(tmp_path, source, arch, {})
    with pytest.raises(ValueError, match="does not fit this model"):
        build_model("rf_transformer", (2, 128), 8, {"size": "s", "checkpoint": str(tmp_path)},
                    seed=0)  # fmt: skip


def test_a_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    source = build_rf_transformer((2, 128), 8, size="xs")
    save_checkpoint(tmp_path, source, {"name": "rf_transformer"}, {})
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load_checkpoint_weights(tmp_path)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoints_match_their_hash_and_recorded_loss(name: str) -> None:
    """Each shipped checkpoint: weights match the recorded SHA-256, it was made by the
    documented command with seed 0, and its held-out reconstruction loss, measured again here
    on the same held-out frames, is the recorded one and far below predicting zeros."""
    directory = builtin_checkpoint(name)
    document = json.loads((directory / "config.json").read_text("utf-8"))
    assert sha256_of(directory / "model.safetensors") == document["weights_sha256"]
    pretraining = document["pretraining"]
    size = document["architecture"]["options"]["size"]
    assert pretraining["command"].startswith(f"tinylarge pretrain --size {size} ")
    assert pretraining["seed"] == 0
    config = PretrainConfig(
        size=size, steps=pretraining["steps"], batch_size=pretraining["batch_size"],
        mask_ratio=pretraining["mask_ratio"], eval_frames=pretraining["eval_frames"], seed=0,
    )  # fmt: skip
    state, _ = load_checkpoint_weights(directory)
    model = build_rf_transformer((2, 128), len(config.world.classes), size=size)
    model.load_state_dict(state)
    held_out = HeldOut.make(config, model.tokens)
    loss = held_out.loss(model, torch.device("cpu"))
    assert loss == pytest.approx(pretraining["final_reconstruction_loss"], rel=1e-4)
    assert held_out.zero_loss == pytest.approx(pretraining["zero_prediction_loss"], rel=1e-6)
    assert loss < 0.8 * held_out.zero_loss
    assert document["parameters"] == sum(int(np.prod(t.shape)) for t in state.values())
