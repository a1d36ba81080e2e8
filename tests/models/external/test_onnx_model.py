"""`onnx`: a user's ONNX file loaded through the registry equals the torch model it came from,
refuses graphs that do not fit the task, and a saved run refuses a file changed under it."""

from __future__ import annotations

import copy
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinylarge.models import build_model, count_parameters
from tinylarge.models.external import is_inference_only, onnx_file_of
from tinylarge.models.persistence import ModelManifest, load_model, save_model

SHAPE = (2, 128)
CLASSES = 5


def export_onnx(model: nn.Module, path: Path, *, dynamic: bool = True) -> Path:
    """``model`` as ONNX with input ``x`` and output ``y`` (names a user might pick)."""
    axes = {"x": {0: "n"}, "y": {0: "n"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), (torch.zeros(1, *SHAPE),), str(path), input_names=["x"],
            output_names=["y"], dynamic_axes=axes, dynamo=False,
        )  # fmt: skip
    return path


def small_net(seed: int, classes: int = CLASSES) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(256, 16), nn.ReLU(), nn.Linear(16, classes))


@pytest.fixture
def net_and_file(tmp_path: Path) -> tuple[nn.Module, Path]:
    net = small_net(0)
    return net, export_onnx(net, tmp_path / "user.onnx")


def build(path: Path | str, shape: tuple[int, ...] = SHAPE, classes: int = CLASSES) -> nn.Module:
    return build_model("onnx", shape, classes, {"path": str(path)}, seed=0)


def test_onnx_file_equals_the_torch_model_it_came_from(
    net_and_file: tuple[nn.Module, Path],
) -> None:
    net, path = net_and_file
    model = build(path)
    for batch in (1, 7, 300):
        x = torch.randn(batch, *SHAPE, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = net(x)
        got = model(x)
        assert got.shape == (batch, CLASSES) and got.dtype == torch.float32
        assert not got.requires_grad
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert is_inference_only(model) and count_parameters(model) == 0
    assert onnx_file_of(model) == path
    assert not is_inference_only(net) and onnx_file_of(net) is None


def test_copies_and_pickles_reopen_the_file(net_and_file: tuple[nn.Module, Path]) -> None:
    _, path = net_and_file
    model = build(path)
    x = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(0))
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert torch.equal(other(x), model(x))


def test_saved_run_reloads_and_refuses_a_changed_file(
    net_and_file: tuple[nn.Module, Path], tmp_path: Path
) -> None:
    _, path = net_and_file
    model = build(path)
    manifest = ModelManifest("onnx", {"path": str(path)}, SHAPE, CLASSES)
    save_model(model, tmp_path / "models" / "large", manifest)
    reloaded, _ = load_model(tmp_path / "models" / "large")
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    assert torch.equal(reloaded(x), model(x))

    export_onnx(small_net(1), path)  # the user overwrites the file with another model
    with pytest.raises(ValueError, match="has changed since this model was saved"):
        load_model(tmp_path / "models" / "large")


@pytest.mark.parametrize(
    ("shape", "classes", "expected"),
    [
        ((2, 64), CLASSES, r"not have the task's sample shape.*\[n, 2, 128\].*\(batch, 2, 64\)"),
        ((2, 8, 16), CLASSES, r"does not have the task's sample shape"),
        (SHAPE, 4, r"one logit per class.*'y': tensor\(float\) \[n, 5\].*\(batch, 4\)"),
    ],
)
def test_shapes_that_do_not_fit_the_task_are_refused(
    net_and_file: tuple[nn.Module, Path], shape: tuple[int, ...], classes: int, expected: str
) -> None:
    _, path = net_and_file
    with pytest.raises(ValueError, match=expected):
        build(path, shape, classes)


def test_fixed_batch_is_refused_with_the_export_hint(tmp_path: Path) -> None:
    path = export_onnx(small_net(0), tmp_path / "fixed.onnx", dynamic=False)
    with pytest.raises(ValueError, match=r"batch axis is fixed at 1 .*dynamic_axes"):
        build(path)


class TwoInputs(nn.Module):
    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :CLASSES] + z


class IntegerOut(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :CLASSES].round().to(torch.int64)


def test_graphs_with_other_inputs_or_types_are_refused(tmp_path: Path) -> None:
    two = tmp_path / "two.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TwoInputs(), (torch.zeros(1, *SHAPE), torch.zeros(1, CLASSES)), str(two),
            input_names=["x", "z"], dynamic_axes={"x": {0: "n"}, "z": {0: "n"}}, dynamo=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"exactly one input and one output.*'x'.*'z'"):
        build(two)
    integer = tmp_path / "int.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            IntegerOut(), (torch.zeros(1, *SHAPE),), str(integer), input_names=["x"],
            dynamic_axes={"x": {0: "n"}}, dynamo=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"must be float32.*tensor\(int64\)"):
        build(integer)


def test_missing_or_wrong_paths_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"onnx: path '.*nope.onnx': no such file; expected"):
        build(tmp_path / "nope.onnx")
    with pytest.raises(ValueError, match="is a directory"):
        build(tmp_path)
    with pytest.raises(ValueError, match="the option path is required"):
        build_model("onnx", SHAPE, CLASSES, {}, seed=0)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        build(garbage)
