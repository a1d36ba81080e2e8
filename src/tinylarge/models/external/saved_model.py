"""`saved_model`: a complete model trained elsewhere with tinylarge, loaded from safetensors + JSON.

Two layouts are read, each verified against the SHA-256 its JSON records:

- a model saved by `tinylarge.models.persistence.save_model` (``X.safetensors`` + ``X.json``;
  ``path`` is ``X``, ``X.json`` or ``X.safetensors``), such as a run directory's
  ``models/large``;
- a checkpoint directory of `tinylarge.models.checkpoints` (``model.safetensors`` +
  ``config.json``, what `tinylarge pretrain --out DIR` writes).

The architecture the JSON names is rebuilt from the registry and every weight, the class head
included, is loaded; the saved input shape and number of classes must be the task's. (To start
from a pretrained encoder with a new head, use ``rf_transformer`` with ``checkpoint = DIR``.)
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tinylarge.models.checkpoints import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_checkpoint_weights,
    read_checkpoint_config,
)
from tinylarge.models.external.sources import required_path
from tinylarge.models.persistence import ModelManifest, load_model, read_manifest
from tinylarge.models.registry import build_model, model_entry, register_model

_EXPECTED = (
    "a model saved by tinylarge.models.persistence.save_model (X.safetensors + X.json; pass X) "
    f"or a checkpoint directory ({WEIGHTS_FILE} + {CONFIG_FILE})"
)


def saved_files(path: str) -> list[Path]:
    """The weights and JSON files ``path`` names (see module); ``ValueError`` when missing."""
    resolved = required_path("saved_model", path)
    if resolved.is_dir():
        files = [resolved / CONFIG_FILE, resolved / WEIGHTS_FILE]
    else:
        suffixed = resolved.suffix in (".json", ".safetensors")
        base = resolved.with_suffix("") if suffixed else resolved
        files = [base.with_suffix(".json"), base.with_suffix(".safetensors")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ValueError(
            f"saved_model: path {path!r}: no {' and no '.join(missing)}; expected {_EXPECTED}"
        )
    return files


def empty_architecture(manifest: ModelManifest) -> nn.Module:
    """The registered architecture of ``manifest`` with random weights, to be overwritten: an
    option ``checkpoint`` (e.g. `rf_transformer`'s) is set to ``"none"``, since every weight
    comes from the saved file."""
    options = dict(manifest.options)
    if "checkpoint" in model_entry(manifest.name).options:
        options["checkpoint"] = "none"
    return build_model(manifest.name, manifest.input_shape, manifest.num_classes, options, seed=0)


def _checkpoint_manifest(directory: Path) -> ModelManifest:
    arch = read_checkpoint_config(directory).get("architecture", {})
    try:
        return ModelManifest(
            name=str(arch["name"]),
            options=dict(arch["options"]),
            input_shape=tuple(int(s) for s in arch["input_shape"]),
            num_classes=int(arch["num_classes"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"saved_model: {directory / CONFIG_FILE} does not name an architecture (name, "
            f"options, input_shape, num_classes): {error}"
        ) from None


def _check_fits(
    source: Path, manifest: ModelManifest, input_shape: tuple[int, ...], num_classes: int
) -> None:
    """``ValueError`` unless the saved model takes the task's frames and gives its classes."""
    if manifest.input_shape != tuple(input_shape):
        raise ValueError(
            f"saved_model: {source} ({manifest.name!r}) takes samples of shape "
            f"{manifest.input_shape}; the task's are {tuple(input_shape)}"
        )
    if manifest.num_classes != num_classes:
        hint = (
            f"; to fine-tune its encoder with a new head use name = {manifest.name!r} with "
            f"options checkpoint = '{source}'"
            if source.is_dir() and "checkpoint" in model_entry(manifest.name).options
            else ""
        )
        raise ValueError(
            f"saved_model: {source} ({manifest.name!r}) has a class head of "
            f"{manifest.num_classes} classes; the task has {num_classes}{hint}"
        )


@register_model(
    "saved_model",
    "a complete tinylarge model saved as safetensors + JSON (save_model files or a checkpoint "
    "directory), weights checked by SHA-256",
)
def saved_model(input_shape: tuple[int, ...], num_classes: int, *, path: str = "") -> nn.Module:
    """Rebuild the architecture saved at ``path`` and load all its weights (see module).

    Parameters
    ----------
    input_shape : tuple of int
        Must equal the saved model's input shape.
    num_classes : int
        Must equal the saved model's number of classes.
    path : str
        ``X`` (or ``X.json``, ``X.safetensors``) of `save_model`, or a checkpoint directory.

    Returns
    -------
    nn.Module
        The saved model itself (e.g. an `RfTransformer`), in training mode.
    """
    config_file, weights_file = saved_files(path)
    if required_path("saved_model", path).is_dir():
        directory = config_file.parent
        manifest = _checkpoint_manifest(directory)
        _check_fits(directory, manifest, input_shape, num_classes)
        state, _ = load_checkpoint_weights(directory)
        model = empty_architecture(manifest)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"saved_model: {weights_file} does not fit architecture {manifest.name!r}: {error}"
            ) from None
    else:
        manifest, _ = read_manifest(config_file)
        _check_fits(config_file, manifest, input_shape, num_classes)
        model, _ = load_model(config_file, empty_architecture)
    return model.train()


__all__ = ["empty_architecture", "saved_files", "saved_model"]
