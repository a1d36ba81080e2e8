"""Masked IQ-patch modelling: how many patches are hidden, which ones, and the loss on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from tinylarge.models.pretraining.masking import (
    masked_count,
    masked_reconstruction_loss,
    random_mask,
    zero_prediction_loss,
)
from tinylarge.models.rf_transformer import patchify


@pytest.mark.parametrize(
    ("tokens", "ratio", "expected"),
    [(16, 0.3, 5), (16, 0.15, 2), (16, 0.5, 8), (16, 0.01, 1), (16, 0.99, 15), (4, 0.4, 2)],
)
def test_masked_count_rounds_and_keeps_one_patch_of_each_kind(
    tokens: int, ratio: float, expected: int
) -> None:
    assert masked_count(tokens, ratio) == expected


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_a_mask_ratio_outside_the_open_unit_interval_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match=r"mask_ratio must lie in \(0, 1\)"):
        masked_count(16, ratio)


def test_every_frame_hides_exactly_the_count_and_positions_are_uniform() -> None:
    batch, tokens = 20_000, 16
    mask = random_mask(batch, tokens, 0.3, torch.Generator().manual_seed(3))
    assert mask.shape == (batch, tokens) and mask.dtype == torch.bool
    assert torch.equal(mask.sum(dim=1), torch.full((batch,), 5))
    # each position is hidden with probability 5/16; chi-square with 15 degrees of freedom
    observed = mask.sum(dim=0).double().numpy()
    expected = batch * 5 / 16
    variance = batch * (5 / 16) * (11 / 16)  # binomial variance per position
    chi2 = float(((observed - expected) ** 2 / variance).sum())
    assert chi2 < 37.7  # the 0.999 quantile of chi-square(15) is 37.70
    # pairs of positions are hidden together as often as drawing without replacement says
    together = float((mask[:, 0] & mask[:, 1]).double().mean())
    assert together == pytest.approx(5 * 4 / (16 * 15), abs=0.01)


def test_masks_are_a_function_of_the_generator_seed() -> None:
    first = random_mask(64, 16, 0.3, torch.Generator().manual_seed(7))
    again = random_mask(64, 16, 0.3, torch.Generator().manual_seed(7))
    other = random_mask(64, 16, 0.3, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def _frames(batch: int = 6, length: int = 32, seed: int = 0) -> Tensor:
    return torch.randn(batch, 2, length, generator=torch.Generator().manual_seed(seed))


def test_zero_prediction_loss_is_the_mean_power_of_the_hidden_samples() -> None:
    x, patch = _frames(), 8
    mask = random_mask(6, 4, 0.5, torch.Generator().manual_seed(1))
    # by hand: patch j of frame b holds I and Q samples j*P .. (j+1)*P - 1
    squares = [
        float(x[b, c, j * patch + k]) ** 2
        for b in range(6) for j in range(4) if mask[b, j]
        for c in range(2) for k in range(patch)
    ]  # fmt: skip
    assert zero_prediction_loss(x, mask, patch) == pytest.approx(np.mean(squares), rel=1e-6)


class _Oracle:
    """Predicts the true patches where hidden and ``junk`` where visible."""

    def __init__(self, patch_samples: int, junk: float) -> None:
        self.patch_samples = patch_samples
        self.junk = junk

    def reconstruct(self, x: Tensor, mask: Tensor) -> Tensor:
        target = patchify(x, self.patch_samples)
        return torch.where(mask.unsqueeze(-1), target, torch.full_like(target, self.junk))


class _Zeros(_Oracle):
    def reconstruct(self, x: Tensor, mask: Tensor) -> Tensor:
        return torch.zeros_like(patchify(x, self.patch_samples))


def test_the_loss_counts_the_hidden_patches_only() -> None:
    x = _frames()
    mask = random_mask(6, 4, 0.5, torch.Generator().manual_seed(2))
    perfect = masked_reconstruction_loss(_Oracle(8, junk=1e3), x, mask)  # type: ignore[arg-type]
    assert float(perfect) == 0.0
    zeros = masked_reconstruction_loss(_Zeros(8, junk=0.0), x, mask)  # type: ignore[arg-type]
    assert float(zeros) == pytest.approx(zero_prediction_loss(x, mask, 8), rel=1e-6)
