"""Speculative sampling: the edge's verification of a drafted token, and what it outputs.

The rule (Leviathan et al., ICML 2023, arXiv 2211.17192, Algorithm 1; Chen et al., arXiv
2302.01318): the device draws its draft token ``x ~ q``; the edge, holding the target's
distribution ``p``, accepts ``x`` with probability ``min(1, p[x] / q[x])`` and otherwise
draws a token from the residual ``normalize(max(0, p - q))``. The token that comes out is
distributed exactly as ``p``, whatever ``q`` is, provided ``q`` is exactly the distribution
``x`` was drawn from (same temperature, same truncation, same quantization).

Numerics, all in float64:

- acceptance is tested as ``u * q[x] < p[x]`` with ``u ~ U[0, 1)``: no division, so
  ``q[x] = 0`` is harmless (``p / q`` would give ``0 / 0 = NaN``);
- both distributions are given as non-negative weights and normalized here, so a device that
  samples from unnormalized weights (e.g. a quantized payload) and the edge agree exactly;
- when the residual's mass (equal to the rejection probability ``1 - sum(min(p, q))``) is at
  most `RESIDUAL_TOLERANCE`, ``p`` and ``q`` differ only by rounding and a normalized
  residual would be noise; a rejected token is then drawn from ``p`` itself. This moves the
  output at most `RESIDUAL_TOLERANCE` from ``p`` in total variation.

Tokens are drawn by inversion (the first index whose cumulative weight exceeds ``v`` times the
total) from explicit uniforms, so a draw is reproducible from a seeded `torch.Generator`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

#: Residual mass (rejection probability) at or below which a rejection samples from ``p``.
RESIDUAL_TOLERANCE: float = 1e-6


class Verdict(NamedTuple):
    """The edge's decision on one draft token: the token emitted, and whether it is the
    draft (``accepted``) or drawn from the residual."""

    token: int
    accepted: bool


class BatchVerdict(NamedTuple):
    """`Verdict` of a batch: ``tokens`` (B,) int64 and ``accepted`` (B,) bool."""

    tokens: Tensor
    accepted: Tensor


def probabilities(logits: Tensor, temperature: float) -> Tensor:
    """Softmax of ``logits / temperature`` in float64 (both models' distributions come from
    here, so ``p`` and ``q`` are computed the same way).

    Parameters
    ----------
    logits : Tensor, shape (..., V)
        Finite real logits (any float dtype).
    temperature : float
        Sampling temperature, > 0.

    Returns
    -------
    Tensor, shape (..., V), float64
        Probabilities; each row sums to 1.
    """
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must have a vocabulary axis, got shape {tuple(logits.shape)}")
    if not all_finite(logits):
        raise ValueError("logits must be finite (no NaN or inf)")
    scaled = logits if temperature == 1.0 else logits / temperature
    return torch.softmax(scaled, dim=-1, dtype=torch.float64)


def all_finite(values: Tensor) -> bool:
    """True when no value is NaN or infinite (one pass: NaN propagates to the extremes)."""
    if values.numel() == 0:
        return True
    low, high = torch.aminmax(values)
    return bool(torch.isfinite(low)) and bool(torch.isfinite(high))


def normalized(weights: Tensor, name: str = "weights") -> Tensor:
    """Rows of non-negative ``weights`` (B, V) scaled to sum 1, float64; ``ValueError`` for a
    wrong shape, a negative or non-finite weight, or a row without mass."""
    if weights.ndim != 2 or weights.shape[1] < 1:
        raise ValueError(f"{name} must have shape (B, V), got {tuple(weights.shape)}")
    w = weights.to(torch.float64)
    if not all_finite(w) or (w.numel() and float(w.min()) < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    total = w.sum(dim=1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError(f"every row of {name} must have positive mass")
    return w / total


def _check_tokens(tokens: Tensor, rows: int, vocab: int) -> Tensor:
    if tokens.shape != (rows,) or tokens.dtype.is_floating_point:
        raise ValueError(f"tokens must be integers of shape ({rows},), got {tuple(tokens.shape)}")
    t = tokens.to(torch.int64)
    if rows and not 0 <= int(t.min()) <= int(t.max()) < vocab:
        raise ValueError(f"token ids must lie in 0..{vocab - 1}")
    return t


def sample_by_inversion(weights: Tensor, uniforms: Tensor) -> Tensor:
    """One token per row drawn in proportion to ``weights``: the first index whose cumulative
    weight exceeds ``uniforms * total`` (a token of zero weight is never drawn).

    Parameters
    ----------
    weights : Tensor, shape (B, V)
        Non-negative weights with positive row sums (not necessarily normalized).
    uniforms : Tensor, shape (B,)
        Uniform draws in [0, 1).

    Returns
    -------
    Tensor, shape (B,), int64
    """
    w = weights.to(torch.float64)
    cdf = torch.cumsum(w, dim=1)
    target = uniforms.to(torch.float64).unsqueeze(1) * cdf[:, -1:]
    index = torch.searchsorted(cdf, target, right=True).squeeze(1)
    # Only a target rounded up to the total runs past the end (a zero-weight token is never
    # the first whose cumulative weight exceeds the target); take the last token with weight.
    over = torch.nonzero(index >= w.shape[1]).squeeze(1)
    if over.numel():
        positive = torch.flip(w[over] > 0, dims=[1]).to(torch.int8)
        index[over] = w.shape[1] - 1 - positive.argmax(dim=1)
    return index


def sample_tokens(weights: Tensor, generator: torch.Generator) -> Tensor:
    """One token per row of ``weights`` (B, V), drawn in proportion to the weights with one
    uniform per row from ``generator``; (B,) int64."""
    w = normalized(weights)
    u = torch.rand(w.shape[0], generator=generator, dtype=torch.float64)
    return sample_by_inversion(w, u)


def verify_uniforms(p: Tensor, q: Tensor, tokens: Tensor, u: Tensor, v: Tensor) -> BatchVerdict:
    """Speculative verification with given uniforms (the deterministic core).

    Parameters
    ----------
    p, q : Tensor, shape (B, V)
        Target and draft weights (normalized here, float64).
    tokens : Tensor, shape (B,), int
        The draft tokens, drawn from ``q``.
    u, v : Tensor, shape (B,)
        Uniforms in [0, 1): ``u`` for acceptance (``u * q[x] < p[x]``), ``v`` for the
        residual draw.

    Returns
    -------
    BatchVerdict
    """
    pn, qn = normalized(p, "p"), normalized(q, "q")
    if pn.shape != qn.shape:
        raise ValueError(f"p and q must have one shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    x = _check_tokens(tokens, pn.shape[0], pn.shape[1])
    px = pn.gather(1, x.unsqueeze(1)).squeeze(1)
    qx = qn.gather(1, x.unsqueeze(1)).squeeze(1)
    accepted = u.to(torch.float64) * qx < px
    residual = torch.clamp(pn - qn, min=0.0)
    empty = residual.sum(dim=1) <= RESIDUAL_TOLERANCE
    residual = torch.where(empty.unsqueeze(1), pn, residual)
    resampled = sample_by_inversion(residual, v)
    return BatchVerdict(torch.where(accepted, x, resampled), accepted)


def verify_batch(p: Tensor, q: Tensor, tokens: Tensor, generator: torch.Generator) -> BatchVerdict:
    """Speculative verification of a batch of draft tokens (module docstring).

    Parameters
    ----------
    p, q : Tensor, shape (B, V)
        Target and draft weights (non-negative; normalized here in float64). ``q`` must be
        exactly the distribution each draft token was drawn from.
    tokens : Tensor, shape (B,), int
        Draft tokens.
    generator : torch.Generator
        Source of the two uniforms per row (acceptance, then residual draw).

    Returns
    -------
    BatchVerdict
        Emitted tokens (B,) int64, distributed as ``p``, and which were the drafts.
    """
    rows = p.shape[0] if p.ndim == 2 else 0
    u = torch.rand(rows, generator=generator, dtype=torch.float64)
    v = torch.rand(rows, generator=generator, dtype=torch.float64)
    return verify_uniforms(p, q, tokens, u, v)


def verify(p: Tensor, q: Tensor, token: int, u: float, v: float) -> Verdict:
    """Speculative verification of one draft token with given uniforms.

    Parameters
    ----------
    p, q : Tensor, shape (V,)
        Target and draft weights (normalized here).
    token : int
        The draft token, drawn from ``q``.
    u, v : float
        Uniforms in [0, 1): acceptance iff ``u * q[token] < p[token]``; ``v`` draws the
        replacement from the residual by inversion.

    Returns
    -------
    Verdict
    """
    if p.ndim != 1 or q.ndim != 1:
        raise ValueError(f"p and q must be 1-d, got shapes {tuple(p.shape)}, {tuple(q.shape)}")
    for name, value in (("u", u), ("v", v)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value}")
    verdict = verify_uniforms(
        p.unsqueeze(0),
        q.unsqueeze(0),
        torch.tensor([token]),
        torch.tensor([u], dtype=torch.float64),
        torch.tensor([v], dtype=torch.float64),
    )
    return Verdict(int(verdict.tokens[0]), bool(verdict.accepted[0]))


def acceptance_probability(p: Tensor, q: Tensor) -> Tensor:
    """Probability that a draft ``x ~ q`` is accepted, ``sum(min(p, q))`` per row (B,),
    float64; one minus it is the rejection probability and the total variation distance."""
    pn, qn = normalized(p, "p"), normalized(q, "q")
    return torch.minimum(pn, qn).sum(dim=1)


def output_distribution(p: Tensor, q: Tensor, skip_probability: Tensor | None = None) -> Tensor:
    """The distribution of the emitted token, per row (B, V), float64.

    Parameters
    ----------
    p, q : Tensor, shape (B, V)
        Target and draft weights.
    skip_probability : Tensor, shape (B, V), optional
        ``s[x]``: probability that a draft ``x`` is kept without verification (U-HLM's
        skipping; it may depend on ``x``). None: every draft is verified.

    Returns
    -------
    Tensor, shape (B, V)
        ``q s + q (1 - s) min(1, p/q) + r sum_x (1 - s[x]) max(0, q[x] - p[x])`` with ``r``
        the normalized residual; equal to ``p`` when nothing is skipped.
    """
    pn, qn = normalized(p, "p"), normalized(q, "q")
    s = torch.zeros_like(qn) if skip_probability is None else skip_probability.to(torch.float64)
    if s.shape != qn.shape or bool((s < 0).any()) or bool((s > 1).any()):
        raise ValueError(f"skip_probability must have shape {tuple(qn.shape)}, values in [0, 1]")
    excess = torch.clamp(qn - pn, min=0.0)
    residual = torch.clamp(pn - qn, min=0.0)
    mass = residual.sum(dim=1, keepdim=True)
    r = torch.where(mass > 0, residual / torch.where(mass > 0, mass, 1.0), pn)
    rejected = ((1.0 - s) * excess).sum(dim=1, keepdim=True)
    return qn * s + (1.0 - s) * torch.minimum(pn, qn) + r * rejected


def total_variation(a: Tensor, b: Tensor) -> Tensor:
    """Total variation distance ``0.5 * sum|a - b|`` between rows of two distributions (B,)."""
    an, bn = normalized(a, "a"), normalized(b, "b")
    return 0.5 * (an - bn).abs().sum(dim=1)


def skipping_total_variation(p: Tensor, q: Tensor, skip_probability: Tensor) -> Tensor:
    """How far skipping moves the output from ``p``: ``sum_x s[x] max(0, q[x] - p[x])`` (B,).

    The emitted distribution (`output_distribution`) differs from ``p`` by
    ``s (q - p)^+`` on the tokens the draft over-weights and by the residual times the skipped
    excess on the others; the two parts have disjoint support and equal mass, so the total
    variation distance is the skipped excess mass. With ``s = 1`` everywhere it is
    ``1 - sum(min(p, q))`` (the draft alone); with ``s = 0`` it is 0 (exact).
    """
    pn, qn = normalized(p, "p"), normalized(q, "q")
    s = skip_probability.to(torch.float64)
    if s.shape != qn.shape:
        raise ValueError(f"skip_probability must have shape {tuple(qn.shape)}")
    return (s * torch.clamp(qn - pn, min=0.0)).sum(dim=1)
