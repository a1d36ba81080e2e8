"""FedAvg / FedProx as co-learning schemes: learning, byte accounting, client sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.integrate.colearning.colearning_fixtures import CLASSES, SHAPE, easy_data, links

from tinylarge.integrate.colearning.fedavg import FedAvg, FedProx, client_sample_indices
from tinylarge.integrate.colearning.update_compression import state_bytes
from tinylarge.integrate.inference.split_computing import module_macs
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


def test_server_momentum_adds_the_previous_step() -> None:
    """FedAvgM: round 1 equals FedAvg; round 2 moves by beta * step 1 more."""
    args = {"clients_per_round": 2, "samples_per_client": 50, "seed": 4}
    plain = FedAvg(tiny(), easy_data(), links(), **args)
    momentum = FedAvg(tiny(), easy_data(), links(), server_momentum=0.5, **args)
    w0 = {k: v.clone() for k, v in plain.model.named_parameters()}
    plain.round(1), momentum.round(1)
    w1 = {k: v.clone() for k, v in plain.model.named_parameters()}
    for k, v in momentum.model.named_parameters():
        torch.testing.assert_close(v, w1[k])
    plain.round(2), momentum.round(2)
    p2 = dict(plain.model.named_parameters())
    for k, v in momentum.model.named_parameters():
        torch.testing.assert_close(v - p2[k], 0.5 * (w1[k] - w0[k]), rtol=1e-4, atol=1e-6)


def test_lr_decay_scales_the_local_step_per_round() -> None:
    args = {"clients_per_round": 2, "samples_per_client": 50, "seed": 5}
    decayed = FedAvg(tiny(), easy_data(), links(), lr=0.1, lr_decay=0.5, **args)
    decayed.round(1)
    # the same round-2 start, at the decayed step from the beginning
    reference = FedAvg(decayed.model, easy_data(), links(), lr=0.05, **args)
    reference.rng = np.random.default_rng(0)
    decayed.rng = np.random.default_rng(0)
    decayed.round(2), reference.round(1)
    for (k, a), (_, b) in zip(
        decayed.model.state_dict().items(), reference.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(ValueError, match="lr_decay must lie in"):
        FedAvg(tiny(), easy_data(), links(), lr_decay=1.5)
