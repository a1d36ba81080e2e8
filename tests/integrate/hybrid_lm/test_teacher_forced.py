"""Teacher-forced scores against an independent computation from the bigram tables, and each
scheme's per-token trace: uploads, bytes (kept tokens included), emitted tokens, distance
from the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.integrate.hybrid_lm.lm_fixtures import BigramModel

from tinylarge.config.hybrid_lm_config import HybridLmConfig, TruncationSpec
from tinylarge.integrate.hybrid_lm import teacher_forced
from tinylarge.integrate.hybrid_lm.calibration import SKIP_NOTHING
from tinylarge.integrate.hybrid_lm.payload import DistributionCodec
from tinylarge.integrate.hybrid_lm.schemes import CuHlm, Hlm, LlmOnly, SlmOnly, UHlm, make_scheme
from tinylarge.integrate.hybrid_lm.teacher_forced import kept_before, scheme_trace, score_positions
from tinylarge.integrate.hybrid_lm.wire import llm_request_bytes, reply_bytes, request_bytes

VOCAB = 12
CONFIG = HybridLmConfig(temperature=0.9, perturbations=4, eval_tokens=100,
                        truncation=TruncationSpec(top_k=3, bits=5))  # fmt: skip


@pytest.fixture(scope="module")
def setup() -> tuple[BigramModel, BigramModel, np.ndarray]:
    ids = np.random.default_rng(0).integers(0, VOCAB, 130)
    return BigramModel(VOCAB, seed=1, scale=1.0), BigramModel(VOCAB, seed=2), ids


def test_scores_match_an_independent_computation(setup) -> None:  # type: ignore[no-untyped-def]
    _, target, ids = setup
    draft = BigramModel(VOCAB, seed=1, scale=1.0)  # fresh: its forward passes are counted
    scores = score_positions(draft, target, ids, CONFIG, torch.Generator().manual_seed(0))
    n = 100  # eval_tokens; windows of 16 tokens: 6 full ones and a partial one
    assert len(scores) == n and np.array_equal(scores.truth, ids[1 : n + 1])
    previous = ids[:n]
    d, t = draft.table.double().numpy()[previous], target.table.double().numpy()[previous]
    q = np.exp(d / 0.9) / np.exp(d / 0.9).sum(1, keepdims=True)
    p = np.exp(t / 0.9) / np.exp(t / 0.9).sum(1, keepdims=True)
    assert np.array_equal(scores.draft_greedy, d.argmax(1))
    assert np.array_equal(scores.target_greedy, t.argmax(1))
    assert np.allclose(scores.acceptance, np.minimum(p, q).sum(1), atol=1e-12)
    assert np.allclose(scores.entropy, -(q * np.log(q)).sum(1), atol=1e-9)
    assert np.allclose(scores.max_probability, 1 - q.max(1), atol=1e-12)
    truncated = DistributionCodec.truncated(top_k=3, bits=5)
    for view, codec in ((scores.full, DistributionCodec.full()), (scores.truncated, truncated)):
        q_sent = codec.prepare(torch.from_numpy(q)).numpy()
        assert view.codec == codec
        assert np.allclose(view.acceptance, np.minimum(p, q_sent).sum(1), atol=1e-12)
        x = view.drafted
        assert (q_sent[np.arange(n), x] > 0).all()
        rejection = np.maximum(0, 1 - p[np.arange(n), x] / q_sent[np.arange(n), x])
        assert np.allclose(view.drafted_rejection, rejection)
        assert set(np.round(view.temperature_uncertainty * 4)) <= {0, 1, 2, 3, 4}
    assert (scores.full.payload_bytes == 2 * VOCAB).all()
    assert (scores.truncated.payload_bytes == truncated.payload_bytes(VOCAB, 3)).all()
    assert draft.calls == 2  # one batch of 6 full windows, then the partial one


def test_subsets_and_reproducibility(setup) -> None:  # type: ignore[no-untyped-def]
    draft, target, ids = setup
    a = score_positions(draft, target, ids, CONFIG, torch.Generator().manual_seed(3))
    b = score_positions(draft, target, ids, CONFIG, torch.Generator().manual_seed(3))
    assert np.array_equal(a.full.drafted, b.full.drafted)
    part = a.select(slice(10, 20))
    assert len(part) == 10 and np.array_equal(part.truncated.drafted, a.truncated.drafted[10:20])
    mask = a.truth == 3
    assert np.array_equal(a.select(mask).entropy, a.entropy[mask])


def test_kept_before() -> None:
    uploaded = np.array([True, False, False, True, False, True, False])
    assert kept_before(uploaded).tolist() == [0, 0, 1, 2, 0, 1, 0]


def test_traces(setup) -> None:  # type: ignore[no-untyped-def]
    draft, target, ids = setup
    scores = score_positions(draft, target, ids, CONFIG, torch.Generator().manual_seed(0))
    n = len(scores)
    llm = scheme_trace(LlmOnly(0.9), scores)
    assert llm.uploaded.all() and (llm.up_bytes == llm_request_bytes(0, VOCAB)).all()
    assert (llm.reply_bytes == reply_bytes(VOCAB)).all() and (llm.output_tv == 0).all()
    assert np.array_equal(llm.emitted, scores.target_greedy)
    slm = scheme_trace(SlmOnly(0.9), scores)
    assert not slm.uploaded.any() and slm.bytes_per_token == 0
    assert np.array_equal(slm.emitted, scores.draft_greedy)
    assert np.allclose(slm.output_tv, 1 - scores.acceptance)
    hlm = scheme_trace(Hlm(0.9), scores)
    assert hlm.uplink_fraction == 1 and (hlm.up_bytes == request_bytes(0, 2 * VOCAB, VOCAB)).all()
    assert np.array_equal(hlm.emitted, scores.target_greedy)
    assert np.array_equal(hlm.acceptance, scores.full.acceptance) and (hlm.output_tv == 0).all()
    threshold = float(np.median(scores.entropy))
    u = scheme_trace(UHlm("entropy", threshold, 4, 0.9), scores)
    skip = scores.entropy <= threshold
    assert np.array_equal(u.uploaded, ~skip)
    k = kept_before(~skip)
    expected = [request_bytes(int(k[i]), 2 * VOCAB, VOCAB) if not skip[i] else 0 for i in range(n)]
    assert u.up_bytes.tolist() == expected
    assert np.array_equal(u.emitted, np.where(skip, scores.draft_greedy, scores.target_greedy))
    assert np.allclose(u.output_tv, np.where(skip, 1 - scores.full.acceptance, 0))
    cu = scheme_trace(make_scheme("cu_hlm", CONFIG, 0.5), scores)
    skip = scores.truncated.temperature_uncertainty <= 0.5
    assert np.array_equal(cu.uploaded, ~skip)
    assert np.allclose(cu.output_tv, np.where(skip, scores.truncated.drafted_rejection, 0))
    assert (cu.up_bytes[~skip] < request_bytes(0, 2 * VOCAB, VOCAB)).all()


def test_trace_refuses_scores_of_other_settings(setup) -> None:  # type: ignore[no-untyped-def]
    draft, target, ids = setup
    scores = score_positions(draft, target, ids, CONFIG, torch.Generator().manual_seed(0))
    other = CuHlm(DistributionCodec.truncated(top_k=4, bits=5), "entropy", SKIP_NOTHING,
                  temperature=0.9)  # fmt: skip
    with pytest.raises(ValueError, match="payload"):
        scheme_trace(other, scores)
    with pytest.raises(ValueError, match=r"temperature 0\.9"):
        scheme_trace(Hlm(1.0), scores)
    with pytest.raises(ValueError, match="perturbations"):
        scheme_trace(UHlm("temperature", 0.5, 8, 0.9), scores)


def test_bad_inputs(setup) -> None:  # type: ignore[no-untyped-def]
    draft, target, ids = setup
    g = torch.Generator()
    with pytest.raises(ValueError, match="vocabularies differ"):
        score_positions(BigramModel(5), target, ids, CONFIG, g)
    with pytest.raises(ValueError, match="1-d integer"):
        score_positions(draft, target, ids.astype(float), CONFIG, g)
    with pytest.raises(ValueError, match="token ids must lie"):
        score_positions(draft, target, np.array([0, VOCAB]), CONFIG, g)


def test_small_chunks_give_the_same_scores(setup, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    draft, target, ids = setup
    whole = score_positions(draft, target, ids, CONFIG, torch.Generator().manual_seed(0))
    monkeypatch.setattr(teacher_forced, "_ELEMENTS_PER_CHUNK", 5 * VOCAB)  # 5 rows a chunk
    chunked = score_positions(draft, target, ids, CONFIG, torch.Generator().manual_seed(0))
    for name in ("truth", "draft_greedy", "target_greedy", "acceptance", "entropy"):
        assert np.array_equal(getattr(whole, name), getattr(chunked, name)), name
    assert np.array_equal(whole.truncated.payload_bytes, chunked.truncated.payload_bytes)
