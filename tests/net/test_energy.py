"""Device radio energy per message."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tinylarge.net.energy import RadioEnergyModel, dbm_to_w, message_energy_j, radio_energy_j

ZERO_STATES = {"rx_power_w": 0.0, "idle_power_w": 0.0, "sleep_power_w": 0.0}


def test_hand_computed_tx_energy() -> None:
    # 23 dBm = 10^2.3 mW = 0.199526 W; / 0.30 = 0.665087 W drawn by the PA; x 1 ms = 0.665087 mJ
    pa_only = radio_energy_j(1e-3, 23.0, pa_efficiency=0.3, circuit_power_w=0.0, **ZERO_STATES)
    assert pa_only == pytest.approx(6.65087e-4, rel=1e-5)
    # + 0.1 W of TX circuitry: 0.765087 W x 1 ms
    with_circuit = radio_energy_j(1e-3, 23.0, pa_efficiency=0.3, circuit_power_w=0.1, **ZERO_STATES)
    assert with_circuit == pytest.approx(7.65087e-4, rel=1e-5)
    assert dbm_to_w([0.0, 30.0]) == pytest.approx([1e-3, 1.0])


def test_all_state_terms_add_up() -> None:
    got = radio_energy_j(
        2e-3, 20.0, pa_efficiency=0.5, circuit_power_w=0.05,
        rx_time_s=0.01, rx_power_w=0.2, idle_time_s=1.0, idle_power_w=0.02,
        sleep_time_s=100.0, sleep_power_w=1e-5,
    )  # fmt: skip
    # TX (0.1 W / 0.5 + 0.05 W) x 2 ms = 0.5 mJ; RX 2 mJ; idle 20 mJ; sleep 1 mJ
    assert got == pytest.approx(0.5e-3 + 2e-3 + 20e-3 + 1e-3, rel=1e-12)


def test_vectorized_and_infinite_airtime() -> None:
    model = RadioEnergyModel()
    got = model.energy_j(np.array([0.0, 1e-3, 2e-3, np.inf]), 23.0)
    assert got.shape == (4,)
    assert got[0] == 0.0 and got[2] == pytest.approx(2 * got[1]) and got[3] == np.inf
    per_device_power = model.energy_j(1e-3, np.array([[0.0], [23.0]]), rx_time_s=[0.0, 1e-3])
    assert per_device_power.shape == (2, 2)


def test_defaults_follow_module_data_sheets() -> None:
    model = RadioEnergyModel()
    assert model.pa_efficiency == 0.3
    assert model.rx_power_w == pytest.approx(50e-3 * 3.7)
    assert model.sleep_power_w == pytest.approx(5e-6 * 3.7)
    tx_current_a = (dbm_to_w(23.0) / model.pa_efficiency + model.circuit_power_w) / 3.7
    assert 0.2 <= tx_current_a <= 0.5  # module data sheets: ~200-500 mA at 23 dBm
    assert "BG96" in model.source


def test_defaults_agree_with_the_scenario_schema() -> None:
    from tinylarge.config.network_config import RadioEnergyConfig

    config, model = RadioEnergyConfig(), RadioEnergyModel()
    for name in ("pa_efficiency", "circuit_power_w", "rx_power_w", "idle_power_w", "sleep_power_w"):
        assert getattr(model, name) == pytest.approx(getattr(config, name)), name


def test_message_energy_adds_compute() -> None:
    model = RadioEnergyModel(circuit_power_w=0.0, idle_power_w=0.0)
    radio = model.energy_j([1e-3, 1e-3], 23.0, sleep_time_s=10.0)
    total = message_energy_j(
        [1e-3, 1e-3], 23.0, model=model, sleep_time_s=10.0, compute_energy_j=[0.0, 2e-4]
    )
    np.testing.assert_allclose(total, radio + np.array([0.0, 2e-4]))


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"pa_efficiency must be in \(0, 1\]"):
        radio_energy_j(1e-3, 23.0, pa_efficiency=0.0, circuit_power_w=0.0, **ZERO_STATES)
    with pytest.raises(ValueError, match="tx_airtime_s must be non-negative"):
        radio_energy_j(-1e-3, 23.0, pa_efficiency=0.3, circuit_power_w=0.0, **ZERO_STATES)
    with pytest.raises(ValueError, match="rx_time_s must be non-negative and finite"):
        radio_energy_j(
            1e-3, 23.0, pa_efficiency=0.3, circuit_power_w=0.0, rx_time_s=np.nan, **ZERO_STATES
        )
    with pytest.raises(ValueError, match="tx_power_dbm must be finite"):
        radio_energy_j(1e-3, np.inf, pa_efficiency=0.3, circuit_power_w=0.0, **ZERO_STATES)
    with pytest.raises(ValidationError, match="pa_efficiency"):
        RadioEnergyModel(pa_efficiency=1.5)
    with pytest.raises(ValidationError, match="extra"):
        RadioEnergyModel.model_validate({"tx_power_w": 1.0})
    with pytest.raises(ValidationError, match="frozen"):
        RadioEnergyModel().rx_power_w = 1.0  # type: ignore[misc]
