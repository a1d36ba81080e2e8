"""A federated round's local training split across Ray workers equals the in-process round."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinylarge.integrate.colearning.local_training import (
    LocalSgd,
    client_batch_order,
    local_train_batched,
    weighted_average,
)
from tinylarge.integrate.colearning.local_training_ray import local_train_on_ray
from tinylarge.models.registry import build_model

pytestmark = pytest.mark.slow


def test_a_round_on_ray_workers_averages_to_the_in_process_weights(ray_local: None) -> None:
    model = build_model("tiny_cnn", (2, 32), 4, {"width": 3}, seed=0)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(13, 24, 2, 32, generator=gen), torch.randint(0, 4, (13, 24), generator=gen)
    sgd = LocalSgd(epochs=2, batch_size=8, lr=0.05, mu=0.1, seed=5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: one thread each
    try:
        here = local_train_batched(model, x, y, sgd, chunk_clients=4)
    finally:
        torch.set_num_threads(threads)
    # chunks of 4: shards of 8, 4 and 1 clients
    there = local_train_on_ray(model, x, y, sgd, shards=3, chunk_clients=4)
    weights = np.arange(1, 14)
    for mine, theirs in zip(here, there, strict=True):
        assert mine.keys() == theirs.keys()
        for key in mine:
            assert torch.equal(mine[key], theirs[key]), key  # every client, bit for bit
        averaged = weighted_average(mine, weights), weighted_average(theirs, weights)
        for key in averaged[0]:
            assert torch.equal(averaged[0][key], averaged[1][key]), key


def test_a_given_batch_order_must_fit_the_clients() -> None:
    model = build_model("tiny_cnn", (2, 32), 4, {"width": 3}, seed=0)
    x, y = torch.zeros(3, 8, 2, 32), torch.zeros(3, 8, dtype=torch.int64)
    wrong = client_batch_order(4, 8, 1, seed=0)
    with pytest.raises(ValueError, match=r"order must have shape \(1, 3, 8\)"):
        local_train_batched(
            model, x, y, LocalSgd(epochs=1, batch_size=4, lr=0.1, seed=0), order=wrong
        )


def test_fedavg_rounds_on_ray_workers_equal_the_rounds_in_process(ray_local: None) -> None:
    from tests.integrate.colearning.colearning_fixtures import CLASSES, SHAPE, easy_data, links

    from tinylarge.integrate.colearning.fedavg import FedAvg

    def scheme(workers: int) -> FedAvg:
        model = build_model("tiny_cnn", SHAPE, CLASSES, {"width": 3}, seed=0)
        return FedAvg(model, easy_data(), links(), clients_per_round=4, samples_per_client=50,
                      lr=0.1, ray_workers=workers, seed=0)  # fmt: skip

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers
    try:
        here = scheme(0).run(2)
    finally:
        torch.set_num_threads(threads)
    there = scheme(2).run(2)
    assert [r.accuracy for r in here] == [r.accuracy for r in there]
    assert [r.bytes_up for r in here] == [r.bytes_up for r in there]
    with pytest.raises(ValueError, match="ray_workers must be >= 0"):
        scheme(-1)
