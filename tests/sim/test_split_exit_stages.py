"""A large model that cannot be cut between blocks (one users bring, or one with layers whose
MACs are not counted) leaves split and early exit out with the reason; the RF transformer and
the ResNet can be cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import Tensor, nn

from tinylarge.config import load_preset
from tinylarge.data.task import Task
from tinylarge.models.blocks import BlockModel
from tinylarge.models.cache import ModelCache
from tinylarge.models.persistence import ModelManifest
from tinylarge.models.registry import build_model
from tinylarge.sim import SilentReporter
from tinylarge.sim.split_exit_stages import split_exit_stage, why_not_splittable
from tinylarge.sim.stages import StageContext
from tinylarge.sim.state import RunState, TrainedModel

SHAPE = (2, 128)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(2, 1, batch_first=True)

    def forward(self, h: Tensor) -> Tensor:
        t = h.transpose(1, 2)
        out: Tensor = self.attn(t, t, t)[0].transpose(1, 2)
        return out


def state_with(large: nn.Module) -> RunState:
    zeros = np.zeros((4, *SHAPE), np.float32)
    labels = np.zeros(4, np.int64)
    state = RunState(scenario=load_preset("smoke"))
    state.task = Task("toy", zeros, labels, zeros, labels, tuple("abcdefgh"))
    manifest = ModelManifest("toy", {}, SHAPE, 8)
    state.models["large"] = TrainedModel("large", large, manifest, 0, "key", False, None)
    return state


def test_a_model_that_is_not_a_block_model_skips_split_and_early_exit(tmp_path: Path) -> None:
    state = state_with(nn.Sequential(nn.Flatten(), nn.Linear(256, 8)))
    reason = why_not_splittable(state)
    assert reason is not None and "is a Sequential, not a BlockModel" in reason
    context = StageContext(ModelCache(tmp_path), SilentReporter())
    assert split_exit_stage(state, context) == f"skipped: {reason}"
    assert state.skipped == {"policies.early_exit": reason} and state.split_exit is None


def test_a_block_with_uncounted_layers_is_not_splittable() -> None:
    model = BlockModel([Attention()], nn.Sequential(nn.Flatten(), nn.Linear(256, 8)))
    reason = why_not_splittable(state_with(model))
    assert reason is not None and "block 0" in reason and "MultiheadAttention" in reason


@pytest.mark.parametrize(
    ("name", "options"),
    [("rf_transformer", {"size": "xs", "checkpoint": "none"}), ("large_resnet", {"width": 4})],
)
def test_the_zoos_large_models_are_splittable(name: str, options: dict[str, object]) -> None:
    assert why_not_splittable(state_with(build_model(name, SHAPE, 8, options, seed=0))) is None
