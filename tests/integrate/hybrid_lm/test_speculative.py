"""Speculative sampling: exact output distribution (chi-square against p, with a negative
control), hand-computed verdicts, the residual guard, and what skipping costs."""

from __future__ import annotations

import pytest
import torch
from tests.integrate.hybrid_lm.lm_fixtures import P_TOY, Q_TOY, chi_square

from tinylarge.integrate.hybrid_lm.payload import DistributionCodec
from tinylarge.integrate.hybrid_lm.speculative import (
    RESIDUAL_TOLERANCE,
    acceptance_probability,
    output_distribution,
    probabilities,
    sample_by_inversion,
    sample_tokens,
    skipping_total_variation,
    total_variation,
    verify,
    verify_batch,
    verify_uniforms,
)

DRAWS = 200_000


def _speculative_draws(p: torch.Tensor, q_sent: torch.Tensor, q_verify: torch.Tensor, seed: int):
    """Draft from ``q_sent``, verify against ``q_verify``; returns drafts and the verdict."""
    generator = torch.Generator().manual_seed(seed)
    drafts = sample_tokens(q_sent.expand(DRAWS, -1), generator)
    verdict = verify_batch(p.expand(DRAWS, -1), q_verify.expand(DRAWS, -1), drafts, generator)
    return drafts, verdict


def test_output_is_distributed_as_p_and_unverified_drafts_are_not() -> None:
    drafts, verdict = _speculative_draws(P_TOY, Q_TOY, Q_TOY, seed=12345)
    statistic, p_value = chi_square(verdict.tokens, P_TOY)
    assert p_value > 1e-3, (statistic, p_value)
    assert int((verdict.tokens == 7).sum()) == 0  # p = 0: never emitted
    assert int((drafts == 4).sum()) == 0  # q = 0: never drafted
    rate = float(verdict.accepted.double().mean())
    assert rate == pytest.approx(0.6, abs=4 * (0.6 * 0.4 / DRAWS) ** 0.5)
    # Negative control: the drafts without verification are distributed as q.
    control = torch.where(drafts == 7, 0, drafts)  # fold p = 0's token away to test the rest
    bad_statistic, bad_p = chi_square(control, P_TOY)
    assert bad_p < 1e-30 and bad_statistic > 1e4


def test_truncated_quantized_draft_is_exact_when_the_edge_verifies_what_was_sampled() -> None:
    codec = DistributionCodec.truncated(top_k=4, bits=3)
    q_sent = codec.prepare(Q_TOY)
    assert int((q_sent > 0).sum()) == 4
    _, verdict = _speculative_draws(P_TOY, q_sent, q_sent, seed=7)
    assert chi_square(verdict.tokens, P_TOY)[1] > 1e-3
    # Pitfall: verifying against the untruncated q while drafting from q_sent is not exact.
    mismatch = _mismatched_output(P_TOY, q_sent, Q_TOY)
    assert float(total_variation(mismatch[None], P_TOY[None])[0]) > 0.03
    _, wrong = _speculative_draws(P_TOY, q_sent, Q_TOY, seed=7)
    assert chi_square(wrong.tokens, P_TOY)[1] < 1e-30
    assert chi_square(wrong.tokens, mismatch)[1] > 1e-3  # and we know what it gives instead


def _mismatched_output(p: torch.Tensor, drafted_from: torch.Tensor, verified_with: torch.Tensor):
    """Output distribution when drafts come from one q and the edge verifies with another."""
    accept = torch.where(verified_with > 0, torch.clamp(p / verified_with, max=1.0), 1.0)
    residual = torch.clamp(p - verified_with, min=0.0)
    rejected = (drafted_from * (1 - accept)).sum()
    return drafted_from * accept + rejected * residual / residual.sum()


def test_verdicts_by_hand() -> None:
    # Token 1: q = 0.3, p = 0.2, accepted iff u < 2/3. Residual max(0, p - q) normalized:
    # token 0: 0.5, token 2: 0.25, token 4: 0.25.
    assert verify(P_TOY, Q_TOY, 1, 0.6, 0.0) == (1, True)
    assert verify(P_TOY, Q_TOY, 1, 0.7, 0.1) == (0, False)
    assert verify(P_TOY, Q_TOY, 1, 0.7, 0.6) == (2, False)
    assert verify(P_TOY, Q_TOY, 1, 0.7, 0.9) == (4, False)
    # Token 0: p > q, always accepted; token 4 (q = 0 < p) compares 0 < p: accepted, no NaN.
    assert verify(P_TOY, Q_TOY, 0, 0.999, 0.5) == (0, True)
    assert verify(P_TOY, Q_TOY, 4, 0.999, 0.5) == (4, True)
    # Token 7: p = 0, always rejected.
    assert verify(P_TOY, Q_TOY, 7, 0.0, 0.0) == (0, False)
    # Weights are normalized: scaling p or q changes nothing.
    assert verify(3 * P_TOY, 0.5 * Q_TOY, 1, 0.7, 0.6) == (2, False)


def test_residual_guard_samples_from_p_when_p_and_q_differ_by_rounding() -> None:
    q = torch.tensor([0.5, 0.5], dtype=torch.float64)
    p = torch.tensor([0.5 - 1e-12, 0.5 + 1e-12], dtype=torch.float64)
    assert float(acceptance_probability(p[None], q[None])[0]) > 1 - RESIDUAL_TOLERANCE
    # Rejected (u q[0] >= p[0]); the residual (all on token 1) is below the tolerance, so the
    # replacement comes from p by inversion: v = 0.2 -> token 0.
    assert verify(p, q, 0, 0.9999999999999, 0.2) == (0, False)
    # p == q exactly: the residual is empty; nothing is ever rejected, no NaN.
    rows = q[None].expand(3, -1)
    u, v = torch.tensor([0.0, 0.5, 0.999999]), torch.tensor([0.1, 0.5, 0.9])
    tokens = verify_uniforms(rows, rows, torch.tensor([0, 1, 0]), u, v)
    assert tokens.accepted.all()


def test_inversion_never_draws_a_token_without_weight() -> None:
    weights = torch.tensor([[0.0, 0.3, 0.0, 0.7, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    u = torch.tensor([1 - 2**-53, 1 - 2**-53], dtype=torch.float64)
    assert sample_by_inversion(weights, u).tolist() == [3, 0]
    u0 = torch.zeros(2, dtype=torch.float64)
    assert sample_by_inversion(weights, u0).tolist() == [1, 0]


def test_output_distribution_and_skipping_total_variation() -> None:
    generator = torch.Generator().manual_seed(3)
    p = torch.rand(5, 9, generator=generator, dtype=torch.float64)
    q = torch.rand(5, 9, generator=generator, dtype=torch.float64)
    assert torch.allclose(output_distribution(p, q), p / p.sum(1, keepdim=True), atol=1e-14)
    s = torch.rand(5, 9, generator=generator, dtype=torch.float64)
    out = output_distribution(p, q, s)
    assert torch.allclose(out.sum(1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(skipping_total_variation(p, q, s), total_variation(out, p), atol=1e-14)
    ones = torch.ones_like(q)
    tv_draft_alone = 1 - acceptance_probability(p, q)
    assert torch.allclose(skipping_total_variation(p, q, ones), tv_draft_alone)
    assert torch.allclose(output_distribution(p, q, ones), q / q.sum(1, keepdim=True))


def test_probabilities_are_float64_softmax_at_the_temperature() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float32)
    expected = torch.softmax(logits.double() / 0.5, dim=1)
    assert torch.equal(probabilities(logits, 0.5), expected)
    with pytest.raises(ValueError, match="temperature"):
        probabilities(logits, 0.0)
    with pytest.raises(ValueError, match="finite"):
        probabilities(torch.tensor([[0.0, float("nan")]]), 1.0)


@pytest.mark.parametrize(
    ("p", "q", "tokens", "message"),
    [
        (P_TOY[None], Q_TOY[None, :4], torch.tensor([0]), "one shape"),
        (P_TOY[None], -Q_TOY[None], torch.tensor([0]), "non-negative"),
        (P_TOY[None], torch.zeros(1, 8), torch.tensor([0]), "positive mass"),
        (P_TOY[None], Q_TOY[None], torch.tensor([8]), "token ids"),
        (P_TOY[None], Q_TOY[None], torch.tensor([0.5]), "integers"),
        (P_TOY, Q_TOY, torch.tensor([0]), "shape"),
    ],
)
def test_bad_input(p: torch.Tensor, q: torch.Tensor, tokens: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        verify_batch(p, q, tokens, torch.Generator().manual_seed(0))


def test_uniforms_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"u must lie in \[0, 1\)"):
        verify(P_TOY, Q_TOY, 0, 1.0, 0.0)
