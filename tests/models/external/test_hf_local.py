"""`hf_local`: tiny random BERT and Llama backbones saved by ``save_pretrained`` load through the
registry without the network, train, round-trip through a run directory, and anything that is
not a local directory (Hub ids included) is refused before `transformers` is called."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import tinylarge.models.external.hf_local as hf_module
from tinylarge.config.training_config import TrainingSpec
from tinylarge.models import build_model
from tinylarge.models.external import HfBackboneClassifier, is_inference_only
from tinylarge.models.persistence import ModelManifest, load_model, save_model
from tinylarge.models.training import train

SHAPE = (2, 128)
CLASSES = 5


def build(path: Path | str, *, seed: int = 0, **options: int) -> HfBackboneClassifier:
    model = build_model("hf_local", SHAPE, CLASSES, {"path": str(path), **options}, seed=seed)
    assert isinstance(model, HfBackboneClassifier)
    return model


def frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backbone", ["bert_dir", "llama_dir"])
def test_loads_offline_with_the_saved_weights_and_is_deterministic(
    backbone: str, request: pytest.FixtureRequest, no_network: list[str]
) -> None:
    from transformers import AutoModel

    directory: Path = request.getfixturevalue(backbone)
    before = os.environ.get("HF_HUB_OFFLINE")
    model, again, other = build(directory, seed=3), build(directory, seed=3), build(directory)
    assert os.environ.get("HF_HUB_OFFLINE") == before  # set only while loading
    assert no_network == []
    saved = AutoModel.from_pretrained(directory, local_files_only=True).state_dict()
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    x = frames(3)
    with torch.no_grad():
        out = model.eval()(x)
        assert out.shape == (3, CLASSES) and torch.isfinite(out).all()
        assert torch.equal(out, again.eval()(x))
        assert not torch.allclose(out, other.eval()(x))  # the seed draws the new layers
        # Frame i's logits do not depend on the other frames of the batch.
        torch.testing.assert_close(model(x[1:2]), out[1:2], atol=1e-5, rtol=1e-5)
    assert not is_inference_only(model)


@pytest.mark.parametrize("backbone", ["bert_dir", "llama_dir"])
def test_gradients_reach_every_part(backbone: str, request: pytest.FixtureRequest) -> None:
    model = build(request.getfixturevalue(backbone)).train()
    loss = torch.nn.functional.cross_entropy(model(frames(4)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    first = [n for n, _ in model.backbone.named_parameters() if ".0." in n]  # first layer
    assert first
    for name in ["embed.weight", "norm.weight", "head.weight"] + [f"backbone.{n}" for n in first]:
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_trains_and_round_trips_through_a_run_directory(bert_dir: Path, tmp_path: Path) -> None:
    model = build(bert_dir)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, *SHAPE)).astype(np.float32)
    y = rng.integers(0, CLASSES, 64)
    spec = TrainingSpec(epochs=2, batch_size=16, learning_rate=1e-3, val_fraction=0.25)
    train(model, x, y, spec, seed=0)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, initial[k])]
    assert any(k.startswith("backbone.encoder.") for k in changed)
    assert {"embed.weight", "head.weight"} <= set(changed)

    manifest = ModelManifest("hf_local", {"path": str(bert_dir)}, SHAPE, CLASSES)
    save_model(model, tmp_path / "models" / "large", manifest)
    reloaded, _ = load_model(tmp_path / "models" / "large")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name
    with torch.no_grad():
        assert torch.equal(model.eval()(frames(5)), reloaded(frames(5)))


@pytest.mark.parametrize("hub_id", ["bert-base-uncased", "org/name", "meta-llama/Llama-3.2-1B"])
def test_hub_ids_are_refused_before_transformers_is_called(
    hub_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no local directory of that name

    def must_not_load(directory: Path) -> None:
        raise AssertionError("transformers was called")

    monkeypatch.setattr(hf_module, "load_backbone", must_not_load)
    with pytest.raises(ValueError) as error:
        build(hub_id)
    assert str(error.value) == (
        f"hf_local: path {hub_id!r} looks like a Hugging Face Hub id, not an existing local "
        "directory; tinylarge never downloads models; save it with "
        "`model.save_pretrained(DIR)` and pass DIR"
    )
    assert no_network == []


def test_paths_that_are_not_saved_models_say_what_to_do(tmp_path: Path) -> None:
    never = "tinylarge never downloads models"
    with pytest.raises(ValueError, match=rf"'\./missing' is not an existing local dir.*; {never}"):
        build("./missing")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=rf"is a file, not a directory; {never}"):
        build(tmp_path / "weights.bin")
    saved_by = "has no config.json, so it is not a directory written by `save_pretrained`"
    with pytest.raises(ValueError, match=saved_by):
        build(tmp_path)
    with pytest.raises(ValueError, match="the option path is required"):
        build_model("hf_local", SHAPE, CLASSES, {}, seed=0)


def test_backbones_that_cannot_read_patches_are_refused(tmp_path: Path) -> None:
    from transformers import T5Config, T5Model, ViTConfig, ViTModel

    vit = ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        image_size=8, patch_size=4,
    )  # fmt: skip
    ViTModel(vit).save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match=r"ViTModel .* takes no inputs_embeds"):
        build(tmp_path / "vit")
    t5 = T5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, vocab_size=16)
    T5Model(t5).save_pretrained(tmp_path / "t5")
    with pytest.raises(ValueError, match=r"T5Config is an encoder-decoder model; hf_local takes"):
        build(tmp_path / "t5")


def test_frames_that_do_not_fit_the_backbone_are_refused(tmp_path: Path, bert_dir: Path) -> None:
    from transformers import BertConfig, BertModel

    short = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        vocab_size=16, max_position_embeddings=8,
    )  # fmt: skip
    BertModel(short).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"16 patches per frame exceed the 8 positions"):
        build(tmp_path)
    build(tmp_path, patch_samples=16)  # 8 patches fit
    with pytest.raises(ValueError, match=r"patch_samples \(12\) must divide the frame length"):
        build(bert_dir, patch_samples=12)
