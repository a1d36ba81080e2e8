"""Scenario section of collaborative inference (`tinylarge.integrate` policies)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinylarge.config.base import Section


class PoliciesConfig(Section):
    """Which inference policies the run compares, and how they are tuned and costed."""

    enabled: bool = True
    target_offload: float = Field(
        0.4, ge=0.0, le=1.0, description="offload fraction cascade and router are tuned to"
    )
    cascade_confidence: Literal["max_softmax", "margin", "entropy"] = "max_softmax"
    compressed_bits: list[int] = Field(
        default_factory=lambda: [2, 4, 6],
        description="bits per I/Q value of the large_compressed baseline (1-8)",
    )
    validation_frames: int = Field(
        10_000, ge=100, le=10_000_000, description="fresh frames on which policies are tuned"
    )
    deadline_s: float = Field(0.05, gt=0.0, le=100.0, description="latency deadline")
    resource_aware: bool = Field(
        False,
        description="keep on the device the offloads predicted to miss deadline_s or to "
        "overdraw energy_budget_j",
    )
    energy_budget_j: float | None = Field(
        None, gt=0.0, description="per device over the whole run (resource_aware only)"
    )
    rate_per_device_hz: float = Field(1.0, gt=0.0, le=1e4, description="inference requests")
    duration_s: float = Field(30.0, gt=0.0, le=1e6)
