"""FedAvg and FedProx of the tiny model as co-learning schemes over the 6G link.

Each round: the server picks clients (`tinylarge.integrate.colearning.client_selection`), sends
them the
global model (float32 on the downlink), every client trains locally (all clients of the round as
one batched computation, `local_train_batched`), compresses its update
(`tinylarge.integrate.colearning.update_compression`) and uploads it; the server aggregates
(`tinylarge.integrate.colearning.aggregators`) and scores the new global model on the test set.

Batching needs the same number of local steps on every client: each selected client trains on
``samples_per_client`` of its own samples per round, a random subset if it holds more, its
samples repeated (in a fresh random order each time) if it holds fewer. The aggregate weights
clients by the samples they hold (FedAvg's ``n_k / n``), capped at ``samples_per_client``.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tinylarge.integrate.colearning.aggregators import get_aggregator
from tinylarge.integrate.colearning.client_selection import get_selector, select_clients
from tinylarge.integrate.colearning.contract import (
    CoLearning,
    FederatedData,
    LinkBudget,
    RoundRecord,
    SecureSum,
    SecureSumResult,
    Traffic,
    accuracy,
)
from tinylarge.integrate.colearning.local_training import (
    LocalSgd,
    load_state,
    local_train_batched,
)
from tinylarge.integrate.colearning.update_compression import make_compressor, state_bytes
from tinylarge.integrate.inference.split_computing import module_macs
from tinylarge.models.evaluation import predict_logits
from tinylarge.validation import check_int

IntArray = npt.NDArray[np.int64]
State = dict[str, torch.Tensor]


class ClientAttack(Protocol):
    """What malicious clients do (implementations: `tinylarge.secure.attacks`)."""

    name: str

    def poison_labels(self, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Labels a malicious client trains on, from its true ones (clients, samples)."""
        ...

    def poison_updates(
        self, delta: State, malicious: torch.Tensor, rng: np.random.Generator
    ) -> State:
        """The updates every client sends: ``delta`` (name -> (clients, ...)) with the rows
        where ``malicious`` (bool, (clients,)) is true replaced by the attack's."""
        ...


def clip_updates(delta: State, clip: float) -> State:
    """Scale every client's update (all float tensors together) to L2 norm <= ``clip``."""
    floats = [k for k, v in delta.items() if v.dtype.is_floating_point]
    flat = torch.cat([delta[k].reshape(delta[k].shape[0], -1).double() for k in floats], dim=1)
    scale = (clip / flat.norm(dim=1).clamp_min(1e-30)).clamp(max=1.0)
    return {
        k: v * scale.to(v.dtype).reshape(-1, *[1] * (v.ndim - 1)) if k in floats else v
        for k, v in delta.items()
    }


def client_sample_indices(
    rng: np.random.Generator, data: FederatedData, clients: IntArray, samples: int
) -> IntArray:
    """``samples`` training-sample indices per client, int64 (clients, samples).

    A random subset of a client's samples if it holds more, else its samples repeated in fresh
    random orders. ``ValueError`` for a client that holds none.
    """
    rows = np.empty((clients.size, samples), dtype=np.int64)
    for row, client in enumerate(clients):
        own = data.partition.device(int(client))
        if own.size == 0:
            raise ValueError(f"device {int(client)} holds no training samples")
        if own.size >= samples:
            rows[row] = rng.choice(own, size=samples, replace=False)
        else:
            repeats = -(-samples // own.size)
            rows[row] = np.concatenate([rng.permutation(own) for _ in range(repeats)])[:samples]
    return rows


class FedAvg(CoLearning):
    """Federated averaging of a tiny model (McMahan et al., AISTATS 2017).

    Parameters
    ----------
    model : nn.Module
        The initial global model (a `tiny_cnn`; copied, the caller's object is not changed).
    data : FederatedData
    links : LinkBudget
    clients_per_round : int
        Clients selected per round (fewer if fewer devices are reachable).
    local_epochs : int
        Local passes over ``samples_per_client`` samples.
    samples_per_client : int
        Samples each client trains on per round (see the module doc).
    batch_size : int
    lr : float
        Local SGD step size.
    mu : float
        FedProx proximal weight (0 for FedAvg).
    lr_decay : float
        Round ``r`` trains with ``lr * lr_decay ** (r - 1)`` (1: constant).
    server_momentum : float
        FedAvgM (Hsu, Qi & Brown, arXiv:1909.06335, 2019): the server keeps a momentum buffer
        ``v = server_momentum * v + (aggregate - global)`` of the averaged updates and moves the
        global model by ``v`` (0: plain FedAvg). Batch-norm running statistics are averaged,
        not moved by momentum.
    aggregator, selection, compression : str
        Names in `aggregators`, `client_selection`, `update_compression`.
    topk_fraction : float
        Kept fraction for ``compression = "topk"``.
    attack : ClientAttack, optional
        What the devices in ``malicious`` do when they are selected.
    malicious : array_like of int, optional
        Device ids of the malicious clients.
    dp_clip : float, optional
        DP-FedAvg (McMahan et al., "Learning Differentially Private Recurrent Language Models",
        ICLR 2018): clip every update to this L2 norm, and add Gaussian noise of std
        ``dp_noise_multiplier * dp_clip / clients`` to every coordinate of the aggregate
        (calibrated for the mean of equally weighted clients).
    dp_noise_multiplier : float
    secure_sum : SecureSum, optional
        Secure aggregation (e.g. `tinylarge.secure.secagg.SecAggPlus`): every client sends
        ``[r, r * update]`` with ``r = held samples / samples_per_client`` through it, and the
        server sets the global model to the mean ``sum(r * update) / sum(r)`` over the clients
        whose input arrived, learning nothing else. Needs ``aggregator = "mean"`` and
        ``compression = "none"``. Its bytes, messages and device energy are charged in place
        of the plain upload; each record's ``extra`` gets ``secure_aggregation_dropped``,
        ``secure_aggregation_bytes_per_client`` (protocol bytes up + down, mean over the
        round's clients), ``secure_aggregation_plain_bytes_per_client`` (the plain upload it
        replaces) and ``secure_aggregation_max_abs_error`` (largest difference from plain
        FedAvg over the same clients). A round the protocol cannot finish raises its error
        and leaves the model unchanged.
    ray_workers : int
        Split each round's local training over this many Ray tasks
        (`tinylarge.integrate.colearning.local_training_ray`; identical weights); 0 trains in this
        process.
    seed : int
    """

    name: ClassVar[str] = "fedavg"

    def __init__(
        self,
        model: nn.Module,
        data: FederatedData,
        links: LinkBudget,
        *,
        clients_per_round: int = 10,
        local_epochs: int = 1,
        samples_per_client: int = 256,
        batch_size: int = 32,
        lr: float = 0.05,
        mu: float = 0.0,
        lr_decay: float = 1.0,
        server_momentum: float = 0.0,
        aggregator: str = "mean",
        selection: str = "uniform",
        compression: str = "none",
        topk_fraction: float = 0.1,
        attack: ClientAttack | None = None,
        malicious: npt.ArrayLike | None = None,
        dp_clip: float | None = None,
        dp_noise_multiplier: float = 0.0,
        secure_sum: SecureSum | None = None,
        ray_workers: int = 0,
        seed: int = 0,
    ) -> None:
        if ray_workers < 0:
            raise ValueError(f"ray_workers must be >= 0 (0: in this process), got {ray_workers}")
        self.ray_workers = ray_workers
        for name, value in (
            ("clients_per_round", clients_per_round),
            ("local_epochs", local_epochs),
            ("samples_per_client", samples_per_client),
            ("batch_size", batch_size),
        ):
            check_int(name, value, 1)
        if not lr > 0 or not mu >= 0:
            raise ValueError(f"lr must be > 0 and mu >= 0, got lr={lr}, mu={mu}")
        if not 0 < lr_decay <= 1 or not 0 <= server_momentum < 1:
            raise ValueError(
                f"lr_decay must lie in (0, 1] and server_momentum in [0, 1), got "
                f"{lr_decay} and {server_momentum}"
            )
        if links.n_devices != data.n_devices:
            raise ValueError(
                f"links cover {links.n_devices} devices but the data is spread over "
                f"{data.n_devices}"
            )
        self.model = copy.deepcopy(model)
        self.data, self.links = data, links
        self.clients_per_round, self.local_epochs = clients_per_round, local_epochs
        self.samples_per_client, self.batch_size = samples_per_client, batch_size
        self.lr, self.mu = lr, mu
        self.lr_decay, self.server_momentum = lr_decay, server_momentum
        self.velocity: dict[str, torch.Tensor] = {}
        self.aggregate = get_aggregator(aggregator)
        get_selector(selection)
        self.selection = selection
        self.compressor = make_compressor(compression, topk_fraction=topk_fraction)
        bad = np.zeros(data.n_devices, dtype=bool)
        if malicious is not None:
            ids = np.asarray(malicious, dtype=np.int64).reshape(-1)
            if ids.size and (ids.min() < 0 or ids.max() >= data.n_devices):
                raise ValueError(f"malicious device ids must lie in [0, {data.n_devices})")
            bad[ids] = True
        if bad.any() and attack is None:
            raise ValueError("malicious devices were given without an attack")
        if (dp_clip is not None and not dp_clip > 0) or not dp_noise_multiplier >= 0:
            raise ValueError(
                f"dp_clip must be > 0 and dp_noise_multiplier >= 0, got {dp_clip} and "
                f"{dp_noise_multiplier}"
            )
        if secure_sum is not None and (aggregator != "mean" or compression != "none"):
            raise ValueError(
                "secure aggregation reveals only the sum of the updates: it needs "
                f"aggregator = 'mean' and compression = 'none', got {aggregator!r} and "
                f"{compression!r}"
            )
        self.secure_sum = secure_sum
        self.attack, self.malicious = attack, bad
        self.dp_clip, self.dp_noise_multiplier = dp_clip, dp_noise_multiplier
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.forward_macs = module_macs(self.model, data.input_shape)

    def round(self, number: int) -> RoundRecord:
        clients = select_clients(self.selection, self.rng, self.links, self.clients_per_round)
        idx = client_sample_indices(self.rng, self.data, clients, self.samples_per_client)
        x = torch.from_numpy(self.data.x_train[idx])
        y = torch.from_numpy(self.data.y_train[idx])
        bad = torch.from_numpy(self.malicious[clients])
        if self.attack is not None and bool(bad.any()):
            y = y.clone()
            y[bad] = self.attack.poison_labels(y[bad], self.data.num_classes)
        global_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        sgd = LocalSgd(
            epochs=self.local_epochs,
            batch_size=self.batch_size,
            lr=self.lr * self.lr_decay ** (number - 1),
            mu=self.mu,
            seed=int(self.rng.integers(2**31)),
        )
        if self.ray_workers:
            from tinylarge.integrate.colearning.local_training_ray import local_train_on_ray

            params, buffers = local_train_on_ray(self.model, x, y, sgd, shards=self.ray_workers)
        else:
            params, buffers = local_train_batched(self.model, x, y, sgd)
        stacked = {**params, **buffers}
        delta = {
            k: v - global_state[k] if v.dtype.is_floating_point else v for k, v in stacked.items()
        }
        if self.attack is not None and bool(bad.any()):
            delta = self.attack.poison_updates(delta, bad, self.rng)
        if self.dp_clip is not None:
            delta = clip_updates(delta, self.dp_clip)
        decoded, up_bytes = self.compressor.compress(delta)
        received = {
            k: global_state[k] + v if v.dtype.is_floating_point else v for k, v in decoded.items()
        }
        held = np.minimum(self.data.partition.sizes[clients], self.samples_per_client)
        secure: SecureSumResult | None = None
        extra: dict[str, float] = {}
        if self.secure_sum is None:
            new_state = self.aggregate(received, held)
        else:
            new_state, secure, extra = self._secure_aggregate(
                self.secure_sum, global_state, received, held
            )
            extra["secure_aggregation_plain_bytes_per_client"] = float(np.mean(up_bytes))
        summed = clients.size if secure is None else int(secure.included.sum())
        new_state = self._server_step(new_state, global_state, params, summed)
        load_state(
            self.model,
            {k: new_state[k] for k in params},
            {k: new_state[k] for k in buffers},
        )
        traffic, protocol_j = self._traffic(clients, up_bytes, state_bytes(global_state), secure)
        compute = self.links.training_energy_j(
            self.forward_macs, self.samples_per_client * self.local_epochs
        )
        logits = predict_logits(self.model, self.data.x_test)
        return RoundRecord(
            round=number,
            accuracy=accuracy(logits, self.data.y_test),
            bytes_up=traffic.bytes_up,
            bytes_down=traffic.bytes_down,
            airtime_s=traffic.airtime_s,
            device_energy_j=float(
                traffic.device_energy_j.sum() + compute * clients.size + protocol_j
            ),
            clients=int(clients.size),
            extra=extra,
        )

    def _traffic(
        self, clients: IntArray, up_bytes: IntArray, down_bytes: int, secure: SecureSumResult | None
    ) -> tuple[Traffic, float]:
        """The round's traffic (the model down, the updates up, or the secure aggregation's
        messages in their place) and the protocol's device compute energy, J."""
        if secure is None:
            return self.links.traffic(clients, up_bytes, down_bytes), 0.0
        traffic = self.links.traffic(
            clients,
            secure.bytes_up,
            down_bytes + secure.bytes_down,
            messages_up=secure.messages_up,
            messages_down=1 + secure.messages_down,
        )
        return traffic, float(secure.device_energy_j.sum())

    def _server_step(
        self, new_state: State, global_state: State, params: State, summed: int
    ) -> State:
        """DP noise on the aggregate of ``summed`` clients, then server momentum (in place)."""
        if self.dp_clip is not None and self.dp_noise_multiplier > 0:
            std = self.dp_noise_multiplier * self.dp_clip / summed
            gen = torch.Generator().manual_seed(int(self.rng.integers(2**62)))
            for key, value in new_state.items():
                if value.dtype.is_floating_point:
                    noise = torch.randn(value.shape, generator=gen, dtype=torch.float64)
                    new_state[key] = value + (std * noise).to(value.dtype)
        if self.server_momentum > 0:
            for key in params:
                step = new_state[key] - global_state[key]
                v = self.velocity.get(key)
                v = step if v is None else self.server_momentum * v + step
                self.velocity[key] = v
                new_state[key] = global_state[key] + v
        return new_state

    def _secure_aggregate(
        self, secure_sum: SecureSum, global_state: State, received: State, held: IntArray
    ) -> tuple[State, SecureSumResult, dict[str, float]]:
        """The weighted mean of the clients' updates through ``secure_sum`` (see the class
        doc), and how far it is from plain FedAvg over the same clients."""
        floats = [k for k, v in received.items() if v.dtype.is_floating_point]
        n = int(held.size)
        updates = torch.cat(
            [(received[k].double() - global_state[k].double()).reshape(n, -1) for k in floats],
            dim=1,
        ).numpy()
        ratio = (held / self.samples_per_client).astype(np.float64)[:, None]
        result = secure_sum.secure_sum(np.hstack([ratio, ratio * updates]), self.rng)
        inc = result.included
        mean = torch.from_numpy(result.total[1:] / result.total[0])
        plain = self.aggregate(
            {k: v[torch.from_numpy(inc)] for k, v in received.items()}, held[inc]
        )
        new_state: State = dict(plain)  # integer buffers (step counts) are not secret
        offset, error = 0, 0.0
        for key in floats:
            ref = global_state[key]
            step = mean[offset : offset + ref.numel()].reshape(ref.shape)
            offset += ref.numel()
            new_state[key] = (ref.double() + step).to(ref.dtype)
            error = max(error, float((new_state[key].double() - plain[key].double()).abs().max()))
        extra = {
            "secure_aggregation_dropped": float(n - int(inc.sum())),
            "secure_aggregation_bytes_per_client": float(
                np.mean(result.bytes_up + result.bytes_down)
            ),
            "secure_aggregation_max_abs_error": error,
        }
        return new_state, result, extra


class FedProx(FedAvg):
    """FedAvg with a proximal term ``mu / 2 ||w - w_global||^2`` in every client's loss
    (Li et al., MLSys 2020); ``mu`` defaults to 0.01."""

    name: ClassVar[str] = "fedprox"

    def __init__(
        self,
        model: nn.Module,
        data: FederatedData,
        links: LinkBudget,
        *,
        mu: float = 0.01,
        **options: object,
    ) -> None:
        if not mu > 0:
            raise ValueError(f"FedProx needs mu > 0 (mu = 0 is FedAvg), got {mu}")
        super().__init__(model, data, links, mu=mu, **options)  # type: ignore[arg-type]
