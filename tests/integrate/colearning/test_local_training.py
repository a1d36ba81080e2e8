"""Batched federated local training equals the per-client loop; FedAvg and FedProx identities."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tinylarge.integrate.colearning.local_training import (
    LocalSgd,
    load_state,
    local_train_batched,
    local_train_loop,
    update_bytes,
    weighted_average,
)
from tinylarge.models.registry import build_model

SHAPE = (2, 32)


def model() -> torch.nn.Module:
    return build_model("tiny_cnn", SHAPE, 4, {"width": 3}, seed=0)


def client_data(n_clients: int, n_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_clients, n_samples, *SHAPE, generator=gen)
    y = torch.randint(0, 4, (n_clients, n_samples), generator=gen)
    return x, y


def assert_states_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_batched_clients_equal_the_per_client_loop(mu: float) -> None:
    x, y = client_data(5, 40, seed=1)  # 40 samples, batch 16: batches of 16, 16, 8
    sgd = LocalSgd(epochs=2, batch_size=16, lr=0.05, mu=mu, seed=3)
    batched = local_train_batched(model(), x, y, sgd)
    loop = local_train_loop(model(), x, y, sgd)
    assert_states_close(batched[0], loop[0])  # parameters
    assert_states_close(batched[1], loop[1])  # batch-norm running statistics and step counts


def test_fedavg_of_identical_clients_equals_one_client() -> None:
    # full-batch steps: the shuffled order cannot matter, so identical clients train identically
    x, y = client_data(1, 32, seed=2)
    sgd = LocalSgd(epochs=3, batch_size=32, lr=0.1, seed=0)
    one_params, one_buffers = local_train_batched(model(), x, y, sgd)
    three_params, three_buffers = local_train_batched(
        model(), x.repeat(3, 1, 1, 1), y.repeat(3, 1), sgd
    )
    averaged = weighted_average(three_params, [5, 1, 2])
    for key, value in averaged.items():
        torch.testing.assert_close(value, one_params[key][0], rtol=1e-5, atol=1e-6)
    for key, value in weighted_average(three_buffers, [1, 1, 1]).items():
        torch.testing.assert_close(value, one_buffers[key][0], rtol=1e-5, atol=1e-6)


def test_fedprox_with_mu_zero_is_fedavg() -> None:
    x, y = client_data(3, 24, seed=4)
    sgd = LocalSgd(epochs=1, batch_size=8, lr=0.1, seed=1)
    fedavg = local_train_batched(model(), x, y, sgd)
    fedprox = local_train_batched(model(), x, y, replace(sgd, mu=0.0))
    for key in fedavg[0]:
        assert torch.equal(fedavg[0][key], fedprox[0][key])
    # and a positive mu pulls the clients towards the global weights
    prox = local_train_batched(model(), x, y, replace(sgd, mu=5.0))
    start = dict(model().named_parameters())
    drift = sum(float((fedavg[0][k] - start[k].detach()).norm()) for k in start)
    pulled = sum(float((prox[0][k] - start[k].detach()).norm()) for k in start)
    assert pulled < drift


def test_weighted_average_on_a_hand_example_and_errors() -> None:
    stacked = {
        "w": torch.tensor([[1.0, 2.0], [3.0, 6.0]]),
        "n": torch.tensor([4, 4]),
    }
    out = weighted_average(stacked, [1, 3])
    torch.testing.assert_close(out["w"], torch.tensor([2.5, 5.0]))
    assert out["n"].item() == 4 and out["n"].dtype == torch.int64
    with pytest.raises(ValueError, match="weights"):
        weighted_average(stacked, [0, 0])
    with pytest.raises(ValueError, match="clients"):
        weighted_average(stacked, [1, 1, 1])
    with pytest.raises(ValueError, match="shape"):
        local_train_batched(model(), torch.zeros(3, *SHAPE), torch.zeros(3),
                            LocalSgd(epochs=1, batch_size=1, lr=0.1, seed=0))  # fmt: skip


def test_averaged_state_loads_and_update_bytes() -> None:
    net = model()
    x, y = client_data(2, 16, seed=5)
    sgd = LocalSgd(epochs=1, batch_size=8, lr=0.1, seed=0)
    params, buffers = local_train_batched(net, x, y, sgd)
    load_state(net, weighted_average(params, [1, 1]), weighted_average(buffers, [1, 1]))
    n_params = sum(p.numel() for p in net.parameters())
    assert update_bytes(net) == 4 * n_params
    assert update_bytes(net, 8) == n_params
    assert np.isfinite(net(torch.zeros(1, *SHAPE)).detach().numpy()).all()


def test_batched_equals_the_loop_for_2d_images() -> None:
    """The grouped network also holds for Conv2d / BatchNorm2d / MaxPool2d (e.g. digits)."""
    net = build_model("tiny_cnn", (1, 8, 8), 3, {"width": 2}, seed=1)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 20, 1, 8, 8, generator=gen)
    y = torch.randint(0, 3, (3, 20), generator=gen)
    sgd = LocalSgd(epochs=1, batch_size=8, lr=0.1, seed=2)
    batched = local_train_batched(net, x, y, sgd, chunk_clients=2)
    loop = local_train_loop(net, x, y, sgd)
    assert_states_close(batched[0], loop[0])
    assert_states_close(batched[1], loop[1])


def test_models_the_grouped_network_cannot_express_are_refused_by_name() -> None:
    from tinylarge.integrate.colearning.local_training import grouped_layers
    from tinylarge.models.blocks import BlockModel

    odd = BlockModel([torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.Dropout())],
                     torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2)))  # fmt: skip
    with pytest.raises(TypeError, match=r"blocks\.0\.1 \(Dropout\) cannot be trained batched"):
        grouped_layers(odd)
    with pytest.raises(TypeError, match="needs a BlockModel"):
        grouped_layers(torch.nn.Linear(2, 2))
