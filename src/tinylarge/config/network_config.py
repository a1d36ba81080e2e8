"""Scenario section of the 6G network model (`tinylarge.net`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tinylarge.config.base import Section
from tinylarge.config.deploy_config import refuse_moved_keys

#: Built-in radio profiles of `tinylarge.net.profiles`, in the order reports list them.
RADIO_PROFILE_NAMES: tuple[str, ...] = (
    "nb_iot", "lte_m", "redcap", "embb_fr1", "fr2_mmwave", "fr3", "sub_thz",
)  # fmt: skip


class TrafficConfig(Section):
    """Uplink messages the devices send (Poisson arrivals per device)."""

    rate_per_device_hz: float = Field(
        1.0, gt=0.0, le=1e4, description="mean messages per second per device"
    )
    duration_s: float = Field(10.0, gt=0.0, le=1e6, description="simulated time")
    message_bytes: int = Field(
        256, ge=1, le=100_000_000, description="uplink payload (default: one int8 (2, 128) frame)"
    )
    reply_bytes: int | None = Field(
        None,
        ge=0,
        le=100_000_000,
        description="downlink reply payload; unset: what the edge server sends, a 4-byte "
        "request id + the class byte + one int8 logit per class (13 B for 8 classes)",
    )


class RadioEnergyConfig(Section):
    """Device radio power model (typical cellular IoT modules; `tinylarge.net.energy`)."""

    pa_efficiency: float = Field(0.3, gt=0.0, le=1.0)
    circuit_power_w: float = Field(0.1, ge=0.0, le=100.0, description="TX chain besides the PA")
    rx_power_w: float = Field(0.185, ge=0.0, le=100.0, description="~50 mA at 3.7 V")
    idle_power_w: float = Field(0.0185, ge=0.0, le=100.0, description="connected, not sending")
    sleep_power_w: float = Field(1.85e-5, ge=0.0, le=100.0, description="PSM, ~5 uA at 3.7 V")


class NetworkConfig(Section):
    """The cell(s) joining the devices to the edge: topology, channel, link, queues, energy."""

    enabled: bool = True
    profile: str = Field("redcap", min_length=1, description="radio profile the devices use")
    compare_profiles: list[str] = Field(
        default_factory=lambda: list(RADIO_PROFILE_NAMES),
        description="profiles whose coverage the report compares",
    )
    custom_profiles: dict[str, dict[str, float | str]] = Field(
        default_factory=dict,
        description="extra radio profiles (fields of tinylarge.net.profiles.RadioProfile)",
    )
    n_cells: int = Field(1, ge=1, le=1000)
    indoor_fraction: float = Field(0.2, ge=0.0, le=1.0)
    device_height_m: float = Field(1.5, ge=1.5, le=22.5, description="TR 38.901 UMa/UMi range")
    fading: Literal["rayleigh", "rician", "none"] = "rayleigh"
    rician_k_db: float = Field(3.0, ge=-30.0, le=60.0)
    spectral_efficiency: Literal["cqi", "shannon"] = "cqi"
    scheduler: Literal["equal", "proportional_fair"] = "equal"
    bler_target: float = Field(0.1, ge=0.0, lt=1.0, description="first-transmission BLER")
    max_transmissions: int = Field(4, ge=1, le=32, description="HARQ: first + retransmissions")
    backhaul_s: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="one-way delay base station -> server: 0 for an edge server at the base "
        "station, ~0.005-0.02 for the cloud",
    )
    edge_service: Literal["profile", "measured"] = Field(
        "profile",
        description="'profile': the edge_* figures below (same numbers on every machine); "
        "'measured': time the run's large model on this machine",
    )
    edge_setup_s: float = Field(
        0.0018, ge=0.0, le=10.0, description="per-batch time of the edge's large model"
    )
    edge_per_item_s: float = Field(
        0.00014, ge=0.0, le=10.0, description="per-request time of the edge's large model"
    )
    edge_sites: Literal["shared", "per_cell"] = Field(
        "shared",
        description="'shared': one edge server for all cells; 'per_cell': one at each base "
        "station (multi-access edge computing)",
    )
    ray_shards: int = Field(
        0,
        ge=0,
        le=4096,
        description="0: simulate the cells in this process; N: split them into N shards run as "
        "Ray tasks (the cluster in RAY_ADDRESS, else a new local one); identical results",
    )
    coverage_devices: int = Field(20_000, ge=100, le=10_000_000, description="per profile")
    traffic: TrafficConfig = Field(default_factory=TrafficConfig)
    energy: RadioEnergyConfig = Field(default_factory=RadioEnergyConfig)

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, values: object) -> object:
        """The edge's largest batch is ``deploy.edge_max_batch`` now (`DeployConfig`)."""
        return refuse_moved_keys("network", values)

    @model_validator(mode="after")
    def _profiles_unique(self) -> NetworkConfig:
        if len(set(self.compare_profiles)) != len(self.compare_profiles):
            raise ValueError(f"compare_profiles has duplicates: {self.compare_profiles}")
        return self
