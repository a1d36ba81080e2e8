"""Scenario section of collaborative inference (`tinylarge.integrate` policies)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinylarge.config.base import Section
from tinylarge.config.training_config import TrainingSpec


class SplitExitConfig(Section):
    """The bottleneck and exit head grafted onto the trained large model for `split` and
    `early_exit` (`tinylarge.models.split_exit`); the large model itself stays frozen."""

    enabled: bool = True
    split_at: int = Field(1, ge=1, description="blocks of the large model run on the device")
    code_channels: int = Field(4, ge=1, le=1024, description="channels of the bottleneck code")
    code_bits: int = Field(4, ge=2, le=8, description="bits per code value on air")
    exit_widths: list[int] = Field(
        default_factory=lambda: [12, 24],
        min_length=1,
        description="channels of the exit head's strided convolutions",
    )
    exit_training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(epochs=5, learning_rate=0.005, patience_epochs=2)
    )
    bottleneck_training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(
            epochs=3, learning_rate=0.003, patience_epochs=2, max_train_samples=30_000
        )
    )


class PoliciesConfig(Section):
    """Which inference policies the run compares, and how they are tuned and costed."""

    enabled: bool = True
    target_offload: float = Field(
        0.4, ge=0.0, le=1.0, description="offload fraction cascade and router are tuned to"
    )
    cascade_confidence: Literal["max_softmax", "margin", "entropy"] = "max_softmax"
    router_hidden_units: int = Field(
        8, ge=0, le=1024, description="ReLU units of the router's hidden layer (0: logistic)"
    )
    compressed_bits: list[int] = Field(
        default_factory=lambda: [2, 4, 6],
        description="bits per I/Q value of the large_compressed baseline (1-8)",
    )
    validation_frames: int = Field(
        10_000, ge=100, le=10_000_000, description="fresh frames on which policies are tuned"
    )
    deadline_s: float = Field(
        0.05,
        gt=0.0,
        le=100.0,
        description="planning deadline: what resource_aware keeps on the device and what the "
        "report counts as met (a device's reply timer is deploy.reply_deadline_s)",
    )
    resource_aware: bool = Field(
        False,
        description="keep on the device the offloads predicted to miss deadline_s or to "
        "overdraw energy_budget_j",
    )
    energy_budget_j: float | None = Field(
        None, gt=0.0, description="per device over the whole run (resource_aware only)"
    )
    split_activation_bits: int = Field(
        8, ge=2, le=16, description="bits per value of the large model's own activations (split)"
    )
    split_objective: Literal["latency", "energy"] = Field(
        "energy", description="what each device's split point minimises"
    )
    early_exit_confidence: Literal["max_softmax", "margin", "entropy"] = "max_softmax"
    split_exit: SplitExitConfig = Field(default_factory=SplitExitConfig)
    rate_per_device_hz: float = Field(1.0, gt=0.0, le=1e4, description="inference requests")
    duration_s: float = Field(30.0, gt=0.0, le=1e6)
