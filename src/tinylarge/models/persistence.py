"""Save and load models: weights in safetensors plus a JSON manifest naming the architecture.

``save_model(model, path)`` writes ``path.safetensors`` and ``path.json``; ``load_model(path)``
rebuilds the architecture from the registry and loads the weights strictly, so a round trip is
exact (every parameter and buffer, bit for bit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import tinylarge
from tinylarge.models.registry import OptionValue, build_model, count_parameters

MANIFEST_FORMAT = "tinylarge.model/1"


@dataclass(frozen=True)
class ModelManifest:
    """What is needed to rebuild a model: registered name, options and shapes."""

    name: str
    options: dict[str, OptionValue]
    input_shape: tuple[int, ...]
    num_classes: int

    def build(self, *, seed: int = 0) -> nn.Module:
        return build_model(self.name, self.input_shape, self.num_classes, self.options, seed=seed)


def _paths(path: str | Path) -> tuple[Path, Path]:
    base = Path(path)
    base = base.with_suffix("") if base.suffix in (".safetensors", ".json") else base
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def save_model(
    model: nn.Module,
    path: str | Path,
    manifest: ModelManifest,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<path>.safetensors`` (weights) and ``<path>.json`` (manifest); return the json path.

    ``extra`` (JSON-serialisable) is stored under ``"extra"`` in the manifest, e.g. the training
    history.
    """
    weights_path, manifest_path = _paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path))
    document = {
        "format": MANIFEST_FORMAT,
        "architecture": {
            "name": manifest.name,
            "options": manifest.options,
            "input_shape": list(manifest.input_shape),
            "num_classes": manifest.num_classes,
        },
        "parameters": count_parameters(model),
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        "tinylarge_version": tinylarge.__version__,
        "torch_version": torch.__version__,
        "extra": dict(extra or {}),
    }
    manifest_path.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    return manifest_path


def read_manifest(path: str | Path) -> tuple[ModelManifest, dict[str, Any]]:
    """Return the architecture manifest and the whole JSON document of a saved model."""
    _, manifest_path = _paths(path)
    try:
        document = json.loads(manifest_path.read_text("utf-8"))
        arch = document["architecture"]
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {document.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        manifest = ModelManifest(
            name=str(arch["name"]),
            options=dict(arch["options"]),
            input_shape=tuple(int(s) for s in arch["input_shape"]),
            num_classes=int(arch["num_classes"]),
        )
    except FileNotFoundError:
        raise ValueError(f"no model manifest at {manifest_path}") from None
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"{manifest_path} is not a tinylarge model manifest: {error}") from None
    return manifest, document


def load_model(
    path: str | Path, build: Callable[[ModelManifest], nn.Module] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild and load a model saved by `save_model`; return it (eval mode) and its manifest.

    ``build`` makes the empty architecture from the manifest (default: the registry, via
    `ModelManifest.build`); models that are not in the registry, such as a graft onto another
    trained model, pass their own.

    Fails with ``ValueError`` when a file is missing, the weights do not match the manifest's
    SHA-256, or the tensors do not fit the architecture.
    """
    weights_path, _ = _paths(path)
    manifest, document = read_manifest(path)
    if not weights_path.exists():
        raise ValueError(f"no model weights at {weights_path}")
    digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    if digest != document.get("weights_sha256"):
        raise ValueError(
            f"{weights_path} does not match its manifest's SHA-256 (corrupt or replaced)"
        )
    model = build(manifest) if build is not None else manifest.build()
    try:
        model.load_state_dict(load_file(str(weights_path)), strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{weights_path} does not fit architecture {manifest.name!r}: {error}"
        ) from None
    model.eval()
    return model, document
