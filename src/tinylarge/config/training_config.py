"""Options of the training loop, shared by every section that trains something."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinylarge.config.base import Section


class TrainingSpec(Section):
    """Options of the training loop (`tinylarge.models.train`)."""

    epochs: int = Field(20, ge=1, le=10_000)
    batch_size: int = Field(256, ge=1, le=1_000_000)
    learning_rate: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_size_epochs: int = Field(10, ge=1, description="epochs between decays ('step' only)")
    step_gamma: float = Field(0.1, gt=0.0, le=1.0, description="decay factor ('step' only)")
    val_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of training data held out for validation"
    )
    patience_epochs: int = Field(
        5,
        ge=0,
        description="stop after this many epochs without a lower validation loss; 0: never",
    )
    max_train_samples: int | None = Field(
        None, ge=1, description="train on at most this many samples (None: all)"
    )
