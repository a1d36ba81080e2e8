"""Quality relative to the LLM, calibration on scores, and the threshold sweep's ends (HLM at
the bottom, the draft model alone at the top)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.integrate.hybrid_lm.lm_fixtures import BigramModel

from tinylarge.config.hybrid_lm_config import HybridLmConfig
from tinylarge.integrate.hybrid_lm.calibration import RejectionFit, threshold_for
from tinylarge.integrate.hybrid_lm.quality import (
    calibrate,
    llm_accuracy,
    next_token_accuracy,
    quality_vs_llm,
    threshold_sweep,
)
from tinylarge.integrate.hybrid_lm.schemes import Hlm, LlmOnly, SlmOnly
from tinylarge.integrate.hybrid_lm.teacher_forced import (
    PositionScores,
    scheme_trace,
    score_positions,
)

CONFIG = HybridLmConfig(perturbations=4, eval_tokens=2000)


@pytest.fixture(scope="module")
def scores() -> PositionScores:
    """Text sampled from the target bigram itself, so the target predicts it best."""
    target, draft = BigramModel(16, seed=2, scale=2.5), BigramModel(16, seed=2, scale=1.0)
    draft.table += 0.8 * torch.randn(16, 16, generator=torch.Generator().manual_seed(9))
    rng = np.random.default_rng(0)
    p = torch.softmax(target.table.double(), 1).numpy()
    ids = [0]
    for _ in range(2100):
        ids.append(int(rng.choice(16, p=p[ids[-1]])))
    return score_positions(draft, target, np.array(ids), CONFIG, torch.Generator().manual_seed(0))


def test_accuracy_relative_to_the_llm(scores: PositionScores) -> None:
    llm = llm_accuracy(scores)
    assert llm == float((scores.target_greedy == scores.truth).mean()) > 0
    assert quality_vs_llm(scheme_trace(LlmOnly(), scores), scores) == 1.0
    assert quality_vs_llm(scheme_trace(Hlm(), scores), scores) == 1.0
    slm = scheme_trace(SlmOnly(), scores)
    slm_accuracy = float((scores.draft_greedy == scores.truth).mean())
    assert next_token_accuracy(slm, scores) == slm_accuracy
    assert quality_vs_llm(slm, scores) == pytest.approx(slm_accuracy / llm) and slm_accuracy < llm


def test_calibration_fits_rejection_against_uncertainty(scores: PositionScores) -> None:
    result = calibrate(scores, "entropy", 0.3)
    fit = RejectionFit.fit(scores.entropy, 1 - scores.full.acceptance)
    assert result.fit == fit and result.threshold == threshold_for(fit, 0.3)
    truncated = calibrate(scores, "temperature", 0.3, truncated=True)
    expected = RejectionFit.fit(scores.truncated.temperature_uncertainty,
                                1 - scores.truncated.acceptance)  # fmt: skip
    assert truncated.fit == expected and truncated.measure == "temperature"


@pytest.mark.parametrize("truncated", [False, True])
def test_threshold_sweep_runs_from_hlm_to_the_draft_alone(
    scores: PositionScores, truncated: bool
) -> None:
    thresholds = [-math.inf, *np.quantile(scores.entropy, [0.25, 0.5, 0.75]), math.inf]
    sweep = threshold_sweep(scores, thresholds, "entropy", truncated=truncated)
    assert sweep.uplink_fraction[0] == 1 and sweep.uplink_fraction[-1] == 0
    assert (np.diff(sweep.uplink_fraction) <= 0).all()
    assert sweep.quality_vs_llm[0] == 1 and sweep.output_tv[0] == 0
    slm = scheme_trace(SlmOnly(), scores)
    assert sweep.quality_vs_llm[-1] == pytest.approx(quality_vs_llm(slm, scores))
    view = scores.view(truncated)
    assert sweep.output_tv[-1] == pytest.approx(float((1 - view.acceptance).mean()))
    assert sweep.bytes_per_token[-1] == 0 and (np.diff(sweep.bytes_per_token) <= 0).all()
    assert sweep.uplink_fraction[2] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="non-empty"):
        threshold_sweep(scores, [], "entropy")
