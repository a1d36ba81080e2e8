"""Scenario section of co-learning (`tinylarge.integrate` training-time schemes)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tinylarge.config.base import Section
from tinylarge.config.training_config import TrainingSpec

SchemeName = Literal["fedavg", "fedprox", "fedgkt", "split_learning", "splitfed", "closed_loop"]
SCHEME_NAMES: tuple[SchemeName, ...] = (
    "fedavg", "fedprox", "fedgkt", "split_learning", "splitfed", "closed_loop",
)  # fmt: skip


class FederatedConfig(Section):
    """FedAvg / FedProx of the tiny model (`tinylarge.integrate.colearning.fedavg`)."""

    clients_per_round: int = Field(20, ge=1, le=1_000_000)
    local_epochs: int = Field(2, ge=1, le=1000)
    samples_per_client: int = Field(256, ge=1, le=1_000_000, description="per client per round")
    batch_size: int = Field(32, ge=1, le=100_000)
    # measured on the default scenario (10 rounds as below, 5,000 test frames): lr 0.3 constant
    # -> 41.3 %, lr 0.5 decaying by 0.9 per round -> 44.9 %
    learning_rate: float = Field(0.5, gt=0.0, le=10.0, description="local SGD step")
    lr_decay: float = Field(0.9, gt=0.0, le=1.0, description="per-round factor on the step")
    server_momentum: float = Field(0.0, ge=0.0, lt=1.0, description="FedAvgM; 0: FedAvg")
    prox_mu: float = Field(0.01, gt=0.0, le=100.0, description="FedProx proximal weight")
    aggregator: str = Field("mean", min_length=1, description="a registered aggregator")
    selection: Literal["uniform", "best_channel"] = "uniform"
    compression: Literal["none", "int8", "topk"] = "none"
    topk_fraction: float = Field(0.1, gt=0.0, le=1.0, description="kept share ('topk' only)")
    ray_workers: int = Field(
        0, ge=0, le=4096,
        description="split each round's local training over this many Ray tasks (0: in-process)",
    )  # fmt: skip


class SecureAggregationConfig(Section):
    """SecAgg+ (Bell et al., CCS 2020) for FedAvg / FedProx rounds (`tinylarge.secure.secagg`):
    the server learns only the sum of the updates. Off by default. The defaults of
    ``clip_range``, ``quantization_levels`` and ``modulus_bits`` are those of Flower's
    ``SecAggPlusWorkflow`` (``clipping_range = 8.0``, ``quantization_range = 2**22``,
    ``modulus_range = 2**32``); Flower has no default neighbourhood size or threshold."""

    enabled: bool = False
    num_shares: int = Field(
        21, ge=3, le=1_000_001,
        description="neighbourhood size: each client and its neighbours (odd); all clients of "
        "a smaller round",
    )  # fmt: skip
    threshold_fraction: float = Field(
        0.5, gt=0.0, le=1.0,
        description="shares that rebuild a secret, as a fraction of num_shares (rounded up, >= 2)",
    )  # fmt: skip
    clip_range: float = Field(8.0, gt=0.0, le=1e6, description="updates clipped to +-this")
    quantization_levels: int = Field(2**22, ge=2, description="fixed-point levels")
    modulus_bits: int = Field(32, ge=8, le=62, description="sums are taken modulo 2**this")
    dropout_fraction: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="share of each round's clients that drop out after sharing their keys",
    )  # fmt: skip

    @model_validator(mode="after")
    def _consistent(self) -> SecureAggregationConfig:
        if self.num_shares % 2 == 0:
            raise ValueError(
                f"num_shares must be odd (each client links to (num_shares - 1) / 2 clients on "
                f"either side of a ring), got {self.num_shares}"
            )
        if self.quantization_levels > 2**self.modulus_bits:
            raise ValueError(
                f"quantization_levels ({self.quantization_levels}) must not exceed "
                f"2**modulus_bits ({2**self.modulus_bits})"
            )
        return self


class FedGKTConfig(Section):
    """Federated distillation, heterogeneous tiny clients
    (`tinylarge.integrate.colearning.fed_gkt`)."""

    client_widths: list[int] = Field(default_factory=lambda: [4, 5, 6], min_length=1)
    feature_blocks: int = Field(2, ge=1, le=3, description="tiny blocks whose output is uploaded")
    server_width: int = Field(32, ge=1, le=4096, description="channels of the server trunk")
    server_blocks: int = Field(2, ge=1, le=16, description="conv blocks of the server trunk")
    clients_per_round: int = Field(10, ge=1, le=1_000_000)
    samples_per_client: int = Field(256, ge=2, le=1_000_000, description="batch norm needs 2")
    local_epochs: int = Field(1, ge=1, le=1000)
    server_epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=100_000)
    learning_rate: float = Field(0.01, gt=0.0, le=10.0)
    temperature: float = Field(3.0, gt=0.0, le=100.0)
    beta: float = Field(1.0, ge=0.0, le=100.0, description="weight of the distillation term")
    feature_bits: int | None = Field(8, ge=2, le=16, description="None: float32 features")


class SplitLearningConfig(Section):
    """Split learning and SplitFed of the tiny model
    (`tinylarge.integrate.colearning.split_learning`)."""

    cut: int = Field(1, ge=1, description="tiny-model blocks on the device")
    clients_per_round: int = Field(10, ge=1, le=1_000_000)
    samples_per_client: int = Field(256, ge=1, le=1_000_000)
    local_epochs: int = Field(2, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=100_000)
    learning_rate: float = Field(0.2, gt=0.0, le=10.0)
    activation_bits: int | None = Field(8, ge=2, le=16, description="None: float32 up")
    gradient_bits: int | None = Field(8, ge=2, le=16, description="None: float32 down")


class ClosedLoopConfig(Section):
    """The offload -> label -> distil -> push loop
    (`tinylarge.integrate.colearning.closed_loop`)."""

    rounds: int = Field(8, ge=1, le=100_000)
    start: Literal["deployed", "server_data"] = Field(
        "server_data",
        description="day-0 tiny model: the run's deployed one, or one distilled on the "
        "server's own frames only (day0_training)",
    )
    server_samples: int = Field(
        10_000, ge=20, description="labelled training frames the server holds (day-0 data)"
    )
    frames_per_device: int = Field(20, ge=1, le=1_000_000, description="per round")
    update_every: int = Field(2, ge=1, description="rounds between model pushes")
    day0_training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(epochs=4, batch_size=128, patience_epochs=0)
    )
    update_training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(
            epochs=3, batch_size=128, learning_rate=0.002, patience_epochs=0
        )
    )
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="of the server's data")


class ColearningConfig(Section):
    """Which co-learning schemes the run compares and at what size."""

    enabled: bool = True
    schemes: list[SchemeName] = Field(default_factory=lambda: list(SCHEME_NAMES), min_length=1)
    rounds: int = Field(10, ge=1, le=100_000, description="rounds of every scheme but the loop")
    eval_samples: int = Field(5000, ge=1, description="test frames each round is scored on")
    federated: FederatedConfig = Field(default_factory=FederatedConfig)
    secure_aggregation: SecureAggregationConfig = Field(default_factory=SecureAggregationConfig)
    fedgkt: FedGKTConfig = Field(default_factory=FedGKTConfig)
    split: SplitLearningConfig = Field(default_factory=SplitLearningConfig)
    closed_loop: ClosedLoopConfig = Field(default_factory=ClosedLoopConfig)
