"""The hybrid schemes, shared by the simulator and the deployment: what the device does with
its draft model's logits, and what the edge does with a request and its target's logits.

- `SlmOnly`: the device samples from its own model; nothing is sent.
- `LlmOnly`: every token is an `LlmRequest`; the edge samples from its model.
- `Hlm`: every draft is sent with its full fp16 distribution and verified by speculative
  sampling (Leviathan et al., arXiv 2211.17192): the output is distributed as the target's.
- `UHlm`: as `Hlm`, but a draft whose uncertainty is at most ``threshold`` is kept without
  sending anything (U-HLM, Oh et al., arXiv 2412.12687).
- `CuHlm`: as `UHlm`, with a truncated, quantized distribution (CU-HLM, arXiv 2505.11788).

Device side: `HybridScheme.draft` / `draft_many` -> `Draft`, and `HybridScheme.request` ->
the message to send (or None). Edge side: `HybridScheme.verify` / `verify_many` ->
`TokenReply`. Both models' distributions are ``softmax(logits / temperature)`` in float64
(`tinylarge.integrate.hybrid_lm.speculative.probabilities`), and the device draws its draft
token from exactly the distribution its payload carries (``q_sent``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tinylarge.config.hybrid_lm_config import (
    HYBRID_SCHEMES,
    HybridLmConfig,
    HybridSchemeName,
    UncertaintyMeasure,
)
from tinylarge.integrate.hybrid_lm.calibration import SKIP_NOTHING
from tinylarge.integrate.hybrid_lm.payload import DistributionCodec
from tinylarge.integrate.hybrid_lm.speculative import (
    probabilities,
    sample_tokens,
    verify_batch,
)
from tinylarge.integrate.hybrid_lm.uncertainty import MEASURES, uncertainty
from tinylarge.integrate.hybrid_lm.wire import LlmRequest, TokenReply, TokenRequest

Request = TokenRequest | LlmRequest


@dataclass(frozen=True)
class Draft:
    """The device's decision on one token.

    Attributes
    ----------
    token : int
        The draft token (drawn from ``q_sent``).
    q_sent : Tensor, shape (V,), float64
        The distribution the token was drawn from (what the payload carries).
    upload : bool
        Send it for verification (False: keep the draft as the next token).
    uncertainty : float
        The draft's uncertainty (NaN when the scheme does not measure one).
    payload : bytes
        The encoded ``q_sent`` when uploaded, else empty.
    """

    token: int
    q_sent: Tensor
    upload: bool
    uncertainty: float
    payload: bytes


def _rows(logits: Tensor) -> Tensor:
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits must have shape (B, V), got {tuple(logits.shape)}")
    return logits


class HybridScheme(ABC):
    """A scheme's device and edge sides (module docstring).

    Attributes
    ----------
    name : str
        One of `HYBRID_SCHEMES`.
    temperature : float
        Sampling temperature of both models.
    uses_draft_model, uses_target_model : bool
        Which models the scheme runs.
    """

    name: HybridSchemeName
    uses_draft_model: bool = True
    uses_target_model: bool = True

    def __init__(self, temperature: float = 1.0) -> None:
        if not 0.0 < temperature < math.inf:
            raise ValueError(f"temperature must be a positive number, got {temperature}")
        self.temperature = float(temperature)

    def draft_many(self, logits: Tensor, generator: torch.Generator) -> list[Draft]:
        """Device side: a `Draft` per row of the draft model's logits (B, V)."""
        raise ValueError(f"scheme {self.name!r} does not draft on the device")

    def draft(self, logits: Tensor, generator: torch.Generator) -> Draft:
        """Device side: the `Draft` of one position's draft logits (V,)."""
        if logits.ndim != 1:
            raise ValueError(f"logits must have shape (V,), got {tuple(logits.shape)}")
        return self.draft_many(logits.unsqueeze(0), generator)[0]

    @abstractmethod
    def request(self, kept: Sequence[int], draft: Draft | None) -> Request | None:
        """Device side: the message for this token (None: nothing is sent), given the tokens
        the edge has not seen (``kept``) and the token's draft (None for LLM only)."""

    @abstractmethod
    def verify_many(
        self, target_logits: Tensor, requests: Sequence[Request], generator: torch.Generator
    ) -> list[TokenReply]:
        """Edge side: the reply to each request, given the target's logits (B, V) after each
        device's context (including the request's kept tokens)."""

    def verify(
        self, target_logits: Tensor, request: Request, generator: torch.Generator
    ) -> TokenReply:
        """Edge side: the reply to one request given the target's logits (V,)."""
        if target_logits.ndim != 1:
            raise ValueError(f"target logits must have shape (V,), got {target_logits.shape}")
        return self.verify_many(target_logits.unsqueeze(0), [request], generator)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(temperature={self.temperature:g})"


class SlmOnly(HybridScheme):
    """The device's model alone: it samples each token; nothing is sent."""

    name: HybridSchemeName = "slm"
    uses_target_model = False

    def draft_many(self, logits: Tensor, generator: torch.Generator) -> list[Draft]:
        q = probabilities(_rows(logits), self.temperature)
        tokens = sample_tokens(q, generator)
        return [Draft(int(t), q[i], False, math.nan, b"") for i, t in enumerate(tokens)]

    def request(self, kept: Sequence[int], draft: Draft | None) -> Request | None:
        return None

    def verify_many(
        self, target_logits: Tensor, requests: Sequence[Request], generator: torch.Generator
    ) -> list[TokenReply]:
        raise ValueError("scheme 'slm' sends nothing to the edge")


class LlmOnly(HybridScheme):
    """The edge's model alone: each token is requested; the edge samples from its model."""

    name: HybridSchemeName = "llm"
    uses_draft_model = False

    def request(self, kept: Sequence[int], draft: Draft | None) -> Request | None:
        return LlmRequest(tuple(int(t) for t in kept))

    def verify_many(
        self, target_logits: Tensor, requests: Sequence[Request], generator: torch.Generator
    ) -> list[TokenReply]:
        p = probabilities(_rows(target_logits), self.temperature)
        if len(requests) != p.shape[0] or not all(isinstance(r, LlmRequest) for r in requests):
            raise ValueError(f"scheme 'llm' expects {p.shape[0]} LlmRequest(s)")
        return [TokenReply(int(t), False) for t in sample_tokens(p, generator)]


class SpeculativeScheme(HybridScheme):
    """A draft verified by speculative sampling, optionally kept unsent when certain.

    Parameters
    ----------
    codec : DistributionCodec
        How the draft distribution is sent.
    measure : str or None
        Uncertainty measure (`tinylarge.integrate.hybrid_lm.uncertainty`); None: send every
        draft.
    threshold : float
        Keep a draft unsent iff its uncertainty <= threshold (`SKIP_NOTHING`: never).
    perturbations : int
        Draws at perturbed temperatures (``temperature`` measure).
    temperature : float
    """

    def __init__(
        self,
        codec: DistributionCodec,
        measure: UncertaintyMeasure | None,
        threshold: float,
        perturbations: int = 8,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(temperature)
        if measure is not None and measure not in MEASURES:
            raise ValueError(f"unknown uncertainty measure {measure!r}; measures: {MEASURES}")
        if math.isnan(threshold):
            raise ValueError("threshold must be a number, got NaN")
        if isinstance(perturbations, bool) or perturbations < 1:
            raise ValueError(f"perturbations must be >= 1, got {perturbations}")
        self.codec = codec
        self.measure = measure
        self.threshold = float(threshold)
        self.perturbations = int(perturbations)

    def draft_many(self, logits: Tensor, generator: torch.Generator) -> list[Draft]:
        logits = _rows(logits)
        q_sent = self.codec.prepare(probabilities(logits, self.temperature))
        tokens = sample_tokens(q_sent, generator)
        if self.measure is None:
            u = torch.full((logits.shape[0],), math.nan, dtype=torch.float64)
            upload = torch.ones(logits.shape[0], dtype=torch.bool)
        else:
            u = uncertainty(
                self.measure, logits, tokens, self.temperature, self.perturbations, generator
            )
            upload = u > self.threshold
        return [
            Draft(
                int(tokens[i]),
                q_sent[i],
                bool(upload[i]),
                float(u[i]),
                self.codec.encode(q_sent[i]) if bool(upload[i]) else b"",
            )
            for i in range(logits.shape[0])
        ]

    def request(self, kept: Sequence[int], draft: Draft | None) -> Request | None:
        if draft is None:
            raise ValueError(f"scheme {self.name!r} needs the token's draft")
        if not draft.upload:
            return None
        return TokenRequest(tuple(int(t) for t in kept), draft.token, draft.payload)

    def decode_request(self, request: Request, vocab: int) -> Tensor:
        """``q_sent`` (V,) of a request; ``ValueError`` for a request this scheme does not
        take (wrong type, malformed payload, a draft token its distribution cannot draw)."""
        if not isinstance(request, TokenRequest):
            raise ValueError(f"scheme {self.name!r} expects a TokenRequest, got {request!r}")
        q = self.codec.decode(request.payload, vocab)
        if not 0 <= request.draft < vocab or float(q[request.draft]) <= 0.0:
            raise ValueError(
                f"draft token {request.draft} has no probability in the request's distribution"
            )
        return q

    def verify_many(
        self, target_logits: Tensor, requests: Sequence[Request], generator: torch.Generator
    ) -> list[TokenReply]:
        p = probabilities(_rows(target_logits), self.temperature)
        if len(requests) != p.shape[0]:
            raise ValueError(f"got {p.shape[0]} rows of logits for {len(requests)} requests")
        if not requests:
            return []
        q = torch.stack([self.decode_request(r, p.shape[1]) for r in requests])
        drafts = torch.tensor([r.draft for r in requests if isinstance(r, TokenRequest)])
        verdict = verify_batch(p, q, drafts, generator)
        return [
            TokenReply(int(t), bool(a))
            for t, a in zip(verdict.tokens, verdict.accepted, strict=True)
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(codec={self.codec.label!r}, measure={self.measure!r}, "
            f"threshold={self.threshold:g}, perturbations={self.perturbations}, "
            f"temperature={self.temperature:g})"
        )


class Hlm(SpeculativeScheme):
    """Every draft sent with its full fp16 distribution and verified (exact)."""

    name: HybridSchemeName = "hlm"

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__(DistributionCodec.full(), None, SKIP_NOTHING, 1, temperature)


class UHlm(SpeculativeScheme):
    """U-HLM: a draft with uncertainty <= ``threshold`` is kept unsent; others as `Hlm`."""

    name: HybridSchemeName = "u_hlm"

    def __init__(
        self,
        measure: UncertaintyMeasure,
        threshold: float,
        perturbations: int = 8,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(DistributionCodec.full(), measure, threshold, perturbations, temperature)


class CuHlm(SpeculativeScheme):
    """CU-HLM: as `UHlm`, sending a truncated, quantized distribution (``codec``)."""

    name: HybridSchemeName = "cu_hlm"

    def __init__(
        self,
        codec: DistributionCodec,
        measure: UncertaintyMeasure,
        threshold: float,
        perturbations: int = 8,
        temperature: float = 1.0,
    ) -> None:
        if codec.kind != "truncated":
            raise ValueError("CU-HLM sends a truncated distribution: use a truncated codec")
        super().__init__(codec, measure, threshold, perturbations, temperature)


def make_scheme(
    name: HybridSchemeName, config: HybridLmConfig, threshold: float | None = None
) -> HybridScheme:
    """The scheme ``name`` as a scenario's ``[hybrid_lm]`` configures it.

    Parameters
    ----------
    name : str
        One of `HYBRID_SCHEMES`.
    config : HybridLmConfig
        Temperature, uncertainty measure, perturbations and truncation.
    threshold : float, optional
        The calibrated skip threshold (`tinylarge.integrate.hybrid_lm.calibration`);
        required by ``u_hlm`` and ``cu_hlm``.
    """
    t = config.temperature
    if name == "slm":
        return SlmOnly(t)
    if name == "llm":
        return LlmOnly(t)
    if name == "hlm":
        return Hlm(t)
    if name not in HYBRID_SCHEMES:
        raise ValueError(f"unknown scheme {name!r}; schemes: {', '.join(HYBRID_SCHEMES)}")
    if threshold is None:
        raise ValueError(f"scheme {name!r} needs a threshold (calibrate it first)")
    if name == "u_hlm":
        return UHlm(config.uncertainty, threshold, config.perturbations, t)
    codec = DistributionCodec.from_spec(config.truncation)
    return CuHlm(codec, config.uncertainty, threshold, config.perturbations, t)
