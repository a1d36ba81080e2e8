"""Masked IQ-patch modelling: which patches are hidden, and the loss on them.

As in masked autoencoding of signals (He et al., "Masked Autoencoders Are Scalable Vision
Learners", CVPR 2022; LWM, arXiv 2411.08872, masks 15-40 % of its patches), a fixed number of
each frame's patches is replaced by a learned mask token and the model predicts their samples;
the loss is the mean squared error over the hidden patches only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tinylarge.models.rf_transformer import RfTransformer, patchify


def masked_count(tokens: int, mask_ratio: float) -> int:
    """Patches hidden per frame: ``round(mask_ratio * tokens)``, at least 1 and at most
    ``tokens - 1``."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must lie in (0, 1), got {mask_ratio}")
    return min(max(round(mask_ratio * tokens), 1), tokens - 1)


def random_mask(batch: int, tokens: int, mask_ratio: float, generator: torch.Generator) -> Tensor:
    """Bool ``(batch, tokens)``: True on `masked_count` patches of each frame, drawn uniformly
    without replacement from ``generator``."""
    scores = torch.rand(batch, tokens, generator=generator)
    hidden = scores.argsort(dim=1)[:, : masked_count(tokens, mask_ratio)]
    mask = torch.zeros(batch, tokens, dtype=torch.bool)
    mask.scatter_(1, hidden, True)
    return mask


def masked_reconstruction_loss(model: RfTransformer, x: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error of the predicted samples of the hidden patches (unit: the frame's
    power, which is 1 after AGC; predicting zeros scores about 0.5)."""
    predicted = model.reconstruct(x, mask)
    target = patchify(x, model.patch_samples)
    return ((predicted - target) ** 2)[mask].mean()


def zero_prediction_loss(x: Tensor, mask: Tensor, patch_samples: int) -> float:
    """The loss of predicting zeros for every hidden sample: the baseline a model must beat."""
    return float((patchify(x, patch_samples) ** 2)[mask].mean())
