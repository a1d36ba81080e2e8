"""Split learning and SplitFed: devices train the first blocks of a model, the server the rest.

The device holds blocks ``[0, cut)`` of a `BlockModel`, the server the rest; one training step
(activation up, gradient down, both optionally quantized, and their bytes on air) is
`tinylarge.integrate.colearning.split_training_step.split_train_step`.

Two schemes share that step and all bookkeeping:

- `SplitLearning` — vanilla, sequential split learning (Gupta & Raskar, "Distributed learning
  of deep neural network over multiple agents", J. Netw. Comput. Appl. 2018): one device part
  and one server part; the round's clients train one after another, each starting from the
  device part the previous client left.
- `SplitFed` — federated split learning (Thapa et al., "SplitFed: When Federated Learning Meets
  Split Learning", AAAI 2022): every client starts from the global device part; the server
  averages the clients' device parts (parameters and batch-norm buffers) weighted by their
  sample counts. ``variant="v1"`` (SFLV1, default): every client also trains its own copy of
  the server part, which the server averages the same way (the result does not depend on
  client order, as if the clients ran in parallel). ``variant="v2"`` (SFLV2): one server part
  is trained sequentially on the clients' batches, client after client in the round's random
  order.

Model transfer (both schemes): a client downloads the current device part before its turn and
uploads it after it (in `SplitLearning` the device part is handed to the next client *through
the server*: up from one client, down to the next; a peer-to-peer hand-off would halve that).
A device part costs 4 bytes per floating-point element of its ``state_dict`` (parameters and
batch-norm running statistics; `transfer_bytes`). Test accuracy is that of the full model — the
latest (SL) or averaged (SplitFed) device part joined with the server part — in eval mode.
Device compute energy counts the device part's forward MACs (`module_macs`) per sample pass,
times ``TRAINING_MACS_PER_FORWARD_MAC`` (`LinkBudget.training_energy_j`).
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from tinylarge.errors import CannotFitError
from tinylarge.integrate.colearning.contract import (
    CoLearning,
    FederatedData,
    LinkBudget,
    RoundRecord,
    accuracy,
)
from tinylarge.integrate.colearning.local_training import weighted_average
from tinylarge.integrate.colearning.split_training_step import (
    check_bits,
    cut_model,
    split_train_step,
    transfer_bytes,
)
from tinylarge.integrate.inference.split_computing import (
    activation_shapes,
    module_macs,
)
from tinylarge.models.blocks import BlockModel
from tinylarge.validation import check_int

#: Test samples per forward pass when scoring a round.
_EVAL_BATCH = 512


@dataclass(frozen=True)
class _ClientWork:
    """What one client did in a round: samples, traffic and the sum of its batch losses."""

    device: int
    samples: int  # distinct training samples used (the averaging weight)
    sample_passes: int  # samples x epochs (forward + backward passes on the device)
    bytes_up: int
    bytes_down: int
    smashed_bytes: int  # activations + labels + gradients
    messages: int  # per direction: one per training step, plus the device part
    loss_sum: float  # sum over batches of batch loss x batch size


class _SplitScheme(CoLearning):
    """Shared state and bookkeeping of `SplitLearning` and `SplitFed` (see the module doc)."""

    def __init__(
        self,
        model: BlockModel,
        data: FederatedData,
        links: LinkBudget,
        *,
        cut: int = 1,
        clients_per_round: int = 10,
        local_epochs: int = 1,
        samples_per_client: int = 256,
        batch_size: int = 32,
        lr: float = 0.05,
        activation_bits: int | None = 8,
        gradient_bits: int | None = 8,
        seed: int = 0,
    ) -> None:
        if not isinstance(model, BlockModel):
            raise ValueError(f"model must be a BlockModel, got {type(model).__name__}")
        for name, value, low in (
            ("clients_per_round", clients_per_round, 1),
            ("local_epochs", local_epochs, 1),
            ("samples_per_client", samples_per_client, 1),
            ("batch_size", batch_size, 1),
            ("seed", seed, 0),
        ):
            check_int(name, value, low)
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        check_bits("activation_bits", activation_bits)
        check_bits("gradient_bits", gradient_bits)
        if links.n_devices != data.n_devices:
            raise ValueError(
                f"links describe {links.n_devices} devices but the data partition has "
                f"{data.n_devices}"
            )
        eligible = np.flatnonzero(links.reachable & (data.partition.sizes > 0))
        if eligible.size == 0:
            raise CannotFitError(
                "no device both holds training samples and is reachable (rate > 0)"
            )
        self.model: BlockModel = copy.deepcopy(model)
        self.device_part, self.server_part = cut_model(self.model, cut)
        self.data, self.links = data, links
        self.cut, self.clients_per_round, self.local_epochs = cut, clients_per_round, local_epochs
        self.samples_per_client, self.batch_size, self.lr = samples_per_client, batch_size, lr
        self.activation_bits, self.gradient_bits, self.seed = activation_bits, gradient_bits, seed
        self._eligible = eligible.astype(np.int64)
        dtype = next(self.model.parameters()).dtype
        self._x = torch.as_tensor(np.asarray(data.x_train), dtype=dtype)
        self._y = torch.as_tensor(np.asarray(data.y_train), dtype=torch.int64)
        probe = self._logits(np.zeros((1, *data.input_shape), dtype=np.float32))
        if probe.shape != (1, data.num_classes):
            raise ValueError(
                f"model outputs {probe.shape[1]} logits, the data has {data.num_classes} classes"
            )
        #: Values of the activation at the cut, per sample.
        self.activation_elements = math.prod(activation_shapes(self.model, data.input_shape)[cut])
        #: Forward MACs of the device part per sample (`module_macs`).
        self.device_macs_per_sample = module_macs(self.device_part, data.input_shape)
        #: Bytes of one device-part transfer (`transfer_bytes`).
        self.device_part_bytes = transfer_bytes(self.device_part)

    def _logits(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Logits of the full model in eval mode, shape (n, num_classes); train mode restored."""
        inputs = torch.as_tensor(np.asarray(x), dtype=next(self.model.parameters()).dtype)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = [self.model(xb) for xb in torch.split(inputs, _EVAL_BATCH)]
        finally:
            self.model.train(was_training)
        return torch.cat(out).numpy().astype(np.float32)

    def evaluate(self) -> float:
        """Test accuracy of the full model (device part + server part) in eval mode."""
        return accuracy(self._logits(self.data.x_test), self.data.y_test)

    def _train_client(
        self, device_part: nn.Module, server_part: nn.Module, device: int, rng: np.random.Generator
    ) -> _ClientWork:
        """``local_epochs`` of split training of ``device`` on up to ``samples_per_client`` of
        its samples (a random subset, drawn afresh each round), reshuffled every epoch."""
        own = self.data.partition.device(device)
        if own.size > self.samples_per_client:
            own = rng.choice(own, size=self.samples_per_client, replace=False)
        up = down = smashed = passes = steps = 0
        loss_sum = 0.0
        for _ in range(self.local_epochs):
            order = torch.from_numpy(rng.permutation(own).astype(np.int64))
            for idx in torch.split(order, self.batch_size):
                step = split_train_step(
                    device_part,
                    server_part,
                    self._x[idx],
                    self._y[idx],
                    lr=self.lr,
                    num_classes=self.data.num_classes,
                    activation_bits=self.activation_bits,
                    gradient_bits=self.gradient_bits,
                )
                up, down = up + step.bytes_up, down + step.bytes_down
                smashed += step.bytes_up + step.bytes_down
                passes += int(idx.numel())
                steps += 1
                loss_sum += step.loss * int(idx.numel())
        return _ClientWork(
            device=device,
            samples=int(own.size),
            sample_passes=passes,
            bytes_up=up + self.device_part_bytes,  # device part uploaded after the turn
            bytes_down=down + self.device_part_bytes,  # device part downloaded before it
            smashed_bytes=smashed,
            messages=steps + 1,
            loss_sum=loss_sum,
        )

    @abstractmethod
    def _train_round(self, clients: list[int], rng: np.random.Generator) -> list[_ClientWork]:
        """Train the round's ``clients`` (in this order) and update the model."""

    def round(self, number: int) -> RoundRecord:
        """Run round ``number`` (1-based): sample clients, train, score (see the module doc).

        Clients are ``min(clients_per_round, eligible)`` distinct devices drawn uniformly among
        the reachable devices that hold samples; the draw, the sample subsets and the batch
        order come from ``numpy.random.default_rng([seed, number])``.
        """
        check_int("round number", number, 1)
        rng = np.random.default_rng([self.seed, number])
        n = min(self.clients_per_round, self._eligible.size)
        clients = [int(d) for d in rng.choice(self._eligible, size=n, replace=False)]
        with torch.random.fork_rng(devices=[]):  # only models with dropout etc. draw from it
            torch.manual_seed(int(rng.integers(2**62)))
            work = self._train_round(clients, rng)
        devices = np.array([w.device for w in work], dtype=np.int64)
        messages = [w.messages for w in work]
        traffic = self.links.traffic(
            devices,
            [w.bytes_up for w in work],
            [w.bytes_down for w in work],
            messages_up=messages,
            messages_down=messages,
        )
        compute_j = self.links.training_energy_j(
            float(self.device_macs_per_sample), [w.sample_passes for w in work]
        )
        passes = sum(w.sample_passes for w in work)
        smashed = sum(w.smashed_bytes for w in work)
        return RoundRecord(
            round=number,
            accuracy=self.evaluate(),
            bytes_up=traffic.bytes_up,
            bytes_down=traffic.bytes_down,
            airtime_s=traffic.airtime_s,
            device_energy_j=float(traffic.device_energy_j.sum() + np.sum(compute_j)),
            clients=len(work),
            extra={
                "train_loss": sum(w.loss_sum for w in work) / max(passes, 1),
                "smashed_bytes": float(smashed),
                "model_bytes": float(sum(w.bytes_up + w.bytes_down for w in work) - smashed),
            },
        )


class SplitLearning(_SplitScheme):
    """Vanilla sequential split learning (Gupta & Raskar 2018; see the module doc).

    The round's clients train one after another on one shared model: each starts from the
    device part the previous client left (relayed through the server), the server part is
    trained by every client's batches in turn.

    Parameters
    ----------
    model : BlockModel
        The initial model (deep-copied; the caller's object is not modified).
    data : FederatedData
        Devices' training samples and the test set (``num_classes`` must match the model).
    links : LinkBudget
        One link per device of ``data`` (same ``n_devices``).
    cut : int
        Blocks on the device, ``1 .. n_blocks``.
    clients_per_round : int
        Clients per round (>= 1; fewer if fewer devices are reachable and hold samples).
    local_epochs : int
        Passes of each client over its round's samples (>= 1).
    samples_per_client : int
        At most this many of a client's samples per round (a random subset, >= 1).
    batch_size : int
        Mini-batch size (>= 1; an epoch's last batch may be smaller).
    lr : float
        SGD step size of both parts (> 0).
    activation_bits, gradient_bits : int or None
        Quantization of the activations (up) and their gradients (down): 2..16 bits or
        ``None`` for float32.
    seed : int
        Seeds client sampling, sample subsets and batch order (>= 0).

    Attributes
    ----------
    model : BlockModel
        The current full model (device part + server part).
    device_part, server_part : nn.Sequential
        Views of ``model`` (`cut_model`).
    """

    name: ClassVar[str] = "split_learning"

    def _train_round(self, clients: list[int], rng: np.random.Generator) -> list[_ClientWork]:
        return [self._train_client(self.device_part, self.server_part, d, rng) for d in clients]


class SplitFed(_SplitScheme):
    """Federated split learning, SplitFed (Thapa et al., AAAI 2022; see the module doc).

    Every client of a round trains a copy of the global device part; the server averages the
    copies (parameters and batch-norm buffers) weighted by the number of samples each client
    used. ``variant="v1"`` (SFLV1): each client also trains its own copy of the server part,
    averaged the same way. ``variant="v2"`` (SFLV2): one server part is trained on the
    clients' batches sequentially, client after client.

    Parameters
    ----------
    model, data, links, cut, clients_per_round, local_epochs, samples_per_client, batch_size, \
lr, activation_bits, gradient_bits, seed
        As in `SplitLearning`.
    variant : {"v1", "v2"}
        How the server part is trained (default "v1").
    """

    name: ClassVar[str] = "splitfed"

    def __init__(
        self,
        model: BlockModel,
        data: FederatedData,
        links: LinkBudget,
        *,
        cut: int = 1,
        clients_per_round: int = 10,
        local_epochs: int = 1,
        samples_per_client: int = 256,
        batch_size: int = 32,
        lr: float = 0.05,
        activation_bits: int | None = 8,
        gradient_bits: int | None = 8,
        variant: Literal["v1", "v2"] = "v1",
        seed: int = 0,
    ) -> None:
        if variant not in ("v1", "v2"):
            raise ValueError(f"variant must be 'v1' or 'v2', got {variant!r}")
        super().__init__(
            model,
            data,
            links,
            cut=cut,
            clients_per_round=clients_per_round,
            local_epochs=local_epochs,
            samples_per_client=samples_per_client,
            batch_size=batch_size,
            lr=lr,
            activation_bits=activation_bits,
            gradient_bits=gradient_bits,
            seed=seed,
        )
        self.variant = variant

    def _train_round(self, clients: list[int], rng: np.random.Generator) -> list[_ClientWork]:
        work: list[_ClientWork] = []
        device_states: list[dict[str, Tensor]] = []
        server_states: list[dict[str, Tensor]] = []
        for d in clients:
            device_part = copy.deepcopy(self.device_part)
            server_part = (
                copy.deepcopy(self.server_part) if self.variant == "v1" else self.server_part
            )
            work.append(self._train_client(device_part, server_part, d, rng))
            device_states.append(device_part.state_dict())
            if self.variant == "v1":
                server_states.append(server_part.state_dict())
        weights = [w.samples for w in work]
        _load_average(self.device_part, device_states, weights)
        if self.variant == "v1":
            _load_average(self.server_part, server_states, weights)
        return work


def _load_average(module: nn.Module, states: list[dict[str, Tensor]], weights: list[int]) -> None:
    """Load the ``weights``-weighted average of ``states`` (`weighted_average`) into ``module``."""
    stacked = {key: torch.stack([s[key] for s in states]) for key in states[0]}
    module.load_state_dict(weighted_average(stacked, weights), strict=True)
