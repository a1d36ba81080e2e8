"""FedAvg / FedProx as co-learning schemes: learning, byte accounting, client sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.integrate.colearning_fixtures import CLASSES, SHAPE, easy_data, links

from tinylarge.integrate.fedavg import FedAvg, FedProx, client_sample_indices
from tinylarge.integrate.split import module_macs
from tinylarge.integrate.update_compression import state_bytes
from tinylarge.models.registry import build_model


def tiny() -> torch.nn.Module:
    return build_model("tiny_cnn", SHAPE, CLASSES, {"width": 3}, seed=0)


def test_fedavg_learns_the_easy_task() -> None:
    scheme = FedAvg(
        tiny(),
        easy_data(),
        links(),
        clients_per_round=4,
        samples_per_client=100,
        local_epochs=2,
        lr=0.1,
        seed=0,
    )
    records = scheme.run(6)
    assert records[-1].accuracy > 0.75  # chance is 0.25
    assert records[-1].accuracy > records[0].accuracy + 0.2


def test_round_bytes_airtime_and_energy_on_a_hand_example() -> None:
    model, data, budget = tiny(), easy_data(), links()
    scheme = FedAvg(
        model,
        data,
        budget,
        clients_per_round=2,
        samples_per_client=50,
        local_epochs=1,
        batch_size=25,
        compression="int8",
        seed=1,
    )
    record = scheme.round(1)
    n_float = sum(v.numel() for v in model.state_dict().values() if v.dtype.is_floating_point)
    n_tensors = sum(1 for v in model.state_dict().values() if v.dtype.is_floating_point)
    up_each = n_float + 4 * n_tensors  # int8 values + a float32 scale per tensor
    down_each = 4 * n_float  # the global model in float32
    assert state_bytes(model.state_dict()) == down_each
    assert (record.bytes_up, record.bytes_down, record.clients) == (2 * up_each, 2 * down_each, 2)
    slots_up = np.ceil(8 * up_each / (1e6 * 1e-3))
    slots_down = np.ceil(8 * down_each / (1e7 * 1e-3))
    assert record.airtime_s == pytest.approx(2 * (slots_up + slots_down) * 1e-3)
    radio = 2 * (0.5 * slots_up + 0.2 * slots_down) * 1e-3
    compute = 2 * 3 * module_macs(model, SHAPE) * 50 * 1e-9
    assert record.device_energy_j == pytest.approx(radio + compute)


def test_client_samples_cover_small_clients_by_repeating() -> None:
    data = easy_data(n_train=40, n_devices=4)  # 10 samples each
    rows = client_sample_indices(np.random.default_rng(0), data, np.array([0, 2]), 25)
    for row, device in zip(rows, (0, 2), strict=True):
        own = set(data.partition.device(device).tolist())
        assert set(row.tolist()) == own  # every own sample, nothing else
        assert np.bincount(row).max() <= 3  # 25 draws from 10 samples: each 2 or 3 times


def test_fedprox_needs_positive_mu_and_schemes_validate_arguments() -> None:
    with pytest.raises(ValueError, match="mu > 0"):
        FedProx(tiny(), easy_data(), links(), mu=0.0)
    with pytest.raises(ValueError, match="clients_per_round must be an integer >= 1"):
        FedAvg(tiny(), easy_data(), links(), clients_per_round=0)
    with pytest.raises(ValueError, match="links cover 3 devices"):
        FedAvg(tiny(), easy_data(), links(3))
    with pytest.raises(ValueError, match="unknown aggregator"):
        FedAvg(tiny(), easy_data(), links(), aggregator="nope")


def test_unreachable_devices_never_take_part() -> None:
    scheme = FedAvg(tiny(), easy_data(), links(unreachable=(1, 2)), clients_per_round=4, seed=0)
    assert scheme.round(1).clients == 2
