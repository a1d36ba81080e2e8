"""Local training of a federated round across Ray workers.

The round's clients are split into contiguous shards of whole chunks (``chunk_clients``); each
shard is one Ray task that trains its clients as the grouped networks `local_train_batched`
uses in-process, chunk for chunk, with the batch order drawn once for all clients (so a client
trains on the same batches, grouped with the same clients, whatever shard it is in).
The stacked per-client weights come back in client order and are aggregated as before: the
averaged weights equal the in-process round's (tested at small scale). Ray's object store
carries the model, the shards' data and the results; nothing of Ray is re-implemented.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import torch
from torch import Tensor, nn

from tinylarge.integrate.colearning.local_training import (
    LocalSgd,
    State,
    client_batch_order,
    concat_clients,
    local_train_batched,
)
from tinylarge.ray_cluster import start_ray


def _train_shard(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    sgd: LocalSgd,
    chunk_clients: int,
) -> tuple[State, State]:
    torch.set_num_threads(1)  # one CPU per task: Ray runs as many tasks as there are CPUs
    # numpy arrays arrive from the object store without a copy (read-only): torch gets its own
    xt, yt = torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))
    return local_train_batched(model, xt, yt, sgd, chunk_clients=chunk_clients, order=order)


def local_train_on_ray(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    sgd: LocalSgd,
    *,
    shards: int,
    chunk_clients: int = 64,
) -> tuple[State, State]:
    """`local_train_batched` of every client, the clients split into ``shards`` Ray tasks
    (a running Ray, e.g. ``ray.init()``, is used; else the cluster in ``RAY_ADDRESS`` or a new
    local one, `tinylarge.ray_cluster.start_ray`)."""
    import ray

    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    start_ray(os.environ.get("RAY_ADDRESS"))
    n_clients, n_samples = y.shape
    order = client_batch_order(n_clients, n_samples, sgd.epochs, sgd.seed)
    # shards of whole chunks: each worker groups exactly the clients the in-process round
    # groups (the grouped convolution's rounding depends on how many clients it holds)
    n_chunks = -(-n_clients // chunk_clients)
    chunk_bounds = np.linspace(0, n_chunks, min(shards, n_chunks) + 1).astype(int)
    bounds = np.minimum(chunk_bounds * chunk_clients, n_clients)
    remote = ray.remote(num_cpus=1)(_train_shard)
    model_ref = ray.put(model)
    x_np, y_np = x.numpy(), y.numpy()  # numpy crosses the object store without pickling
    futures = [
        remote.remote(model_ref, x_np[lo:hi], y_np[lo:hi], np.ascontiguousarray(order[:, lo:hi]),
                      sgd, chunk_clients)
        for lo, hi in itertools.pairwise(bounds)
    ]  # fmt: skip
    return concat_clients(ray.get(futures))
