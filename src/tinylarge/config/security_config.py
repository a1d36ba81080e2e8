"""Scenario section of the security layer (`tinylarge.secure`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinylarge.config.base import Section

AttackName = Literal["sign_flip", "scaling", "gaussian", "alie", "label_flip"]
AeadName = Literal["chacha20-poly1305", "aes-256-gcm"]


def _default_attacks() -> list[AttackName]:
    return ["sign_flip"]


class SecurityConfig(Section):
    """The security layer's costs on every message, and its study: fuzzing of the wire format,
    aggregation under attack, and differential privacy (``enabled`` runs the study).

    The attack study runs FedAvg (``colearning.federated`` settings) on an IID split of the
    training frames over the run's devices, for every attack x malicious fraction x aggregator.
    """

    enabled: bool = True
    protect_messages: bool = Field(
        True,
        description="every offload, reply, update and push goes through a secure session: its "
        "header, tag, handshake and device crypto are costed on the network and the devices",
    )
    aead: AeadName = "chacha20-poly1305"
    session_lifetime_s: float = Field(
        3600.0,
        gt=0.0,
        le=1e9,
        description="how long a device keeps a session before a new handshake; the policies' "
        "handshakes are amortized over it (a shorter run pays its share)",
    )
    signed_updates: bool = Field(
        True, description="the closed loop pushes signed bundles that devices verify"
    )
    fuzz_messages: int = Field(2000, ge=0, le=10_000_000, description="mutated messages")
    attacks: list[AttackName] = Field(default_factory=_default_attacks)
    attack_scale: dict[str, float] = Field(
        default_factory=lambda: {"sign_flip": 1.0, "scaling": 10.0, "gaussian": 1.0},
        description="strength per attack (factor, or noise std)",
    )
    malicious_fractions: list[float] = Field(
        default_factory=lambda: [0.0, 0.2], min_length=1, description="of all devices"
    )
    aggregators: list[str] = Field(default_factory=lambda: ["mean", "median"], min_length=1)
    rounds: int = Field(10, ge=1, le=100_000)
    clients_per_round: int = Field(20, ge=1, le=1_000_000)
    samples_per_client: int = Field(256, ge=1, le=1_000_000)
    dp: bool = Field(True, description="also run DP-FedAvg and report its epsilon")
    dp_clip: float = Field(1.0, gt=0.0, le=1e6)
    dp_noise_multiplier: float = Field(1.0, gt=0.0, le=1e3)
    dp_delta: float = Field(1e-5, gt=0.0, lt=1.0)
