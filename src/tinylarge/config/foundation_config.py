"""The ``[foundation]`` section: what the main job measures about a pretrained large model."""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import Field

from tinylarge.config.base import Section
from tinylarge.config.model_spec import ModelSpec
from tinylarge.config.training_config import TrainingSpec

AdaptationMethod = Literal["probe", "lora", "full"]


class FewShotSpec(Section):
    """Training of every few-label run (1, 10, 100 labelled frames per class): a fixed number
    of optimizer steps, whatever the number of labels, so small sets are seen many times."""

    steps: int = Field(150, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=100_000)
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0)


class FoundationConfig(Section):
    """Label efficiency, out-of-distribution accuracy and distillation of the foundation model
    against a large model trained from scratch (`tinylarge.sim.foundation_stages`).

    Runs only when the scenario's large model is a pretrained one (``rf_transformer`` with a
    checkpoint, or a Hugging Face directory).
    """

    enabled: bool = True
    labels_per_class: list[int] = Field(
        default_factory=lambda: [1, 10, 100], min_length=1,
        description="labelled frames per class of the few-label runs ('all' is always added)",
    )  # fmt: skip
    methods: list[AdaptationMethod] = Field(
        default_factory=lambda: list(typing.get_args(AdaptationMethod)), min_length=1
    )
    baseline: ModelSpec = Field(
        default_factory=lambda: ModelSpec(name="large_resnet", options={"width": 24})
    )
    baseline_training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(epochs=8, batch_size=256, learning_rate=3e-3),
        description="the baseline trained on all labels (the few-label runs use few_shot)",
    )
    few_shot: FewShotSpec = Field(default_factory=FewShotSpec)
    out_of_distribution: bool = True
    ood_frames: int = Field(4000, ge=64, le=1_000_000, description="frames per OOD test set")
    distill_from_baseline: bool = Field(
        True, description="also distil the tiny model from the baseline (same tiny, same MCU)"
    )
