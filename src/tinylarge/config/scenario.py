"""The scenario schema: one `Scenario` describes a run completely.

Every section is a frozen pydantic model that rejects unknown keys, so a typo in a TOML file is
an error that names the key and lists what is allowed (see `tinylarge.config.errors`).
Fields carry units in their names; ranges are enforced with `Field` bounds.
"""

from __future__ import annotations

import math
import typing
from typing import Literal

from pydantic import Field, model_validator

from tinylarge.config.base import Section
from tinylarge.config.colearning_config import ColearningConfig
from tinylarge.config.deploy_config import DeployConfig
from tinylarge.config.foundation_config import FoundationConfig
from tinylarge.config.hybrid_lm_config import HybridLmConfig, TextTaskConfig
from tinylarge.config.model_spec import ModelSpec as ModelSpec
from tinylarge.config.model_spec import OptionValue as OptionValue
from tinylarge.config.network_config import NetworkConfig
from tinylarge.config.policies_config import PoliciesConfig
from tinylarge.config.security_config import SecurityConfig
from tinylarge.config.tiny_config import TinyConfig
from tinylarge.config.training_config import AdaptationSpec as AdaptationSpec
from tinylarge.config.training_config import LargeTrainingSpec as LargeTrainingSpec
from tinylarge.config.training_config import TrainingSpec as TrainingSpec

#: Modulation classes of the built-in `radio` task, in label order.
RADIO_CLASS_NAMES: tuple[str, ...] = (
    "BPSK", "QPSK", "8PSK", "16QAM", "64QAM", "PAM4", "GFSK", "CPFSK",
)  # fmt: skip

RadioClass = Literal["BPSK", "QPSK", "8PSK", "16QAM", "64QAM", "PAM4", "GFSK", "CPFSK"]
_RADIO_CLASSES: tuple[RadioClass, ...] = typing.get_args(RadioClass)


class RadioTaskConfig(Section):
    """Automatic modulation classification frames (see `tinylarge.data.make_radio_task`)."""

    n_train: int = Field(40_000, ge=64, le=10_000_000, description="training frames")
    n_test: int = Field(10_000, ge=64, le=10_000_000, description="test frames")
    classes: list[RadioClass] = Field(
        default_factory=lambda: list(_RADIO_CLASSES), min_length=2,
        description="modulation classes, in label order",
    )  # fmt: skip
    frame_length: int = Field(128, ge=16, le=8192, description="complex samples per frame")
    samples_per_symbol: int = Field(8, ge=2, le=64)
    rolloff: float = Field(0.35, gt=0.0, le=1.0, description="root-raised-cosine roll-off")
    snr_db_min: float = Field(-10.0, ge=-40.0, le=60.0)
    snr_db_max: float = Field(20.0, ge=-40.0, le=60.0)
    snr_db_step: float = Field(2.0, gt=0.0, le=100.0)
    timing_offset_max_symbols: float = Field(
        1.0, ge=0.0, le=1.0, description="uniform timing offset"
    )
    carrier_phase_max_rad: float = Field(2 * math.pi, ge=0.0, le=2 * math.pi)
    cfo_max_cycles_per_sample: float = Field(0.001, ge=0.0, le=0.5)
    phase_noise_std_rad: float = Field(0.005, ge=0.0, le=1.0)
    fading: Literal["rician", "rayleigh", "none"] = "rician"
    multipath_taps: int = Field(3, ge=1, le=32)
    tap_decay_db: float = Field(6.0, ge=0.0, le=60.0)
    rician_k_db: float = Field(3.0, ge=-30.0, le=60.0)
    normalize_power: bool = True

    @model_validator(mode="after")
    def _check_ranges(self) -> RadioTaskConfig:
        if self.snr_db_min > self.snr_db_max:
            raise ValueError(
                f"snr_db_min ({self.snr_db_min}) must not exceed snr_db_max ({self.snr_db_max})"
            )
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must not repeat a name, got {self.classes}")
        if self.frame_length < 2 * self.samples_per_symbol:
            raise ValueError(
                f"frame_length ({self.frame_length}) must hold at least two symbols "
                f"(2 x samples_per_symbol = {2 * self.samples_per_symbol})"
            )
        return self


class DigitsTaskConfig(Section):
    """scikit-learn's bundled 8x8 handwritten digits."""

    test_fraction: float = Field(0.25, gt=0.0, lt=1.0)


class NpzTaskConfig(Section):
    """A user's own data set in one `.npz` file (see `tinylarge.data.load_npz_task`)."""

    path: str = Field(min_length=1, description="path to the .npz file")


class TaskConfig(Section):
    """Which task the run learns, and its options."""

    name: Literal["radio", "digits", "npz", "text"] = "radio"
    radio: RadioTaskConfig = Field(default_factory=RadioTaskConfig)
    digits: DigitsTaskConfig = Field(default_factory=DigitsTaskConfig)
    text: TextTaskConfig = Field(default_factory=TextTaskConfig)
    npz: NpzTaskConfig | None = None

    @model_validator(mode="after")
    def _npz_needs_path(self) -> TaskConfig:
        if self.name == "npz" and self.npz is None:
            raise ValueError("task.name = 'npz' needs a [task.npz] section with path = '...'")
        return self


class ModelsConfig(Section):
    """The tiny (device) and large (edge/cloud) models."""

    tiny: ModelSpec = Field(default_factory=lambda: ModelSpec(name="tiny_cnn"))
    large: ModelSpec = Field(default_factory=lambda: ModelSpec(name="large_resnet"))


class TrainingConfig(Section):
    """Training options of each model."""

    tiny: TrainingSpec = Field(default_factory=TrainingSpec)
    large: LargeTrainingSpec = Field(default_factory=LargeTrainingSpec)


class DevicesConfig(Section):
    """The IoT devices and how the task's training data is spread over them."""

    count: int = Field(100, ge=1, le=100_000_000)
    partition: Literal["iid", "dirichlet", "snr"] = "iid"
    dirichlet_alpha: float = Field(0.5, gt=0.0, le=1e6, description="'dirichlet' label skew")
    snr_mixing: float = Field(0.1, ge=0.0, le=100.0, description="'snr' rank jitter")


class Scenario(Section):
    """A complete, reproducible description of one tinylarge run."""

    name: str = Field("custom", min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    task: TaskConfig = Field(default_factory=TaskConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
    tiny: TinyConfig = Field(default_factory=TinyConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    colearning: ColearningConfig = Field(default_factory=ColearningConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    foundation: FoundationConfig = Field(default_factory=FoundationConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    hybrid_lm: HybridLmConfig = Field(default_factory=HybridLmConfig)
