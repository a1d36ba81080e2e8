"""Uncertainty measures: hand-computed values, the perturbed temperatures, and the exact skip
probability against simulated U-HLM skipping (and the total variation it costs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.integrate.hybrid_lm.lm_fixtures import P_TOY, chi_square

from tinylarge.integrate.hybrid_lm.speculative import (
    output_distribution,
    probabilities,
    sample_tokens,
    skipping_total_variation,
    verify_batch,
)
from tinylarge.integrate.hybrid_lm.uncertainty import (
    entropy_uncertainty,
    max_probability_uncertainty,
    perturbed_draws,
    perturbed_temperatures,
    temperature_skip_probability,
    temperature_uncertainty,
    uncertainty,
)


def test_perturbed_temperatures_are_bin_midpoints_of_half_to_three_halves_t() -> None:
    assert perturbed_temperatures(1.0, 4) == pytest.approx((0.625, 0.875, 1.125, 1.375))
    assert perturbed_temperatures(2.0, 1) == (2.0,)
    assert perturbed_temperatures(0.8, 2) == pytest.approx((0.6, 1.0))
    with pytest.raises(ValueError, match="perturbations"):
        perturbed_temperatures(1.0, 0)


def test_entropy_and_max_probability_by_hand() -> None:
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0, 2.0], [1.0, 1.0, 1.0, 1.0]]))
    q = torch.tensor([1 / 8, 2 / 8, 3 / 8, 2 / 8], dtype=torch.float64)
    entropy = entropy_uncertainty(logits, 1.0)
    assert float(entropy[0]) == pytest.approx(float(-(q * q.log()).sum()), rel=1e-6)
    assert float(entropy[1]) == pytest.approx(math.log(4), rel=1e-6)
    assert max_probability_uncertainty(logits, 1.0).tolist() == pytest.approx([5 / 8, 3 / 4])
    # A huge logit gap: certain, and no NaN from zero probabilities.
    sharp = torch.tensor([[1e4, 0.0, 0.0]])
    assert float(entropy_uncertainty(sharp, 1.0)[0]) == 0.0
    assert float(max_probability_uncertainty(sharp, 1.0)[0]) == 0.0


def test_temperature_uncertainty_counts_disagreeing_draws() -> None:
    generator = torch.Generator().manual_seed(0)
    sharp = torch.tensor([[30.0, 0.0, 0.0], [30.0, 0.0, 0.0]])
    u = temperature_uncertainty(sharp, torch.tensor([0, 2]), 1.0, 8, generator)
    assert u.tolist() == [0.0, 1.0]
    logits = torch.randn(50, 6, generator=generator)
    drafted = torch.randint(0, 6, (50,), generator=generator)
    first = temperature_uncertainty(logits, drafted, 1.0, 5, torch.Generator().manual_seed(9))
    again = temperature_uncertainty(logits, drafted, 1.0, 5, torch.Generator().manual_seed(9))
    assert torch.equal(first, again)
    assert set((first * 5).round().tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    draws = perturbed_draws(logits, 1.0, 5, torch.Generator().manual_seed(9))
    assert draws.shape == (50, 5)
    assert torch.equal((draws != drafted[:, None]).double().mean(1), first)


def test_dispatcher() -> None:
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    drafted = torch.tensor([0, 1, 2])
    g = torch.Generator()
    assert torch.equal(uncertainty("entropy", logits, drafted, 1.5, 4, g),
                       entropy_uncertainty(logits, 1.5))  # fmt: skip
    assert torch.equal(uncertainty("max_probability", logits, drafted, 1.5, 4, g),
                       max_probability_uncertainty(logits, 1.5))  # fmt: skip
    with pytest.raises(ValueError, match="unknown uncertainty measure"):
        uncertainty("margin", logits, drafted, 1.0, 4, g)  # type: ignore[arg-type]


def test_skip_probability_matches_simulated_skipping() -> None:
    """Simulate U-HLM on one position: draft x ~ q, measure the temperature uncertainty,
    keep x when it is <= threshold, else verify; the emitted tokens follow the analytic
    output distribution, whose distance from p is `skipping_total_variation`."""
    n, k, threshold = 200_000, 4, 0.25
    logits = torch.log(torch.tensor([[0.05, 0.40, 0.05, 0.25, 0.05, 0.10, 0.05, 0.05]]))
    q = probabilities(logits, 1.0)
    p = P_TOY[None]
    generator = torch.Generator().manual_seed(5)
    drafts = sample_tokens(q.expand(n, -1), generator)
    u = temperature_uncertainty(logits.expand(n, -1), drafts, 1.0, k, generator)
    verdict = verify_batch(p.expand(n, -1), q.expand(n, -1), drafts, generator)
    skipped = u <= threshold
    emitted = torch.where(skipped, drafts, verdict.tokens)
    s = temperature_skip_probability(logits, 1.0, k, threshold)
    for token in range(8):  # per drafted token, the skip frequency matches s[x]
        mask = drafts == token
        freq = float(skipped[mask].double().mean())
        assert freq == pytest.approx(float(s[0, token]), abs=5 * (0.25 / int(mask.sum())) ** 0.5)
    expected = output_distribution(p, q, s)[0]
    assert chi_square(emitted, expected)[1] > 1e-3
    tv = float(skipping_total_variation(p, q, s)[0])
    empirical = 0.5 * float(
        np.abs(np.bincount(emitted.numpy(), minlength=8) / n - p[0].numpy()).sum()
    )
    assert empirical == pytest.approx(tv, abs=0.01)
    assert 0.0 < tv < 1 - float(torch.minimum(p, q).sum())  # between HLM (0) and SLM alone


def test_skip_probability_edges() -> None:
    logits = torch.randn(2, 5, generator=torch.Generator().manual_seed(2))
    everything = temperature_skip_probability(logits, 1.0, 3, 1.0)
    assert torch.allclose(everything, torch.ones(2, 5, dtype=torch.float64), atol=1e-12)
    assert not temperature_skip_probability(logits, 1.0, 3, -0.1).any()
