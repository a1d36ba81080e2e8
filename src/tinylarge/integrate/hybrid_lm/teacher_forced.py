"""The schemes on held-out text under teacher forcing: what each position would cost and emit.

`score_positions` runs both models over held-out text once (`LanguageModel.logits` on
windows of the shorter context, batched) and keeps, per position, everything the schemes need:
the true next token, both models' greedy tokens, the acceptance probability
``sum(min(p, q))`` at the scenario's temperature, the draft's uncertainty by each measure, and
a draft token drawn from each distribution the device may send (full fp16 and CU-HLM's
truncated one) with its rejection probability and payload size. `scheme_trace` then turns
the scores into a `TokenTrace` per scheme (uploads, bytes each way, emitted greedy token) for
any threshold, without running a model again.

Conventions:

- Windows do not overlap: the first positions of a window see a short context, the same for
  both models (as in the usual chunked perplexity evaluation).
- Greedy emission under speculative verification: an uploaded draft greedy token is accepted
  iff it equals the target's greedy token, else the target's is emitted -- so an uploaded
  position always emits the target's greedy token; a position kept unsent emits the draft's.
- The skip decision at a position uses the uncertainty of a token *drawn* from the sent
  distribution (as the device does when sampling), computed with the same draws for both
  distributions (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from tinylarge.config.hybrid_lm_config import HybridLmConfig, UncertaintyMeasure
from tinylarge.integrate.hybrid_lm.payload import DistributionCodec
from tinylarge.integrate.hybrid_lm.schemes import HybridScheme, LlmOnly, SpeculativeScheme
from tinylarge.integrate.hybrid_lm.speculative import probabilities, sample_by_inversion
from tinylarge.integrate.hybrid_lm.uncertainty import (
    disagreement,
    entropy_of,
    log_probabilities,
    max_probability_of,
    perturbed_draws,
)
from tinylarge.integrate.hybrid_lm.wire import llm_request_bytes, reply_bytes, request_sizes
from tinylarge.models.text.language_model import LanguageModel

#: Float64 elements per (positions x vocabulary) array while scoring (bounds memory, ~32 MB).
_ELEMENTS_PER_CHUNK = 1 << 22


@dataclass(frozen=True)
class DraftScores:
    """One way of sending the draft distribution, at every position (arrays of shape (n,)).

    Attributes
    ----------
    codec : DistributionCodec
        How the distribution is sent (``q_sent = codec.prepare(q)``).
    acceptance : ndarray of float64
        ``sum(min(p, q_sent))``: probability that the target accepts a draft from ``q_sent``.
    drafted : ndarray of int64
        A token drawn from ``q_sent``.
    drafted_rejection : ndarray of float64
        ``max(0, 1 - p[x] / q_sent[x])`` of that token ``x``.
    temperature_uncertainty : ndarray of float64
        Fraction of the perturbed-temperature draws differing from ``drafted``.
    payload_bytes : ndarray of int64
        The encoded ``q_sent``, bytes.
    """

    codec: DistributionCodec
    acceptance: NDArray[np.float64]
    drafted: NDArray[np.int64]
    drafted_rejection: NDArray[np.float64]
    temperature_uncertainty: NDArray[np.float64]
    payload_bytes: NDArray[np.int64]


@dataclass(frozen=True)
class PositionScores:
    """Both models on held-out positions (arrays of shape (n,); module docstring).

    Attributes
    ----------
    truth, draft_greedy, target_greedy : ndarray of int64
        The true next token and each model's most probable one.
    acceptance : ndarray of float64
        ``sum(min(p, q))`` of the unquantized distributions at ``temperature``.
    entropy, max_probability : ndarray of float64
        The draft's ``entropy`` (nats) and ``max_probability`` (``1 - max q``) uncertainty.
    full, truncated : DraftScores
        Sending the full fp16 distribution (HLM, U-HLM) and the truncated one (CU-HLM).
    vocab_size : int
    temperature : float
    perturbations : int
        Perturbed draws of the ``temperature`` measure.
    """

    truth: NDArray[np.int64]
    draft_greedy: NDArray[np.int64]
    target_greedy: NDArray[np.int64]
    acceptance: NDArray[np.float64]
    entropy: NDArray[np.float64]
    max_probability: NDArray[np.float64]
    full: DraftScores
    truncated: DraftScores
    vocab_size: int
    temperature: float
    perturbations: int

    def __len__(self) -> int:
        return int(self.truth.size)

    def view(self, truncated: bool) -> DraftScores:
        """The `DraftScores` of the truncated (CU-HLM) or the full distribution."""
        return self.truncated if truncated else self.full

    def uncertainty(self, measure: UncertaintyMeasure, truncated: bool = False) -> NDArray[Any]:
        """The draft's uncertainty by ``measure`` at each position (n,)."""
        if measure == "temperature":
            return self.view(truncated).temperature_uncertainty
        if measure == "entropy":
            return self.entropy
        if measure == "max_probability":
            return self.max_probability
        raise ValueError(f"unknown uncertainty measure {measure!r}")

    def select(self, index: ArrayLike | slice) -> PositionScores:
        """The scores at ``index`` (an integer array, a boolean mask or a slice)."""
        pick = index if isinstance(index, slice) else np.asarray(index)
        return replace(
            self,
            **_cut_arrays(self, pick),
            full=replace(self.full, **_cut_arrays(self.full, pick)),
            truncated=replace(self.truncated, **_cut_arrays(self.truncated, pick)),
        )


def _cut_arrays(scores: PositionScores | DraftScores, pick: Any) -> dict[str, Any]:
    """The array fields of ``scores`` indexed by ``pick``."""
    arrays = {f.name: getattr(scores, f.name) for f in fields(scores)}
    return {name: value[pick] for name, value in arrays.items() if isinstance(value, np.ndarray)}


def _draft_view(
    codec: DistributionCodec, q: Tensor, p: Tensor, draws: Tensor, v: Tensor
) -> dict[str, NDArray[Any]]:
    """Acceptance, a drawn token, its rejection and uncertainty, payload size of one codec."""
    q_sent = codec.prepare(q)
    x = sample_by_inversion(q_sent, v)
    qx = q_sent.gather(1, x.unsqueeze(1)).squeeze(1)
    px = p.gather(1, x.unsqueeze(1)).squeeze(1)
    kept = codec.kept_counts(q_sent).numpy()
    return {
        "acceptance": torch.minimum(p, q_sent).sum(dim=1).numpy(),
        "drafted": x.numpy(),
        "drafted_rejection": torch.clamp(1.0 - px / qx, min=0.0).numpy(),
        "temperature_uncertainty": disagreement(draws, x).numpy(),
        "payload_bytes": codec.payload_sizes(kept, q.shape[1]),
    }


def _score_chunk(
    draft_logits: Tensor,
    target_logits: Tensor,
    config: HybridLmConfig,
    codecs: tuple[DistributionCodec, DistributionCodec],
    generator: torch.Generator,
) -> dict[str, Any]:
    """Every score of one chunk of positions (logits (n, V) of each model)."""
    t = config.temperature
    q, p = probabilities(draft_logits, t), probabilities(target_logits, t)
    draws = perturbed_draws(draft_logits, t, config.perturbations, generator)
    v = torch.rand(q.shape[0], generator=generator, dtype=torch.float64)
    log_q = log_probabilities(draft_logits, t)
    return {
        "draft_greedy": draft_logits.argmax(dim=1).numpy(),
        "target_greedy": target_logits.argmax(dim=1).numpy(),
        "acceptance": torch.minimum(p, q).sum(dim=1).numpy(),
        "entropy": entropy_of(log_q).numpy(),
        "max_probability": max_probability_of(log_q).numpy(),
        "full": _draft_view(codecs[0], q, p, draws, v),
        "truncated": _draft_view(codecs[1], q, p, draws, v),
    }


def _windows(ids: Tensor, positions: int, width: int, per_batch: int) -> list[Tensor]:
    """Batches of non-overlapping input windows covering tokens ``0 .. positions - 1``
    (equal widths within a batch; the last, shorter window alone)."""
    full = positions // width
    batches = [
        ids[s * width : min(s + per_batch, full) * width].reshape(-1, width)
        for s in range(0, full, per_batch)
    ]
    if positions % width:
        batches.append(ids[full * width : positions].unsqueeze(0))
    return batches


def _check_inputs(draft: LanguageModel, target: LanguageModel, token_ids: ArrayLike) -> Tensor:
    if draft.vocab_size != target.vocab_size:
        raise ValueError(
            f"draft and target vocabularies differ: {draft.vocab_size} vs {target.vocab_size}"
        )
    ids = np.asarray(token_ids)
    if ids.ndim != 1 or ids.size < 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"token_ids must be a 1-d integer array of >= 2 tokens, got {ids.shape}")
    if ids.min() < 0 or ids.max() >= target.vocab_size:
        raise ValueError(f"token ids must lie in 0..{target.vocab_size - 1}")
    return torch.from_numpy(ids.astype(np.int64))


def score_positions(
    draft: LanguageModel,
    target: LanguageModel,
    token_ids: ArrayLike,
    config: HybridLmConfig,
    generator: torch.Generator,
) -> PositionScores:
    """Score both models on held-out text (module docstring).

    Parameters
    ----------
    draft, target : LanguageModel
        The device's and the edge's models (one vocabulary).
    token_ids : array_like of int, shape (m,)
        Held-out text; the first ``min(config.eval_tokens, m - 1)`` next-token positions are
        scored (``token_ids[1:]`` predicted from what precedes them within a window).
    config : HybridLmConfig
        Temperature, perturbations and CU-HLM's truncation.
    generator : torch.Generator
        Source of the perturbed-temperature draws and the drawn draft tokens.

    Returns
    -------
    PositionScores
    """
    ids = _check_inputs(draft, target, token_ids)
    positions = min(config.eval_tokens, ids.numel() - 1)
    width = min(draft.context_tokens, target.context_tokens)
    per_batch = max(1, _ELEMENTS_PER_CHUNK // (target.vocab_size * width))
    codecs = (DistributionCodec.full(), DistributionCodec.from_spec(config.truncation))
    rows = max(1, _ELEMENTS_PER_CHUNK // target.vocab_size)  # long windows, large vocabularies
    chunks = []
    for batch in _windows(ids, positions, width, per_batch):
        d = draft.logits(batch).reshape(-1, draft.vocab_size)
        t = target.logits(batch).reshape(-1, target.vocab_size)
        for start in range(0, d.shape[0], rows):
            part = slice(start, start + rows)
            chunks.append(_score_chunk(d[part], t[part], config, codecs, generator))
    return _assemble(chunks, ids[1 : positions + 1].numpy(), codecs, config, target.vocab_size)


def _assemble(
    chunks: list[dict[str, Any]],
    truth: NDArray[np.int64],
    codecs: tuple[DistributionCodec, DistributionCodec],
    config: HybridLmConfig,
    vocab: int,
) -> PositionScores:
    def joined(key: str, part: str | None = None) -> NDArray[Any]:
        return np.concatenate([c[part][key] if part else c[key] for c in chunks])

    views = [
        DraftScores(codec, *(joined(f.name, part) for f in fields(DraftScores)[1:]))
        for codec, part in zip(codecs, ("full", "truncated"), strict=True)
    ]
    return PositionScores(
        truth=truth,
        draft_greedy=joined("draft_greedy"),
        target_greedy=joined("target_greedy"),
        acceptance=joined("acceptance"),
        entropy=joined("entropy"),
        max_probability=joined("max_probability"),
        full=views[0],
        truncated=views[1],
        vocab_size=vocab,
        temperature=config.temperature,
        perturbations=config.perturbations,
    )


@dataclass(frozen=True)
class TokenTrace:
    """What a scheme does at each scored position (arrays of shape (n,)).

    Attributes
    ----------
    scheme : str
    uploaded : ndarray of bool
        A request goes to the edge for this token (every token for LLM only).
    up_bytes : ndarray of int64
        The request's bytes (`tinylarge.integrate.hybrid_lm.wire`, kept tokens included; the
        prompt of the first request is not counted), 0 when nothing is sent.
    reply_bytes : ndarray of int64
        The reply's bytes, 0 when nothing is sent.
    emitted : ndarray of int64
        The token emitted under greedy decoding (module docstring).
    acceptance : ndarray of float64
        Probability that the token emitted is the device's draft: ``sum(min(p, q_sent))``
        for an uploaded draft, 1 for a kept one, 0 for LLM only.
    output_tv : ndarray of float64
        Total variation distance between the scheme's next-token distribution and the
        target's: 0 when verified, ``1 - acceptance`` for the draft model alone; for drafts
        kept by the ``temperature`` measure a one-sample unbiased estimate (the kept token's
        ``max(0, 1 - p/q)``; `tinylarge.integrate.hybrid_lm.speculative.skipping_total_variation`).
    uncertainty : ndarray of float64
        The uncertainty the skip decision used (NaN where none is measured).
    """

    scheme: str
    uploaded: NDArray[np.bool_]
    up_bytes: NDArray[np.int64]
    reply_bytes: NDArray[np.int64]
    emitted: NDArray[np.int64]
    acceptance: NDArray[np.float64]
    output_tv: NDArray[np.float64]
    uncertainty: NDArray[np.float64]

    @property
    def uplink_fraction(self) -> float:
        """Fraction of tokens with a request to the edge (= the LLM's share of calls)."""
        return float(self.uploaded.mean())

    @property
    def bytes_per_token(self) -> float:
        """Mean bytes per token, both ways."""
        return float((self.up_bytes + self.reply_bytes).mean())


def kept_before(uploaded: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Positions kept unsent since the last upload (or the start), before each position."""
    index = np.arange(uploaded.size)
    last = np.maximum.accumulate(np.where(uploaded, index, -1))
    previous = np.concatenate([[-1], last[:-1]])
    return np.asarray(index - previous - 1, dtype=np.int64)


def _baseline_trace(scheme: HybridScheme, scores: PositionScores) -> TokenTrace:
    n, vocab = len(scores), scores.vocab_size
    nan = np.full(n, np.nan)
    if isinstance(scheme, LlmOnly):
        return TokenTrace(
            scheme.name, np.ones(n, np.bool_), np.full(n, llm_request_bytes(0, vocab)),
            np.full(n, reply_bytes(vocab)), scores.target_greedy.copy(), np.zeros(n),
            np.zeros(n), nan,
        )  # fmt: skip
    return TokenTrace(
        scheme.name, np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(n, np.int64),
        scores.draft_greedy.copy(), np.ones(n), 1.0 - scores.acceptance, nan,
    )  # fmt: skip


def _check_matches(scheme: SpeculativeScheme, scores: PositionScores, view: DraftScores) -> None:
    if view.codec != scheme.codec:
        raise ValueError(
            f"the scores were computed for the payload {view.codec.label!r}, the scheme sends "
            f"{scheme.codec.label!r}: score with the scheme's truncation"
        )
    if scheme.temperature != scores.temperature or (
        scheme.measure == "temperature" and scheme.perturbations != scores.perturbations
    ):
        raise ValueError(
            f"the scores were computed at temperature {scores.temperature:g} with "
            f"{scores.perturbations} perturbations; the scheme uses {scheme.temperature:g} and "
            f"{scheme.perturbations}"
        )


def scheme_trace(scheme: HybridScheme, scores: PositionScores) -> TokenTrace:
    """What ``scheme`` does at each scored position (`TokenTrace`; module docstring).

    Parameters
    ----------
    scheme : HybridScheme
        Its temperature (and perturbations, truncation) must be those of the scores.
    scores : PositionScores

    Returns
    -------
    TokenTrace
    """
    if not isinstance(scheme, SpeculativeScheme):
        return _baseline_trace(scheme, scores)
    view = scores.view(scheme.codec.kind == "truncated")
    _check_matches(scheme, scores, view)
    n, vocab = len(scores), scores.vocab_size
    if scheme.measure is None:
        u, skip = np.full(n, np.nan), np.zeros(n, np.bool_)
    else:
        u = scores.uncertainty(scheme.measure, scheme.codec.kind == "truncated")
        skip = u <= scheme.threshold
    up = ~skip
    up_bytes = np.zeros(n, np.int64)
    up_bytes[up] = request_sizes(kept_before(up)[up], view.payload_bytes[up], vocab)
    kept_tv = view.drafted_rejection if scheme.measure == "temperature" else 1 - view.acceptance
    return TokenTrace(
        scheme=scheme.name,
        uploaded=up,
        up_bytes=up_bytes,
        reply_bytes=np.where(up, reply_bytes(vocab), 0).astype(np.int64),
        emitted=np.where(up, scores.target_greedy, scores.draft_greedy),
        acceptance=np.where(up, view.acceptance, 1.0),
        output_tv=np.where(skip, kept_tv, 0.0),
        uncertainty=np.asarray(u, dtype=np.float64),
    )
