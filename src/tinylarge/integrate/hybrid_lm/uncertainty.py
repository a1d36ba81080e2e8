"""How unsure the device's draft model is about the token it drafted (U-HLM's skip signal).

Three measures, each vectorized over positions (rows of (B, V) logits), computed in float32
(they only steer the skip decision; the output's exactness never depends on them) and
returned as float64:

- ``temperature`` (U-HLM, Oh et al., arXiv 2412.12687): the draft model draws
  ``perturbations`` tokens at perturbed temperatures; the uncertainty is the fraction of them
  that differ from the drafted token, in ``{0, 1/K, ..., 1}``. Our perturbed temperatures are
  a fixed, evenly spread set rather than random draws: ``T_k = T (1 + s ((2k + 1) / K - 1))``,
  ``k = 0 .. K - 1``, with spread ``s = TEMPERATURE_SPREAD = 0.5`` -- the midpoints of ``K``
  equal bins of ``[T / 2, 3T / 2]``, a stratified version of drawing ``T' ~ U[T / 2, 3T / 2]``
  (sampling the temperature from a range instead of fixing it follows Cecere et al., "Monte
  Carlo Temperature", arXiv 2502.18389). With fixed temperatures the K draws are independent
  Bernoulli trials given the drafted token, so the probability that a token is skipped has a
  closed form (`temperature_skip_probability`, a Poisson-binomial tail).
- ``entropy``: the entropy of the draft distribution at temperature ``T``, nats.
- ``max_probability``: ``1 - max q``, in ``[0, 1 - 1/V]``.

A draft is kept without sending anything when its uncertainty is at most the threshold
(`tinylarge.integrate.hybrid_lm.calibration`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tinylarge.config.hybrid_lm_config import UncertaintyMeasure
from tinylarge.integrate.hybrid_lm.speculative import all_finite, probabilities

#: Half-width of the perturbed temperatures' range, relative to the temperature.
TEMPERATURE_SPREAD: float = 0.5
#: The measures `uncertainty` knows.
MEASURES: tuple[UncertaintyMeasure, ...] = ("temperature", "entropy", "max_probability")


def _check_logits(logits: Tensor) -> Tensor:
    """The logits as float32 (B, V); ``ValueError`` for another shape or a non-finite one."""
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits must have shape (B, V), got {tuple(logits.shape)}")
    if not all_finite(logits):
        raise ValueError("logits must be finite (no NaN or inf)")
    return logits.to(torch.float32)


def _check_perturbations(perturbations: int) -> int:
    if isinstance(perturbations, bool) or not isinstance(perturbations, int) or perturbations < 1:
        raise ValueError(f"perturbations must be an integer >= 1, got {perturbations!r}")
    return perturbations


def _check_temperature(temperature: float) -> float:
    if not 0.0 < temperature < math.inf:
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    return float(temperature)


def perturbed_temperatures(temperature: float, perturbations: int) -> tuple[float, ...]:
    """The K perturbed temperatures ``T (1 + s ((2k + 1) / K - 1))`` (module docstring)."""
    k_total = _check_perturbations(perturbations)
    _check_temperature(temperature)
    return tuple(
        temperature * (1.0 + TEMPERATURE_SPREAD * ((2 * k + 1) / k_total - 1.0))
        for k in range(k_total)
    )


def perturbed_draws(
    logits: Tensor, temperature: float, perturbations: int, generator: torch.Generator
) -> Tensor:
    """One token per row at each perturbed temperature.

    Parameters
    ----------
    logits : Tensor, shape (B, V)
        The draft model's logits.
    temperature : float
        Sampling temperature T, > 0.
    perturbations : int
        K, the number of perturbed draws.
    generator : torch.Generator
        Source of K x B uniforms (temperature by temperature).

    Returns
    -------
    Tensor, shape (B, K), int64

    Notes
    -----
    Drawn by inversion in float32 without normalizing the weights ``exp((z - max z) / T_k)``
    (an uncertainty estimate: the output's exactness never depends on it); a target rounded
    up to the total is clamped to the last token.
    """
    z = _check_logits(logits)
    shifted = z - z.max(dim=1, keepdim=True).values
    weights, cdf = torch.empty_like(shifted), torch.empty_like(shifted)  # reused: no page faults
    draws = []
    for t in perturbed_temperatures(temperature, perturbations):
        torch.mul(shifted, 1.0 / t, out=weights)
        torch.cumsum(weights.exp_(), dim=1, out=cdf)
        u = torch.rand(z.shape[0], 1, generator=generator, dtype=torch.float64)
        target = (u * cdf[:, -1:]).to(torch.float32)
        index = torch.searchsorted(cdf, target, right=True).squeeze(1)
        draws.append(index.clamp_(max=z.shape[1] - 1))
    return torch.stack(draws, dim=1)


def disagreement(draws: Tensor, drafted: Tensor) -> Tensor:
    """Fraction of the perturbed ``draws`` (B, K) that differ from ``drafted`` (B,); float64."""
    if draws.ndim != 2 or drafted.shape != (draws.shape[0],):
        raise ValueError(
            f"draws must be (B, K) and drafted (B,), got {tuple(draws.shape)}, "
            f"{tuple(drafted.shape)}"
        )
    return (draws != drafted.unsqueeze(1)).sum(dim=1).to(torch.float64) / draws.shape[1]


def temperature_uncertainty(
    logits: Tensor,
    drafted: Tensor,
    temperature: float,
    perturbations: int,
    generator: torch.Generator,
) -> Tensor:
    """U-HLM's uncertainty: the fraction of K draws at perturbed temperatures that differ
    from the drafted token (module docstring).

    Parameters
    ----------
    logits : Tensor, shape (B, V)
    drafted : Tensor, shape (B,), int
        The tokens the device drafted.
    temperature : float
    perturbations : int
    generator : torch.Generator

    Returns
    -------
    Tensor, shape (B,), float64, values in {0, 1/K, ..., 1}
    """
    return disagreement(perturbed_draws(logits, temperature, perturbations, generator), drafted)


def log_probabilities(logits: Tensor, temperature: float) -> Tensor:
    """``log_softmax(logits / T)`` in float32 (B, V), the input of the entropy and
    max-probability measures."""
    z = _check_logits(logits)
    return torch.log_softmax(z / _check_temperature(temperature), dim=1)


def entropy_of(log_q: Tensor) -> Tensor:
    """Entropy per row of log-probabilities (B, V), nats, float64."""
    return -(torch.exp(log_q) * log_q).sum(dim=1).to(torch.float64)


def max_probability_of(log_q: Tensor) -> Tensor:
    """``1 - max q`` per row of log-probabilities (B, V), float64, as ``-expm1(max log q)``
    (accurate near certainty)."""
    return -torch.expm1(log_q.max(dim=1).values.to(torch.float64))


def entropy_uncertainty(logits: Tensor, temperature: float) -> Tensor:
    """Entropy of ``softmax(logits / T)`` per row (B,), nats (float32 arithmetic, float64
    result)."""
    return entropy_of(log_probabilities(logits, temperature))


def max_probability_uncertainty(logits: Tensor, temperature: float) -> Tensor:
    """``1 - max softmax(logits / T)`` per row (B,), float64."""
    return max_probability_of(log_probabilities(logits, temperature))


def uncertainty(
    measure: UncertaintyMeasure,
    logits: Tensor,
    drafted: Tensor,
    temperature: float,
    perturbations: int,
    generator: torch.Generator,
) -> Tensor:
    """The uncertainty ``measure`` of each row (B,), float64 (``drafted``, ``perturbations``
    and ``generator`` are used by ``temperature`` only)."""
    if measure == "temperature":
        return temperature_uncertainty(logits, drafted, temperature, perturbations, generator)
    if measure == "entropy":
        return entropy_uncertainty(logits, temperature)
    if measure == "max_probability":
        return max_probability_uncertainty(logits, temperature)
    raise ValueError(f"unknown uncertainty measure {measure!r}; measures: {', '.join(MEASURES)}")


def temperature_skip_probability(
    logits: Tensor, temperature: float, perturbations: int, threshold: float
) -> Tensor:
    """Probability that a draft of each token is kept unsent under the ``temperature``
    measure, ``s[x] = P(fraction of perturbed draws differing from x <= threshold)``.

    Given the drafted token ``x``, draw ``k`` differs with probability ``1 - pi_k[x]``
    (``pi_k`` the distribution at the k-th perturbed temperature), independently of the
    others; the count of differing draws is Poisson-binomial and ``s[x]`` its lower tail,
    computed exactly by dynamic programming over the K draws.

    Parameters
    ----------
    logits : Tensor, shape (B, V)
    temperature : float
    perturbations : int
    threshold : float
        Skip iff the uncertainty is at most this.

    Returns
    -------
    Tensor, shape (B, V), float64
        ``s``, for `tinylarge.integrate.hybrid_lm.speculative.output_distribution`.
    """
    _check_logits(logits)
    temps = perturbed_temperatures(temperature, perturbations)
    k_total = len(temps)
    counts = torch.zeros(*logits.shape, k_total + 1, dtype=torch.float64)
    counts[..., 0] = 1.0
    for t in temps:
        differ = (1.0 - probabilities(logits, t)).unsqueeze(-1)
        shifted = torch.nn.functional.pad(counts[..., :-1], (1, 0))
        counts = counts * (1.0 - differ) + shifted * differ
    kept = [c for c in range(k_total + 1) if c / k_total <= threshold]
    return (
        counts[..., kept].sum(dim=-1) if kept else torch.zeros(*logits.shape, dtype=torch.float64)
    )
