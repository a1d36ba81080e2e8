"""`hf_local`: a Hugging Face `transformers` backbone from a local directory as an IQ classifier.

The directory is what ``model.save_pretrained(DIR)`` writes (``config.json`` and the weights).
The classifier embeds each patch of ``P`` complex samples ``[I_0..I_{P-1}, Q_0..Q_{P-1}]``
(`tinylarge.models.rf_transformer.patchify`) with one linear layer into the backbone's hidden
size, runs the backbone on these embeddings (``inputs_embeds=``; the backbone adds its own
position information), mean-pools its ``last_hidden_state`` over the patches and applies
LayerNorm and a linear class head. Every weight, the backbone's included, is trained by the
pipeline's training loop like any model of the zoo.

Only local files are read: a path that is not an existing directory (a Hub id such as
``bert-base-uncased`` or ``org/name`` included) is refused before `transformers` is imported,
loading passes ``local_files_only=True`` with ``HF_HUB_OFFLINE=1`` set, and code shipped with a
model is never run (no ``trust_remote_code``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tinylarge.models.external.sources import NEVER_DOWNLOADS, local_directory
from tinylarge.models.registry import register_model
from tinylarge.models.rf_transformer import patchify

CONFIG_FILE = "config.json"
#: Weight files that ``save_pretrained`` writes (single file, shards and their indices).
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json")


def hf_directory(path: str) -> Path:
    """The local ``save_pretrained`` directory ``path``; ``ValueError`` otherwise (see module)."""
    directory = local_directory("hf_local", path)
    if not (directory / CONFIG_FILE).is_file():
        raise ValueError(
            f"hf_local: {directory} has no {CONFIG_FILE}, so it is not a directory written by "
            f"`save_pretrained`; {NEVER_DOWNLOADS}"
        )
    return directory


def hf_files(directory: Path) -> list[Path]:
    """``config.json`` and the weight files of a ``save_pretrained`` directory, sorted."""
    weights = {p for pattern in WEIGHT_PATTERNS for p in directory.glob(pattern) if p.is_file()}
    return [directory / CONFIG_FILE, *sorted(weights)]


@contextmanager
def _offline_quiet() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` and no progress bars while loading; both restored afterwards."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def load_backbone(directory: Path) -> nn.Module:
    """``AutoModel.from_pretrained(directory, local_files_only=True)`` in float32, refusing
    encoder-decoder models and backbones whose ``forward`` takes no ``inputs_embeds``."""
    with _offline_quiet():
        from transformers import AutoConfig, AutoModel

        try:
            config = AutoConfig.from_pretrained(directory, local_files_only=True)
            if getattr(config, "is_encoder_decoder", False):
                raise ValueError(
                    f"{type(config).__name__} is an encoder-decoder model; hf_local takes "
                    "encoder-only or decoder-only backbones"
                )
            backbone: nn.Module = AutoModel.from_pretrained(
                directory, config=config, local_files_only=True, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"hf_local: cannot load {directory}: {error}") from None
    if "inputs_embeds" not in inspect.signature(backbone.forward).parameters:
        raise ValueError(
            f"hf_local: {type(backbone).__name__} ({directory}) takes no inputs_embeds, so it "
            "cannot read embedded IQ patches; use a text-style encoder or decoder backbone "
            "(BERT, Llama, GPT-2, ...)"
        )
    return backbone


def _last_hidden_state(outputs: Any) -> Tensor:
    hidden = getattr(outputs, "last_hidden_state", None)
    return hidden if isinstance(hidden, Tensor) else outputs[0]


class HfBackboneClassifier(nn.Module):
    """Patch embedding -> Hugging Face backbone -> mean pool -> LayerNorm -> class head.

    Parameters
    ----------
    backbone : nn.Module
        A `transformers` base model whose ``forward`` takes ``inputs_embeds``.
    hidden_size : int
        The backbone's hidden size (width of its embeddings and outputs).
    num_classes : int
        Class logits.
    patch_samples : int
        Complex samples per patch (token).
    """

    def __init__(
        self, backbone: nn.Module, hidden_size: int, num_classes: int, *, patch_samples: int
    ) -> None:
        super().__init__()
        self.patch_samples = patch_samples
        self.embed = nn.Linear(2 * patch_samples, hidden_size)
        self.backbone = backbone
        self.norm = nn.LayerNorm(hidden_size)
        self.head = nn.Linear(hidden_size, num_classes)

    def encode(self, x: Tensor) -> Tensor:
        """The backbone's last hidden state ``(batch, patches, hidden_size)`` of frames
        ``(batch, 2, samples)``."""
        tokens = self.embed(patchify(x, self.patch_samples))
        return _last_hidden_state(self.backbone(inputs_embeds=tokens))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(batch, num_classes)``."""
        logits: Tensor = self.head(self.norm(self.encode(x).mean(dim=1)))
        return logits


def _check_task(directory: Path, config: Any, input_shape: tuple[int, ...], patch: int) -> int:
    """Patches per frame; ``ValueError`` when the frames do not fit the backbone."""
    if len(input_shape) != 2 or input_shape[0] != 2:
        raise ValueError(f"hf_local takes IQ frames of shape (2, samples), got {input_shape}")
    if patch < 1 or input_shape[1] % patch:
        raise ValueError(
            f"hf_local: patch_samples ({patch}) must divide the frame length ({input_shape[1]})"
        )
    tokens = input_shape[1] // patch
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and tokens > limit:
        raise ValueError(
            f"hf_local: {tokens} patches per frame exceed the {limit} positions of {directory}; "
            "use a larger patch_samples"
        )
    return tokens


@register_model(
    "hf_local",
    "a Hugging Face transformers backbone from a local save_pretrained directory, with a patch "
    "embedding and a class head; trained like any model, never downloaded",
)
def hf_local(
    input_shape: tuple[int, ...], num_classes: int, *, path: str = "", patch_samples: int = 8
) -> HfBackboneClassifier:
    """Wrap the backbone saved in the local directory ``path`` as an IQ-frame classifier.

    Parameters
    ----------
    input_shape : tuple of int
        ``(2, samples)``: I and Q of a frame; ``samples`` divisible by ``patch_samples``.
    num_classes : int
        Outputs of the (new, randomly initialised) class head.
    path : str
        A local directory written by ``save_pretrained`` (required; never a Hub id).
    patch_samples : int
        Complex samples per patch; each patch is one backbone token.
    """
    directory = hf_directory(path)
    backbone = load_backbone(directory)
    config = backbone.config
    hidden = getattr(config, "hidden_size", None)
    if not isinstance(hidden, int):
        raise ValueError(f"hf_local: the config of {directory} gives no integer hidden_size")
    tokens = _check_task(directory, config, input_shape, patch_samples)
    model = HfBackboneClassifier(backbone, hidden, num_classes, patch_samples=patch_samples)
    with torch.no_grad():
        shape = tuple(model.eval().encode(torch.zeros(1, *input_shape)).shape)
    if shape != (1, tokens, hidden):
        raise ValueError(
            f"hf_local: {type(backbone).__name__} ({directory}) returned a last hidden state of "
            f"shape {shape} for {tokens} patches; expected (1, {tokens}, {hidden})"
        )
    return model.train()


__all__ = ["HfBackboneClassifier", "hf_directory", "hf_files", "hf_local", "load_backbone"]
