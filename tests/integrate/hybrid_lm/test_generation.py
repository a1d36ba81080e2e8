"""The in-process reference loop: each scheme's uploads, the edge's sessions, the target's
distribution for verified tokens, reproducibility, and a run through our transformer."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from tests.integrate.hybrid_lm.lm_fixtures import BigramModel, chi_square

from tinylarge.integrate.hybrid_lm.calibration import SKIP_NOTHING
from tinylarge.integrate.hybrid_lm.generation import (
    EdgeSession,
    generate,
    generate_many,
    serve_requests,
)
from tinylarge.integrate.hybrid_lm.payload import DistributionCodec
from tinylarge.integrate.hybrid_lm.schemes import CuHlm, Hlm, LlmOnly, SlmOnly, UHlm
from tinylarge.integrate.hybrid_lm.speculative import probabilities
from tinylarge.integrate.hybrid_lm.wire import LlmRequest, TokenRequest

DRAFT, TARGET = BigramModel(seed=1, scale=1.0), BigramModel(seed=2)


def test_each_scheme_uploads_what_it_should() -> None:
    prompt = [1, 2, 3]
    runs = {
        name: generate(scheme, DRAFT, TARGET, prompt, 40, torch.Generator().manual_seed(0))
        for name, scheme in {
            "slm": SlmOnly(), "llm": LlmOnly(), "hlm": Hlm(),
            "u_hlm": UHlm("max_probability", 0.65),
            "cu_hlm": CuHlm(DistributionCodec.truncated(top_k=4), "temperature", 0.25, 4),
        }.items()
    }  # fmt: skip
    assert not runs["slm"].uploaded.any() and runs["slm"].accepted.all()
    assert runs["llm"].uploaded.all() and not runs["llm"].accepted.any()
    assert runs["hlm"].uploaded.all() and 0 < runs["hlm"].accepted.mean() < 1
    for name in ("u_hlm", "cu_hlm"):
        run = runs[name]
        assert 0 < run.uploaded.mean() < 1, name
        assert run.accepted[~run.uploaded].all()  # kept drafts are the tokens
        assert np.isfinite(run.uncertainty).all()
    assert np.isnan(runs["llm"].uncertainty).all() and np.isnan(runs["hlm"].uncertainty).all()
    u = runs["u_hlm"]
    assert ((u.uncertainty > 0.65) == u.uploaded).all()
    for run in runs.values():
        assert run.tokens.shape == (40,) and ((run.tokens >= 0) & (run.tokens < 12)).all()


def test_reproducible_from_the_seed() -> None:
    scheme = UHlm("temperature", 0.25, 4)
    a = generate_many(scheme, DRAFT, TARGET, [[1], [2, 3]], 20, torch.Generator().manual_seed(5))
    b = generate_many(scheme, DRAFT, TARGET, [[1], [2, 3]], 20, torch.Generator().manual_seed(5))
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.tokens, y.tokens) and np.array_equal(x.uploaded, y.uploaded)


@pytest.mark.parametrize(
    "scheme",
    [
        Hlm(0.8),
        LlmOnly(0.8),
        CuHlm(DistributionCodec.truncated(top_k=3), "entropy", SKIP_NOTHING, temperature=0.8),
    ],
    ids=["hlm", "llm", "cu_hlm"],
)
def test_verified_tokens_follow_the_target(scheme: Hlm | LlmOnly | CuHlm) -> None:
    """Two tokens from 2,500 copies of one prompt: both steps follow the target's bigram
    distribution given the previous token (the second step after a verified first token)."""
    runs = generate_many(scheme, DRAFT, TARGET, [[5]] * 2500, 2, torch.Generator().manual_seed(1))
    first = np.array([r.tokens[0] for r in runs])
    p = probabilities(TARGET.table, 0.8)
    assert chi_square(first, p[5])[1] > 1e-3
    second = np.array([r.tokens[1] for r in runs])
    most = int(np.bincount(first).argmax())
    assert chi_square(second[first == most], p[most])[1] > 1e-3


def test_same_models_accept_every_draft() -> None:
    run = generate(Hlm(), TARGET, TARGET, [0], 30, torch.Generator().manual_seed(2))
    assert run.accepted.all()


def test_edge_sessions() -> None:
    g = torch.Generator().manual_seed(0)
    llm = LlmOnly()
    sessions = [EdgeSession(), EdgeSession()]
    replies = serve_requests(llm, TARGET, sessions, [LlmRequest((1, 2)), LlmRequest((3,))], g)
    assert [s.pending for s in sessions] == [[r.token] for r in replies]
    assert sessions[0].state is not None and sessions[0].state.length == 2
    serve_requests(llm, TARGET, sessions[:1], [LlmRequest((4, 5))], g)
    assert sessions[0].state.length == 5  # the pending reply token, then the kept tokens
    with pytest.raises(ValueError, match="must carry its prompt"):
        serve_requests(llm, TARGET, [EdgeSession()], [LlmRequest(())], g)
    with pytest.raises(ValueError, match="distinct session"):
        serve_requests(llm, TARGET, [sessions[0]] * 2, [LlmRequest(())] * 2, g)
    before = sessions[1].state.length if sessions[1].state else 0
    with pytest.raises(ValueError, match="expects an LlmRequest"):
        serve_requests(llm, TARGET, sessions[1:], [TokenRequest((), 0, b"x")], g)
    assert sessions[1].state is not None and sessions[1].state.length == before  # untouched


def test_bad_arguments() -> None:
    g = torch.Generator()
    with pytest.raises(ValueError, match="vocabularies differ"):
        generate(Hlm(), BigramModel(vocab=5), TARGET, [0], 3, g)
    with pytest.raises(ValueError, match="at least one prompt"):
        generate_many(Hlm(), DRAFT, TARGET, [[]], 3, g)
    with pytest.raises(ValueError, match="n_tokens"):
        generate(Hlm(), DRAFT, TARGET, [0], 0, g)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Batch-1 decoding is bound by per-op overhead: one intra-op thread is fastest."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_generation_through_our_transformer() -> None:
    from tinylarge.models.text.language_model import (
        CausalTransformer,
        LmArchitecture,
        OurLanguageModel,
    )

    torch.manual_seed(0)
    toy = LmArchitecture(vocab_size=50, d_model=24, layers=2, heads=2, context=16)
    draft = OurLanguageModel(CausalTransformer(toy), "draft")
    target = OurLanguageModel(CausalTransformer(toy), "target")
    scheme = UHlm("temperature", threshold=0.75, perturbations=4)
    runs = generate_many(
        scheme, draft, target, [[1, 2, 3], [4]], 24, torch.Generator().manual_seed(0)
    )
    for run in runs:  # 24 tokens overflow the 16-token context: the sliding window kicks in
        assert run.tokens.shape == (24,) and 0 < run.uploaded.mean() < 1
        assert ((run.tokens >= 0) & (run.tokens < 50)).all()
