"""Federated learning of the tiny model: local SGD of many clients as one batched computation.

A round of FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017) or FedProx (Li et al., "Federated Optimization in
Heterogeneous Networks", MLSys 2020): every sampled client starts from the global weights, runs
``epochs`` of mini-batch SGD on its own data (FedProx adds ``mu / 2 ||w - w_global||^2`` to the
loss), and the server averages the clients' weights, weighted by their sample counts.

`local_train_batched` trains all clients of a round **together**: the clients' parameters and
batch-norm buffers are stacked along a leading client axis and one `torch.func.vmap` of
`torch.func.grad` over `torch.func.functional_call` computes every client's gradient in one
call. `local_train_loop` is the plain per-client loop on the same data and batch order (the
reference it must equal up to float rounding, and the benchmark's baseline).

Clients of a round hold the same number of samples (``x`` of shape (clients, samples, ...)),
so every client runs the same number of steps. Batch-norm running statistics are local state
that the server averages like the weights; ``num_batches_tracked`` counts steps and is equal on
every client.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

State = dict[str, Tensor]


def _check(x: Tensor, y: Tensor, epochs: int, batch_size: int, lr: float, mu: float) -> None:
    if x.ndim < 3 or y.ndim != 2 or x.shape[:2] != y.shape:
        raise ValueError(
            "x must have shape (clients, samples, *input_shape) and y (clients, samples); got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if epochs < 1 or batch_size < 1 or not lr > 0 or mu < 0:
        raise ValueError(
            "epochs and batch_size must be >= 1, lr > 0 and mu >= 0; got "
            f"epochs={epochs}, batch_size={batch_size}, lr={lr}, mu={mu}"
        )


def client_batch_order(
    n_clients: int, n_samples: int, epochs: int, seed: int
) -> npt.NDArray[np.int64]:
    """Each client's sample order per epoch, int64 (epochs, clients, samples), from ``seed``."""
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((epochs, n_clients, n_samples)), axis=2).astype(np.int64)


def _split_state(model: nn.Module) -> tuple[State, State]:
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    return params, buffers


def local_train_batched(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    mu: float = 0.0,
    seed: int,
) -> tuple[State, State]:
    """Local SGD of every client from ``model``'s weights, all clients in one batched call.

    Parameters
    ----------
    model : nn.Module
        The global model (its weights are the starting point; it is not modified).
    x : Tensor, shape (clients, samples, *input_shape)
    y : Tensor of int64, shape (clients, samples)
    epochs, batch_size : int
        Local epochs and mini-batch size (the last batch of an epoch may be smaller).
    lr : float
        SGD step size.
    mu : float
        FedProx proximal weight (0: FedAvg).
    seed : int
        Seeds the clients' batch order (`client_batch_order`).

    Returns
    -------
    (params, buffers) : dicts of name -> Tensor with a leading client axis
    """
    _check(x, y, epochs, batch_size, lr, mu)
    n_clients, n_samples = y.shape
    global_params, global_buffers = _split_state(model)
    params = {k: v.unsqueeze(0).repeat(n_clients, *[1] * v.ndim) for k, v in global_params.items()}
    buffers = {
        k: v.unsqueeze(0).repeat(n_clients, *[1] * v.ndim).clone()
        for k, v in global_buffers.items()
    }
    net = copy.deepcopy(model).train()

    def loss(p: State, b: State, xb: Tensor, yb: Tensor) -> Tensor:
        out = functional_call(net, (p, b), (xb,))
        value = nn.functional.cross_entropy(out, yb)
        if mu > 0:
            prox = sum(((p[k] - global_params[k]) ** 2).sum() for k in p)
            value = value + 0.5 * mu * prox
        return value

    client_grad = vmap(grad(loss))
    order = torch.from_numpy(client_batch_order(n_clients, n_samples, epochs, seed))
    rows = torch.arange(n_clients)[:, None]
    for epoch in range(epochs):
        for start in range(0, n_samples, batch_size):
            idx = order[epoch, :, start : start + batch_size]
            grads = client_grad(params, buffers, x[rows, idx], y[rows, idx])
            params = {k: params[k] - lr * grads[k] for k in params}
    return params, buffers


def local_train_loop(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    mu: float = 0.0,
    seed: int,
) -> tuple[State, State]:
    """The same local training as `local_train_batched`, one client after another."""
    _check(x, y, epochs, batch_size, lr, mu)
    n_clients, n_samples = y.shape
    global_params, _ = _split_state(model)
    order = client_batch_order(n_clients, n_samples, epochs, seed)
    per_client: list[tuple[State, State]] = []
    for c in range(n_clients):
        net = copy.deepcopy(model).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        for epoch in range(epochs):
            for start in range(0, n_samples, batch_size):
                idx = torch.from_numpy(order[epoch, c, start : start + batch_size])
                value = nn.functional.cross_entropy(net(x[c, idx]), y[c, idx])
                if mu > 0:
                    prox = sum(
                        ((p - global_params[k]) ** 2).sum() for k, p in net.named_parameters()
                    )
                    value = value + 0.5 * mu * prox
                optimizer.zero_grad(set_to_none=True)
                value.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
        per_client.append(_split_state(net))
    params = {k: torch.stack([p[k] for p, _ in per_client]) for k in per_client[0][0]}
    buffers = {k: torch.stack([b[k] for _, b in per_client]) for k in per_client[0][1]}
    return params, buffers


def weighted_average(stacked: State, weights: npt.ArrayLike) -> State:
    """Average every tensor over its leading client axis with ``weights`` (e.g. sample counts).

    Integer tensors (batch-norm step counters) take the weighted mean rounded down.
    """
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if w.ndim != 1 or w.numel() == 0 or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ValueError("weights must be a non-empty 1-D array of non-negative numbers, sum > 0")
    w = w / w.sum()
    out: State = {}
    for key, value in stacked.items():
        if value.shape[0] != w.numel():
            raise ValueError(f"{key} has {value.shape[0]} clients, weights {w.numel()}")
        shape = (-1, *[1] * (value.ndim - 1))
        mean = (value.double() * w.reshape(shape)).sum(dim=0)
        if value.dtype.is_floating_point:
            out[key] = mean.to(value.dtype)
        else:
            out[key] = torch.floor(mean + 1e-9).to(value.dtype)
    return out


def load_state(model: nn.Module, params: State, buffers: State) -> nn.Module:
    """Copy averaged parameters and buffers into ``model`` in place; return it."""
    model.load_state_dict({**params, **buffers}, strict=True)
    return model


def update_bytes(model: nn.Module, bits_per_value: int = 32) -> int:
    """Bytes of one client's model update (every parameter) at ``bits_per_value`` bits."""
    values = sum(p.numel() for p in model.parameters())
    return math.ceil(values * bits_per_value / 8)
