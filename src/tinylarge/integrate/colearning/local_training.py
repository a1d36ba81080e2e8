"""Federated learning of the tiny model: local SGD of many clients as one batched computation.

A round of FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017) or FedProx (Li et al., "Federated Optimization in
Heterogeneous Networks", MLSys 2020): every sampled client starts from the global weights, runs
``epochs`` of mini-batch SGD on its own data (FedProx adds ``mu / 2 ||w - w_global||^2`` to the
loss), and the server averages the clients' weights, weighted by their sample counts.

`local_train_batched` trains all clients of a round **together**, as one grouped network: the
clients' parameters and batch-norm buffers are stacked along a leading client axis, client
``c`` owns channels ``[c * C, (c + 1) * C)`` of every activation, every convolution runs with
``groups = clients`` and batch norm's per-channel statistics are per client
(`grouped_forward`). One forward and one backward pass per step serve every client. This is
an equivalent of ``vmap(grad(functional_call))``. On 2 CPU cores, one round of 1,000 clients took
1.4 s this way and 7.7 s with vmap (`benchmarks/bench_fl.py`, separate sessions).
`local_train_loop` is the plain per-client loop on the same data and batch order (the
reference it must equal up to float rounding, and the benchmark's baseline).

Clients of a round hold the same number of samples (``x`` of shape (clients, samples, ...)),
so every client runs the same number of steps. Batch-norm running statistics are local state
that the server averages like the weights; ``num_batches_tracked`` counts steps and is equal on
every client.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tinylarge.models.blocks import BlockModel

State = dict[str, Tensor]


@dataclass(frozen=True)
class LocalSgd:
    """The local training every client of a round runs.

    Attributes
    ----------
    epochs : int
        Passes of each client over its samples (>= 1).
    batch_size : int
        Mini-batch size (>= 1; the last batch of an epoch may be smaller).
    lr : float
        SGD step size (> 0).
    seed : int
        Seeds the clients' batch order (`client_batch_order`).
    mu : float
        FedProx proximal weight (>= 0; 0: FedAvg).
    """

    epochs: int
    batch_size: int
    lr: float
    seed: int
    mu: float = 0.0


def _check(x: Tensor, y: Tensor, sgd: LocalSgd) -> None:
    epochs, batch_size, lr, mu = sgd.epochs, sgd.batch_size, sgd.lr, sgd.mu
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


_GROUPABLE = (
    nn.Conv1d,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Linear,
)


def grouped_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's layers in forward order with their state-dict prefixes.

    Only sequential models of the layers in ``_GROUPABLE`` (every `tiny_cnn`) can be trained
    as one grouped network; anything else raises ``TypeError`` naming the layer.
    """
    if not isinstance(model, BlockModel):
        raise TypeError(f"batched client training needs a BlockModel, got {type(model).__name__}")
    layers: list[tuple[str, nn.Module]] = []
    for prefix, part in [(f"blocks.{i}", b) for i, b in enumerate(model.blocks)] + [
        ("head", model.head)
    ]:
        children = list(part.named_children()) if isinstance(part, nn.Sequential) else [("", part)]
        for name, layer in children:
            if not isinstance(layer, _GROUPABLE) or (
                isinstance(layer, nn.Conv1d | nn.Conv2d) and layer.padding_mode != "zeros"
            ):
                allowed = ", ".join(t.__name__ for t in _GROUPABLE)
                raise TypeError(
                    f"layer {prefix}.{name} ({type(layer).__name__}) cannot be trained batched; "
                    f"allowed layers: {allowed} (convolutions with zero padding)"
                )
            if isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d) and (
                layer.momentum is None or not layer.track_running_stats or not layer.affine
            ):
                raise TypeError(
                    f"batch norm {prefix}.{name} needs momentum, affine and running stats"
                )
            layers.append((f"{prefix}.{name}" if name else prefix, layer))
    return layers


def grouped_forward(
    layers: list[tuple[str, nn.Module]], state: State, x: Tensor, *, training: bool = True
) -> Tensor:
    """Logits of every client on its own batch, all clients as one grouped network.

    Client ``c``'s channels occupy channels ``[c * C, (c + 1) * C)`` of every activation, so a
    convolution with ``groups = clients`` is each client's convolution and batch norm's
    per-channel statistics are each client's own statistics.

    Parameters
    ----------
    layers : from `grouped_layers`
    state : dict name -> Tensor with a leading client axis (parameters and buffers)
        Batch-norm running statistics are updated in place when ``training``.
    x : Tensor, shape (clients, batch, *input_shape)

    Returns
    -------
    Tensor, shape (clients, batch, num_classes)
    """
    n, batch = x.shape[0], x.shape[1]
    h = x.transpose(0, 1).reshape(batch, n * x.shape[2], *x.shape[3:])
    for name, layer in layers:
        if isinstance(layer, nn.Conv1d | nn.Conv2d):
            w = state[f"{name}.weight"]
            bias = state.get(f"{name}.bias")
            conv = F.conv1d if isinstance(layer, nn.Conv1d) else F.conv2d
            h = conv(
                h,
                w.reshape(-1, *w.shape[2:]),
                None if bias is None else bias.reshape(-1),
                layer.stride,
                layer.padding,
                layer.dilation,
                n * layer.groups,
            )
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            if training:
                state[f"{name}.num_batches_tracked"].add_(1)
            h = F.batch_norm(
                h,
                state[f"{name}.running_mean"].view(-1),
                state[f"{name}.running_var"].view(-1),
                state[f"{name}.weight"].reshape(-1),
                state[f"{name}.bias"].reshape(-1),
                training=training,
                momentum=float(layer.momentum or 0.0),
                eps=layer.eps,
            )
        elif isinstance(layer, nn.Linear):
            w = state[f"{name}.weight"]  # (clients, out, in)
            h = torch.einsum("bci,coi->bco", h.reshape(batch, n, -1), w)
            if f"{name}.bias" in state:
                h = h + state[f"{name}.bias"]
            h = h.reshape(batch, -1)
        else:
            h = layer(h)
    return h.reshape(batch, n, -1).transpose(0, 1)


def local_train_batched(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    sgd: LocalSgd,
    *,
    chunk_clients: int = 64,
    order: npt.NDArray[np.int64] | None = None,
) -> tuple[State, State]:
    """Local SGD of every client from ``model``'s weights, all clients as one grouped network.

    Parameters
    ----------
    model : BlockModel of the layers `grouped_layers` accepts
        The global model (its weights are the starting point; it is not modified).
    x : Tensor, shape (clients, samples, *input_shape)
    y : Tensor of int64, shape (clients, samples)
    sgd : LocalSgd
        Epochs, mini-batch size, step size, FedProx weight and the batch order's seed.
    chunk_clients : int
        Clients trained together per grouped network (bounds memory; results do not depend
        on it).
    order : int64 array (epochs, clients, samples), optional
        The clients' batch order; default ``client_batch_order(clients, samples, epochs,
        seed)``. Given, it lets a shard of a round's clients train exactly as it would with
        all of them (`tinylarge.integrate.colearning.local_training_ray`).

    Returns
    -------
    (params, buffers) : dicts of name -> Tensor with a leading client axis
    """
    _check(x, y, sgd)
    epochs = sgd.epochs
    if chunk_clients < 1:
        raise ValueError(f"chunk_clients must be >= 1, got {chunk_clients}")
    layers = grouped_layers(model)
    n_clients, n_samples = y.shape
    global_params, global_buffers = _split_state(model)
    if order is None:
        order = client_batch_order(n_clients, n_samples, epochs, sgd.seed)
    if order.shape != (epochs, n_clients, n_samples):
        raise ValueError(f"order must have shape {(epochs, n_clients, n_samples)}, got "
                         f"{order.shape}")  # fmt: skip
    batches = torch.from_numpy(order)
    chunks: list[tuple[State, State]] = []
    for first in range(0, n_clients, chunk_clients):
        clients = slice(first, min(first + chunk_clients, n_clients))
        chunk = _train_chunk(
            layers, global_params, global_buffers, x[clients], y[clients], batches[:, clients],
            batch_size=sgd.batch_size, lr=sgd.lr, mu=sgd.mu,
        )  # fmt: skip
        chunks.append(chunk)
    return concat_clients(chunks)


def concat_clients(parts: Sequence[tuple[State, State]]) -> tuple[State, State]:
    """The (params, buffers) of consecutive groups of clients, joined along the client axis.

    Parameters
    ----------
    parts : sequence of (params, buffers), at least one
        Each group's dicts of name -> Tensor with a leading client axis, the same names in all.
    """
    params, buffers = parts[0]
    return (
        {k: torch.cat([p[0][k] for p in parts]) for k in params},
        {k: torch.cat([p[1][k] for p in parts]) for k in buffers},
    )


def _train_chunk(
    layers: list[tuple[str, nn.Module]],
    global_params: State,
    global_buffers: State,
    x: Tensor,
    y: Tensor,
    batches: Tensor,
    *,
    batch_size: int,
    lr: float,
    mu: float,
) -> tuple[State, State]:
    """Local SGD of one chunk of clients as one grouped network (`local_train_batched`):
    ``x`` (clients, samples, ...), ``y`` (clients, samples), ``batches`` (epochs, clients,
    samples) their batch order; returns their (params, buffers) with a leading client axis."""
    n, n_samples = y.shape
    params = {k: v.expand(n, *v.shape).clone() for k, v in global_params.items()}
    buffers = {k: v.expand(n, *v.shape).clone() for k, v in global_buffers.items()}
    rows = torch.arange(n)[:, None]
    for epoch in range(batches.shape[0]):
        for start in range(0, n_samples, batch_size):
            idx = batches[epoch, :, start : start + batch_size]
            for p in params.values():
                p.requires_grad_(True)
            logits = grouped_forward(layers, {**params, **buffers}, x[rows, idx])
            # sum over clients of each client's mean loss: client c's gradient is its own
            loss = (
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    y[rows, idx].reshape(-1),
                    reduction="sum",
                )
                / idx.shape[1]
            )
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for (key, p), g in zip(params.items(), grads, strict=True):
                    if mu > 0:
                        g = g + mu * (p - global_params[key])
                    params[key] = (p - lr * g).detach()
    return params, buffers


def local_train_loop(model: nn.Module, x: Tensor, y: Tensor, sgd: LocalSgd) -> tuple[State, State]:
    """The same local training as `local_train_batched`, one client after another."""
    _check(x, y, sgd)
    epochs, batch_size, lr, mu = sgd.epochs, sgd.batch_size, sgd.lr, sgd.mu
    n_clients, n_samples = y.shape
    global_params, _ = _split_state(model)
    order = client_batch_order(n_clients, n_samples, epochs, sgd.seed)
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
