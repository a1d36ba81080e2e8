"""A scenario naming a model users bring is accepted when its files are there, and refused before
any work, naming the missing file, when they are not."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from tinylarge.config import load_scenario
from tinylarge.models.external import check_model_files
from tinylarge.models.persistence import ModelManifest, save_model
from tinylarge.models.registry import build_model
from tinylarge.sim.stages import check_scenario


def scenario_file(tmp_path: Path, name: str, path: Path | str) -> Path:
    file = tmp_path / "scenario.toml"
    file.write_text(f'[models.large]\nname = "{name}"\noptions = {{ path = "{path}" }}\n', "utf-8")
    return file


@pytest.fixture
def sources(tmp_path: Path, bert_dir: Path) -> dict[str, Path]:
    """One saved model of each format."""
    onnx = tmp_path / "user.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            nn.Sequential(nn.Flatten(), nn.Linear(256, 8)), (torch.zeros(1, 2, 128),), str(onnx),
            dynamic_axes={"input": {0: "n"}}, input_names=["input"], dynamo=False,
        )  # fmt: skip
    options = {"size": "xs", "checkpoint": "none"}
    model = build_model("rf_transformer", (2, 128), 8, options, seed=0)
    save_model(model, tmp_path / "mine", ModelManifest("rf_transformer", options, (2, 128), 8))
    return {"onnx": onnx, "hf_local": bert_dir, "saved_model": tmp_path / "mine"}


@pytest.mark.parametrize("name", ["onnx", "hf_local", "saved_model"])
def test_scenarios_with_existing_files_are_accepted(
    name: str, sources: dict[str, Path], tmp_path: Path
) -> None:
    scenario = load_scenario(scenario_file(tmp_path, name, sources[name]))
    assert scenario.models.large.name == name
    check_scenario(scenario)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("onnx", r"models\.large: onnx: path '.*missing': no such file; expected an \.onnx file"),
        ("hf_local", r"models\.large: hf_local: path '.*missing' is not an existing local dir"),
        ("saved_model", r"models\.large: saved_model: path '.*missing': no .*missing\.json"),
    ],
)
def test_missing_files_are_reported_before_any_work(
    name: str, message: str, tmp_path: Path
) -> None:
    scenario = load_scenario(scenario_file(tmp_path, name, tmp_path / "missing"))
    with pytest.raises(ValueError, match=message):
        check_scenario(scenario)


def test_models_of_the_zoo_have_no_files_to_check() -> None:
    check_model_files("large_resnet", {"width": 24})
    check_model_files("rf_transformer", {"size": "xs"})
