"""The edge's verification timed on this machine: batch sizes, the fitted model, the profile."""

from __future__ import annotations

import re

import pytest
import torch

from tinylarge.config import load_preset
from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.language_model import OurLanguageModel
from tinylarge.sim.hybrid_lm_edge import measure_verification
from tinylarge.sim.hybrid_lm_schemes import verification_service


def _toy() -> OurLanguageModel:
    torch.manual_seed(0)
    return OurLanguageModel(CausalTransformer(lm_architecture("toy", 64)), "toy")


def test_measured_verification_times_every_batch_size_up_to_the_largest() -> None:
    edge = measure_verification(_toy(), max_batch=6, max_wait_s=0.002, repeats=1)
    sizes = [int(b) for b in re.findall(r"batch (\d+) ", edge.source)]
    assert sizes == [1, 2, 4, 6]
    assert edge.setup_s >= 0 and edge.per_item_s >= 0 and edge.setup_s + edge.per_item_s > 0
    assert (edge.max_batch, edge.max_wait_s) == (6, 0.002)
    with pytest.raises(ValueError, match="max_batch and repeats must be >= 1"):
        measure_verification(_toy(), max_batch=0, max_wait_s=0.0)


def test_the_default_edge_is_the_scenarios_profile_the_same_on_every_machine() -> None:
    scenario = load_preset("hybrid-lm")
    edge = verification_service(scenario, _toy())
    assert (edge.setup_s, edge.per_item_s) == (0.0029, 0.00021)
    assert edge.max_batch == scenario.deploy.edge_max_batch and "profile" in edge.source
