"""Pretrained checkpoints: ``model.safetensors`` + ``config.json`` in one directory.

``config.json`` names the architecture (registered name, options, input shape), the weights'
SHA-256 and how they were made (`tinylarge pretrain`'s settings, seed, frames, steps, loss
curve and final held-out reconstruction loss). While pretraining runs, ``trainer_state.pt``
beside them holds everything needed to resume exactly (weights, optimizer, step); it is removed
when the run completes.

The package ships the checkpoints in ``tinylarge/models/pretrained/<name>/`` (see
`builtin_checkpoint`); each was made by the command recorded in its config.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import tinylarge

CHECKPOINT_FORMAT = "tinylarge.pretrained/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINER_STATE_FILE = "trainer_state.pt"
#: Heads that depend on the downstream task; a checkpoint's are not loaded into a task model.
TASK_HEAD_PREFIXES: tuple[str, ...] = ("head.linear.", "snr_head.")


def atomic_write(path: Path, write: Any) -> None:
    """Write ``path`` through a temporary file in the same directory and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    architecture: dict[str, Any],
    pretraining: dict[str, Any],
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (each atomically); return the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, str(tmp)))
    document = {
        "format": CHECKPOINT_FORMAT,
        "architecture": architecture,
        "parameters": sum(int(t.numel()) for t in state.values()),
        "weights_sha256": sha256_of(weights),
        "pretraining": pretraining,
        "tinylarge_version": tinylarge.__version__,
        "torch_version": torch.__version__,
    }
    text = json.dumps(document, indent=2) + "\n"
    atomic_write(directory / CONFIG_FILE, lambda tmp: tmp.write_text(text, "utf-8"))
    return directory


def read_checkpoint_config(directory: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint directory; ``ValueError`` saying what is wrong."""
    path = Path(directory) / CONFIG_FILE
    try:
        document: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{directory} is not a tinylarge checkpoint: no {CONFIG_FILE} (make one with "
            "`tinylarge pretrain --out DIR`)"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if document.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: format {document.get('format')!r}, expected {CHECKPOINT_FORMAT!r}"
        )
    return document


def load_checkpoint_weights(
    directory: str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights (checked against the config's SHA-256) and the config of a checkpoint."""
    document = read_checkpoint_config(directory)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"{directory}: no {WEIGHTS_FILE}")
    if sha256_of(weights) != document.get("weights_sha256"):
        raise ValueError(f"{weights} does not match the SHA-256 in its {CONFIG_FILE}")
    return load_file(str(weights)), document


def load_encoder_weights(model: nn.Module, directory: str | Path) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model`` except the task heads (`TASK_HEAD_PREFIXES`),
    which keep their fresh initialisation; return the checkpoint's config.

    Raises ``ValueError`` when a tensor is missing or has another shape (another size, patch
    length or frame length than the model's).
    """
    state, document = load_checkpoint_weights(directory)
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if not k.startswith(TASK_HEAD_PREFIXES)}
    wanted = {k for k in own if not k.startswith(TASK_HEAD_PREFIXES)}
    missing = sorted(wanted - set(keep))
    wrong = sorted(k for k in wanted & set(keep) if own[k].shape != keep[k].shape)
    if missing or wrong or set(keep) - wanted:
        arch = document.get("architecture", {})
        raise ValueError(
            f"checkpoint {directory} (architecture {arch.get('name')!r}, options "
            f"{arch.get('options')}, input {arch.get('input_shape')}) does not fit this model: "
            f"missing {missing[:3]}, other shapes {wrong[:3]}"
        )
    model.load_state_dict(keep, strict=False)
    return document


def builtin_checkpoint(name: str) -> Path:
    """Directory of the checkpoint ``name`` shipped in the package (``rf_transformer_s``, ...);
    ``ValueError`` listing the shipped ones when there is none of that name."""
    root = Path(str(resources.files("tinylarge.models") / "pretrained"))
    path = root / name
    if not (path / CONFIG_FILE).is_file():
        shipped = sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())
        raise ValueError(
            f"the package ships no pretrained checkpoint {name!r} (shipped: "
            f"{', '.join(shipped) or 'none'}); make one with `tinylarge pretrain --out DIR` "
            "and pass checkpoint = 'DIR'"
        )
    return path
