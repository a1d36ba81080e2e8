"""The RF transformer as the edge serves it: exported to ONNX with a dynamic batch axis, ONNX
Runtime gives PyTorch's logits within 1e-4 at every batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tinylarge.deploy.edge_model import INPUT_NAME, OnnxPredict, TorchPredict, export_large_onnx
from tinylarge.models.registry import build_model

SHAPE = (2, 128)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TorchPredict]:
    model = build_model("rf_transformer", SHAPE, 8, {"size": "xs", "checkpoint": "none"}, seed=3)
    # weights far from the small initialisation: sharp attention and logits of order 1, so an
    # export that got the attention or a norm wrong shows well above the tolerance
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    path = export_large_onnx(model, SHAPE, tmp_path_factory.mktemp("edge") / "large.onnx")
    return path, TorchPredict(model)


def test_the_batch_axis_is_dynamic(exported: tuple[Path, TorchPredict]) -> None:
    graph = onnx.load(str(exported[0])).graph
    (frames,) = [i for i in graph.input if i.name == INPUT_NAME]
    dims = frames.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(SHAPE)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_onnx_runtime_matches_pytorch(exported: tuple[Path, TorchPredict], batch: int) -> None:
    path, torch_predict = exported
    x = np.random.default_rng(batch).normal(0.0, 1.0, (batch, *SHAPE)).astype(np.float32)
    expected = torch_predict(x)
    got = OnnxPredict(path)(x)
    assert got.shape == (batch, 8)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    assert np.abs(expected).std() > 0.5  # logits far from zero and from each other
