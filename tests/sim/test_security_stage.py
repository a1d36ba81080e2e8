"""The security stage: config errors, and DP-FedAvg's epsilon through the stage."""

from __future__ import annotations

import pytest

from tinylarge.config.security_config import SecurityConfig
from tinylarge.secure.privacy import rdp_epsilon
from tinylarge.sim import RunResult
from tinylarge.sim.colearning_stages import federated_data
from tinylarge.sim.security_stages import check_security_config, dp_study


def test_config_errors_name_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"\['krum2'\] are not registered; known: .*median"):
        check_security_config(SecurityConfig(aggregators=["mean", "krum2"]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\), got \[1.0\]"):
        check_security_config(SecurityConfig(malicious_fractions=[0.0, 1.0]))


def test_dp_study_reports_the_accountants_epsilon(smoke_result: RunResult) -> None:
    config = smoke_result.scenario.security.model_copy(
        update={"dp": True, "dp_noise_multiplier": 1.5, "rounds": 2}
    )
    scenario = smoke_result.scenario.model_copy(update={"security": config})
    original = smoke_result.scenario
    smoke_result.scenario = scenario
    try:
        out = dp_study(smoke_result, federated_data(smoke_result))
    finally:
        smoke_result.scenario = original
    q = config.clients_per_round / original.devices.count
    expected, _ = rdp_epsilon([(q, 1.5, 2)], config.dp_delta)
    assert out["epsilon"] == pytest.approx(expected) and out["sample_rate"] == q
    assert 0.0 <= out["accuracy"] <= 1.0
