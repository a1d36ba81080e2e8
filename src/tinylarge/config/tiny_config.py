"""Scenario sections of the LargeML -> TinyML toolchain: distillation, quantization, MCUs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinylarge.config.base import Section


class DistillationConfig(Section):
    """Knowledge distillation of the tiny model from the large one (Hinton et al., 2015)."""

    enabled: bool = True
    temperature: float = Field(4.0, gt=0.0, le=100.0, description="softmax temperature T")
    alpha: float = Field(
        0.7, ge=0.0, le=1.0, description="weight of the soft-target term (1 - alpha: labels)"
    )


class QuantizationConfig(Section):
    """Post-training int8 quantization, with quantization-aware fine-tuning when it loses."""

    calibration_samples: int = Field(2000, ge=1, le=1_000_000, description="training frames")
    check_samples: int = Field(
        5000, ge=1, le=1_000_000, description="held-out training frames measuring the int8 loss"
    )
    qat: Literal["off", "auto", "on"] = Field(
        "auto", description="'auto': fine-tune when int8 loses more than qat_threshold_pp"
    )
    qat_threshold_pp: float = Field(1.0, ge=0.0, le=100.0, description="percentage points")
    qat_epochs: int = Field(2, ge=1, le=1000)
    qat_learning_rate: float = Field(5e-4, gt=0.0, le=1.0)


class McuProfileConfig(Section):
    """A user-defined microcontroller (fields as `tinylarge.tiny.mcu.McuProfile`)."""

    part: str = Field(min_length=1)
    core: str = Field(min_length=1)
    runtime: str = Field("user-defined", min_length=1)
    clock_hz: float = Field(gt=0.0, le=1e11)
    sram_bytes: int = Field(gt=0)
    flash_bytes: int = Field(gt=0)
    active_power_w: float = Field(gt=0.0, le=1e3)
    cycles_per_mac: float = Field(gt=0.0, le=1e4)
    source: str = Field("user-defined in the scenario", min_length=1)


class TinyConfig(Section):
    """The LargeML -> TinyML toolchain of a run."""

    distillation: DistillationConfig = Field(default_factory=DistillationConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    target_mcu: str = Field("stm32l4r5", min_length=1, description="MCU of the headline figures")
    mcu_profiles: dict[str, McuProfileConfig] = Field(
        default_factory=dict, description="extra MCUs beside the built-in profiles"
    )
