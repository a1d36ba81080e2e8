"""The schemes' device and edge sides: which drafts go up, what the payload carries, exact
outputs through the scheme objects (HLM, and CU-HLM's truncated payload), LLM-only sampling
and refused requests."""

from __future__ import annotations

import math

import pytest
import torch
from tests.integrate.hybrid_lm.lm_fixtures import P_TOY, chi_square

from tinylarge.config.hybrid_lm_config import HybridLmConfig, TruncationSpec
from tinylarge.integrate.hybrid_lm.calibration import SKIP_NOTHING
from tinylarge.integrate.hybrid_lm.payload import DistributionCodec
from tinylarge.integrate.hybrid_lm.schemes import (
    CuHlm,
    Hlm,
    LlmOnly,
    SlmOnly,
    SpeculativeScheme,
    UHlm,
    make_scheme,
)
from tinylarge.integrate.hybrid_lm.speculative import probabilities
from tinylarge.integrate.hybrid_lm.wire import LlmRequest, TokenRequest

N = 10_000
DRAFT_LOGITS = torch.log(torch.tensor([0.05, 0.40, 0.05, 0.25, 0.05, 0.10, 0.05, 0.05]))
TARGET_LOGITS = torch.log(P_TOY + 1e-300).float()  # -inf is not allowed; p[7] ~ 0


def _run(scheme: SpeculativeScheme, seed: int = 0) -> tuple[torch.Tensor, list[bool]]:
    """Draft N tokens, verify the uploaded ones in one batch; emitted tokens, uploads."""
    generator = torch.Generator().manual_seed(seed)
    drafts = scheme.draft_many(DRAFT_LOGITS.expand(N, -1), generator)
    requests = [scheme.request((), d) for d in drafts]
    sent = [i for i, r in enumerate(requests) if r is not None]
    replies = scheme.verify_many(TARGET_LOGITS.expand(len(sent), -1),
                                 [requests[i] for i in sent], generator)  # fmt: skip
    tokens = [d.token for d in drafts]
    for i, reply in zip(sent, replies, strict=True):
        tokens[i] = reply.token
    return torch.tensor(tokens), [r is not None for r in requests]


@pytest.mark.parametrize(
    "scheme",
    [Hlm(), CuHlm(DistributionCodec.truncated(top_k=3, bits=4), "entropy", SKIP_NOTHING)],
    ids=["hlm", "cu_hlm"],
)
def test_verified_schemes_output_the_target_distribution(scheme: SpeculativeScheme) -> None:
    tokens, uploaded = _run(scheme)
    assert all(uploaded)
    p = probabilities(TARGET_LOGITS, 1.0)
    assert chi_square(tokens, torch.where(p > 1e-200, p, 0.0))[1] > 1e-3


def test_drafts_carry_what_they_were_drawn_from() -> None:
    codec = DistributionCodec.truncated(top_k=3, bits=4)
    scheme = CuHlm(codec, "temperature", 0.3, perturbations=4, temperature=0.8)
    drafts = scheme.draft_many(DRAFT_LOGITS.expand(200, -1), torch.Generator().manual_seed(1))
    q_sent = codec.prepare(probabilities(DRAFT_LOGITS, 0.8))
    for d in drafts:
        assert torch.equal(d.q_sent, q_sent) and float(q_sent[d.token]) > 0
        assert d.upload == (d.uncertainty > 0.3) and d.uncertainty in (0, 0.25, 0.5, 0.75, 1)
        assert d.payload == (codec.encode(q_sent) if d.upload else b"")
    assert 0 < sum(d.upload for d in drafts) < 200


def test_skipping_and_baselines() -> None:
    g = torch.Generator().manual_seed(2)
    keep_all = UHlm("max_probability", threshold=1.0)
    assert not any(d.upload for d in keep_all.draft_many(DRAFT_LOGITS.expand(50, -1), g))
    send_all = UHlm("max_probability", threshold=SKIP_NOTHING)
    assert all(d.upload for d in send_all.draft_many(DRAFT_LOGITS.expand(50, -1), g))
    slm = SlmOnly()
    drafts = slm.draft_many(DRAFT_LOGITS.expand(N, -1), g)
    assert slm.request([1], drafts[0]) is None and not drafts[0].upload
    q = probabilities(DRAFT_LOGITS, 1.0)
    assert chi_square(torch.tensor([d.token for d in drafts]), q)[1] > 1e-3
    assert math.isnan(drafts[0].uncertainty)


def test_llm_only_samples_from_the_target() -> None:
    llm = LlmOnly(temperature=0.7)
    assert llm.request([4, 5], None) == LlmRequest((4, 5))
    replies = llm.verify_many(TARGET_LOGITS.expand(N, -1), [LlmRequest(())] * N,
                              torch.Generator().manual_seed(3))  # fmt: skip
    assert not any(r.accepted for r in replies)
    p = probabilities(TARGET_LOGITS, 0.7)
    assert (
        chi_square(torch.tensor([r.token for r in replies]), torch.where(p > 1e-200, p, 0.0))[1]
        > 1e-3
    )
    with pytest.raises(ValueError, match="does not draft"):
        llm.draft(DRAFT_LOGITS, torch.Generator())


def test_refused_requests() -> None:
    g = torch.Generator()
    hlm = Hlm()
    with pytest.raises(ValueError, match="expects a TokenRequest"):
        hlm.verify(TARGET_LOGITS, LlmRequest(()), g)
    q_sent = DistributionCodec.truncated(top_k=2).prepare(probabilities(DRAFT_LOGITS, 1.0))
    cu = CuHlm(DistributionCodec.truncated(top_k=2), "entropy", 0.5)
    payload = DistributionCodec.truncated(top_k=2).encode(q_sent)
    with pytest.raises(ValueError, match="no probability"):
        cu.verify(TARGET_LOGITS, TokenRequest((), 0, payload), g)  # token 0 was not kept
    with pytest.raises(ValueError, match="has 16 bytes"):
        hlm.verify(TARGET_LOGITS, TokenRequest((), 0, payload), g)
    with pytest.raises(ValueError, match="expects 1 LlmRequest"):
        LlmOnly().verify(TARGET_LOGITS, TokenRequest((), 0, payload), g)
    with pytest.raises(ValueError, match="sends nothing"):
        SlmOnly().verify(TARGET_LOGITS, LlmRequest(()), g)
    with pytest.raises(ValueError, match="needs the token's draft"):
        hlm.request((), None)


def test_make_scheme() -> None:
    config = HybridLmConfig(temperature=0.9, uncertainty="entropy", perturbations=5,
                            truncation=TruncationSpec(top_k=4, bits=6))  # fmt: skip
    assert isinstance(make_scheme("slm", config), SlmOnly)
    assert isinstance(make_scheme("llm", config), LlmOnly)
    hlm = make_scheme("hlm", config)
    assert isinstance(hlm, Hlm) and hlm.temperature == 0.9 and hlm.measure is None
    u = make_scheme("u_hlm", config, 0.4)
    assert isinstance(u, UHlm) and (u.measure, u.threshold, u.perturbations) == ("entropy", 0.4, 5)
    assert u.codec == DistributionCodec.full()
    cu = make_scheme("cu_hlm", config, 0.4)
    assert isinstance(cu, CuHlm) and cu.codec == DistributionCodec.truncated(top_k=4, bits=6)
    with pytest.raises(ValueError, match="needs a threshold"):
        make_scheme("u_hlm", config)
    with pytest.raises(ValueError, match="unknown scheme"):
        make_scheme("spec", config)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="truncated codec"):
        CuHlm(DistributionCodec.full(), "entropy", 0.1)
    with pytest.raises(ValueError, match="NaN"):
        UHlm("entropy", math.nan)
