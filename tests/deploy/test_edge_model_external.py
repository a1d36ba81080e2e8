"""The edge serves the models users bring: the run's large model, reloaded from its run directory
as `tinylarge serve` does, goes through `export_large_onnx` and `OnnxPredict` and gives the
PyTorch model's logits (a user's ONNX file is served as that very file)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinylarge.deploy.edge_model import OnnxPredict, TorchPredict, export_large_onnx
from tinylarge.models.persistence import ModelManifest, load_model, save_model
from tinylarge.models.registry import OptionValue, build_model

SHAPE = (2, 128)
CLASSES = 6


def served(
    name: str, options: dict[str, OptionValue], run_dir: Path
) -> tuple[nn.Module, OnnxPredict, Path]:
    """Build ``name`` as a run would, save it in ``run_dir/models/large``, reload it as
    `RunArtefacts.model` does and export it as `build_edge` does."""
    model = build_model(name, SHAPE, CLASSES, options, seed=0)
    save_model(model, run_dir / "models" / "large", ModelManifest(name, options, SHAPE, CLASSES))
    large, _ = load_model(run_dir / "models" / "large")
    path = export_large_onnx(large, SHAPE, run_dir / "edge" / "large.onnx")
    return large, OnnxPredict(path), path


def assert_serves_the_same(large: nn.Module, predict: OnnxPredict, atol: float) -> float:
    worst = 0.0
    for batch in (1, 5, 33):
        x = np.random.default_rng(batch).standard_normal((batch, *SHAPE)).astype(np.float32)
        got, want = predict(x), TorchPredict(large)(x)
        assert got.shape == want.shape == (batch, CLASSES)
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst <= atol
    return worst


def save_backbone(kind: str, directory: Path) -> Path:
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

    torch.manual_seed(0)
    size = {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "vocab_size": 16,
    }  # fmt: skip
    if kind == "bert":
        BertModel(BertConfig(**size)).save_pretrained(directory)
    else:
        LlamaModel(LlamaConfig(**size, num_key_value_heads=2)).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_hf_local_export_equals_pytorch(kind: str, tmp_path: Path) -> None:
    backbone = save_backbone(kind, tmp_path / kind)
    large, predict, _ = served("hf_local", {"path": str(backbone)}, tmp_path / "run")
    assert_serves_the_same(large, predict, atol=1e-4)


def test_saved_model_export_equals_pytorch(tmp_path: Path) -> None:
    options: dict[str, OptionValue] = {"size": "xs", "checkpoint": "none"}
    trained = build_model("rf_transformer", SHAPE, CLASSES, options, seed=3)
    save_model(trained, tmp_path / "mine", ModelManifest("rf_transformer", options, SHAPE, CLASSES))
    large, predict, _ = served("saved_model", {"path": str(tmp_path / "mine")}, tmp_path / "run")
    assert_serves_the_same(large, predict, atol=1e-4)


def test_a_users_onnx_file_is_served_as_it_is(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 32), nn.Tanh(), nn.Linear(32, CLASSES))
    source = tmp_path / "user.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(), (torch.zeros(1, *SHAPE),), str(source), input_names=["iq"],
            output_names=["scores"], dynamic_axes={"iq": {0: "b"}, "scores": {0: "b"}},
            dynamo=False,
        )  # fmt: skip
    large, predict, path = served("onnx", {"path": str(source)}, tmp_path / "run")
    assert path.read_bytes() == source.read_bytes()
    assert (predict.input_name, predict.output_name) == ("iq", "scores")
    assert_serves_the_same(large, predict, atol=0.0)  # the same file in the same runtime
    x = np.random.default_rng(0).standard_normal((9, *SHAPE)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(predict(x), expected, atol=1e-5)
