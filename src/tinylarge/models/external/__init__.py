"""Large models that users bring, registered in the model zoo like any other.

- ``onnx`` (option ``path``): an ONNX classifier run by ONNX Runtime, used as it is;
- ``hf_local`` (options ``path``, ``patch_samples``): a Hugging Face `transformers` backbone
  saved in a local directory, with a patch embedding and a class head, fine-tuned like any model;
- ``saved_model`` (option ``path``): a complete tinylarge model saved as safetensors + JSON.

A scenario names one as ``[models.large] name = "hf_local"``, ``options = {path = "DIR"}``.
Nothing is ever downloaded. The functions here tell the pipeline what it needs to know about
such a model: whether its files exist, before any work (`check_model_files`), whether it can
be trained (`is_inference_only`) and which ONNX file serves it as it is (`onnx_file_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from torch import nn

from tinylarge.models.external.hf_local import HfBackboneClassifier, hf_directory, hf_files
from tinylarge.models.external.onnx_model import OnnxFileModel
from tinylarge.models.external.saved_model import saved_files
from tinylarge.models.external.sources import existing_file
from tinylarge.models.registry import OptionValue

#: The registered names of the external models, each with the files its ``path`` names.
_SOURCES: dict[str, Callable[[str], list[Path]]] = {
    "onnx": lambda path: [existing_file("onnx", path, "an .onnx file")],
    "hf_local": lambda path: hf_files(hf_directory(path)),
    "saved_model": saved_files,
}
EXTERNAL_MODELS: tuple[str, ...] = tuple(_SOURCES)


def _source_files(name: str, options: Mapping[str, OptionValue]) -> list[Path]:
    if name not in _SOURCES:
        return []
    return _SOURCES[name](str(options.get("path", "")))


def check_model_files(name: str, options: Mapping[str, OptionValue]) -> None:
    """``ValueError`` (what is missing, what is expected) when an external model's files are
    not there; nothing for other models. Reads no file contents and loads no library."""
    _source_files(name, options)


def is_inference_only(model: nn.Module) -> bool:
    """True for a model that cannot be trained (it runs outside PyTorch): use it as it is."""
    return isinstance(model, OnnxFileModel)


def onnx_file_of(model: nn.Module) -> Path | None:
    """The user's ONNX file behind ``model`` (to serve as it is), or None."""
    return model.path if isinstance(model, OnnxFileModel) else None


__all__ = [
    "EXTERNAL_MODELS",
    "HfBackboneClassifier",
    "OnnxFileModel",
    "check_model_files",
    "is_inference_only",
    "onnx_file_of",
]
