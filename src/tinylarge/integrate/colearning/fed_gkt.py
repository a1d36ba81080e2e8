"""Federated distillation between heterogeneous tiny clients and a large server (FedGKT-style).

Group knowledge transfer (He, Annavaram & Avestimehr, "Group Knowledge Transfer: Federated
Learning of Large CNNs at the Edge", NeurIPS 2020), adapted to tinylarge. A round:

1. ``clients_per_round`` devices are sampled (seeded, without replacement) among the devices
   that are reachable and hold >= 2 training samples (batch norm needs two values per channel).
2. Each trains its *own* `tiny_cnn` (of its width; widths are dealt round-robin: device ``d``
   gets ``client_widths[d % len(client_widths)]``) for ``local_epochs`` on a fixed subset of up
   to ``samples_per_client`` of its samples (drawn once per device, seeded) with
   ``CE(labels) + beta x KD(server soft targets)``; the KD term is used once the server has sent
   soft targets to that device (never in its first round). Optimizer: Adam, created afresh every
   round (a device keeps its weights between rounds, not optimizer moments).
3. In evaluation mode the device computes, for those samples, the features (output of its first
   ``feature_blocks`` blocks) and its logits, and uploads per sample: the features quantized by
   `tinylarge.integrate.inference.split_computing.quantize_activation` (``ceil(elements x bits /
   8)`` bytes +
   `QUANT_HEADER_BYTES`; float32 without header when ``feature_bits`` is None), the logits as
   float16 (2 bytes x classes) and the label (1 byte, hence at most 256 classes).
4. The server model `GKTServer` (a 1x1-conv adapter per client width onto ``server_width``
   channels, a shared conv trunk and a head) trains with Adam (its moments persist across rounds)
   for ``server_epochs`` on all received features with ``CE + beta x KD(client logits)``, then
   sends its logits for those samples down as float16 (2 bytes x classes per sample).

There is no weight averaging: the device models persist and are stored only for devices that
have taken part. ``KD = T^2 x KL(softmax(teacher / T) || softmax(student / T))`` (batch mean),
the convention of `tinylarge.tiny.distill` (the ``T^2`` keeps gradients on the scale of CE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

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
from tinylarge.integrate.inference.split_computing import (
    MAX_BITS,
    MIN_BITS,
    QUANT_HEADER_BYTES,
    activation_shapes,
    module_macs,
    quantize_activation,
)
from tinylarge.models.blocks import BlockModel, classifier_head, conv_bn_relu, conv_dims
from tinylarge.models.tiny_cnn import tiny_cnn
from tinylarge.validation import check_int

#: Bytes per logit on air (float16), per label (uint8).
LOGIT_BYTES, LABEL_BYTES = 2, 1
_TINY_BLOCKS = 3  # blocks of `tiny_cnn`
_EVAL_BATCH = 1024  # samples per no-gradient forward pass


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 x KL(softmax(teacher / T) || softmax(student / T))``, mean over the batch.

    Both inputs have shape (batch, num_classes); the teacher is treated as a constant.
    """
    log_p_teacher = torch.log_softmax(teacher_logits.detach().float() / temperature, dim=1)
    log_p_student = torch.log_softmax(student_logits / temperature, dim=1)
    kl = nn.functional.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return temperature**2 * kl


def feature_bytes(elements: int, bits: int | None) -> int:
    """Bytes on air of one sample's features of ``elements`` values (float32 if ``bits`` None)."""
    if bits is None:
        return 4 * elements
    return math.ceil(elements * bits / 8) + QUANT_HEADER_BYTES


def upload_bytes_per_sample(elements: int, num_classes: int, bits: int | None) -> int:
    """Uplink bytes per sample: features + float16 logits + uint8 label."""
    return feature_bytes(elements, bits) + LOGIT_BYTES * num_classes + LABEL_BYTES


def download_bytes_per_sample(num_classes: int) -> int:
    """Downlink bytes per sample: the server's float16 logits (soft targets)."""
    return LOGIT_BYTES * num_classes


class GKTServer(nn.Module):
    """The large server model: per-width adapters, a shared trunk and a classifier head.

    Parameters
    ----------
    feature_shapes : dict of int -> tuple of int
        Client width -> shape ``(channels, *spatial)`` of that width's features.
    num_classes : int
    server_width : int
        Channels of the adapters' output and the first trunk block (later blocks: ``2x``).
    server_blocks : int
        Trunk blocks, each conv(k=3)-BN-ReLU, followed by a 2x max-pool while the smallest
        spatial size is >= 2.
    """

    def __init__(
        self,
        feature_shapes: dict[int, tuple[int, ...]],
        num_classes: int,
        server_width: int,
        server_blocks: int,
    ) -> None:
        super().__init__()
        shape = next(iter(feature_shapes.values()))
        dims = len(shape) - 1
        self.adapters = nn.ModuleDict(
            {
                str(w): conv_bn_relu(dims, s[0], server_width, 1, pool=False)
                for w, s in feature_shapes.items()
            }
        )
        layers: list[nn.Module] = []
        size, c_in = min(shape[1:]), server_width
        for i in range(server_blocks):
            c_out = server_width if i == 0 else 2 * server_width
            layers += conv_bn_relu(dims, c_in, c_out, 3, pool=size >= 2)
            size = size // 2 if size >= 2 else size
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.head = classifier_head(dims, c_in, num_classes)

    def forward(self, h: Tensor, width: int) -> Tensor:
        """Logits (batch, num_classes) from features ``h`` (batch, *feature_shape) of ``width``."""
        out: Tensor = self.head(self.trunk(self.adapters[str(width)](h)))
        return out


@dataclass(frozen=True)
class Upload:
    """What one client sent in a round (as the server received it).

    Attributes
    ----------
    indices : ndarray of int64, shape (n,)
        Training-sample indices (into ``data.x_train``).
    features : Tensor, float32, shape (n, *feature_shape)
        Dequantized features.
    logits : Tensor, float16, shape (n, num_classes)
    labels : Tensor, int64, shape (n,)
    width : int
        The client's tiny-model width.
    """

    indices: npt.NDArray[np.int64]
    features: Tensor
    logits: Tensor
    labels: Tensor
    width: int


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    """A shuffled split of ``range(n)`` into batches; a last batch of one joins the previous."""
    order = rng.permutation(n).astype(np.int64)
    chunks = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(chunks) > 1 and chunks[-1].size == 1:
        chunks[-2:] = [np.concatenate(chunks[-2:])]
    return chunks


def _torch_seed(*key: int) -> int:
    return int(np.random.default_rng(list(key)).integers(2**62))


def _tiny(input_shape: tuple[int, ...], num_classes: int, width: int) -> BlockModel:
    model = tiny_cnn(input_shape, num_classes, width=width)
    if not isinstance(model, BlockModel):  # registered builders are typed as nn.Module
        raise TypeError(f"tiny_cnn returned {type(model).__name__}, expected a BlockModel")
    return model


def _check_float(name: str, value: object, *, positive: bool) -> float:
    real = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    number = float(value) if real else -1.0  # type: ignore[arg-type]
    if not (math.isfinite(number) and (number > 0 if positive else number >= 0)):
        raise ValueError(
            f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}"
        )
    return number


class FedGKT(CoLearning):
    """FedGKT between heterogeneous tiny clients and a large server model (see module doc).

    Parameters
    ----------
    data : FederatedData
    links : LinkBudget
        One entry per device of ``data``.
    client_widths : sequence of int
        Tiny-model widths (>= 1), dealt to devices round-robin (``d % len``).
    feature_blocks : int
        Client blocks whose output is uploaded, 1..3.
    server_width, server_blocks : int
        Size of the server trunk (`GKTServer`).
    clients_per_round, local_epochs, samples_per_client, batch_size, server_epochs : int
        All >= 1.
    lr : float
        Adam step size of clients and server (> 0).
    temperature : float
        KD temperature ``T`` (> 0).
    beta : float
        KD weight on clients and server (>= 0; 0: labels only).
    feature_bits : int or None
        Feature quantization bits, 2..16; None sends float32.
    seed : int
        Seeds everything (>= 0): client sampling, subsets, batch order, initial weights.

    Attributes
    ----------
    server : GKTServer
    last_uploads : dict of int -> Upload
        What each client of the latest round uploaded.
    """

    name: ClassVar[str] = "fedgkt"

    def __init__(
        self,
        data: FederatedData,
        links: LinkBudget,
        *,
        client_widths: Sequence[int] = (4, 5, 6),
        feature_blocks: int = 2,
        server_width: int = 32,
        server_blocks: int = 2,
        clients_per_round: int = 10,
        local_epochs: int = 1,
        samples_per_client: int = 256,
        batch_size: int = 32,
        lr: float = 0.01,
        server_epochs: int = 1,
        temperature: float = 3.0,
        beta: float = 1.0,
        feature_bits: int | None = 8,
        seed: int = 0,
    ) -> None:
        if isinstance(client_widths, str) or not isinstance(client_widths, Sequence):
            raise ValueError(
                f"client_widths must be a sequence of integers >= 1, got {client_widths!r}"
            )
        if len(client_widths) == 0:
            raise ValueError("client_widths must hold at least one width, got an empty sequence")
        self.client_widths = tuple(check_int("client_widths", w, 1) for w in client_widths)
        self.feature_blocks = check_int("feature_blocks", feature_blocks, 1, _TINY_BLOCKS)
        self.server_width = check_int("server_width", server_width, 1)
        self.server_blocks = check_int("server_blocks", server_blocks, 1)
        self.clients_per_round = check_int("clients_per_round", clients_per_round, 1)
        self.local_epochs = check_int("local_epochs", local_epochs, 1)
        self.samples_per_client = check_int("samples_per_client", samples_per_client, 2)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.server_epochs = check_int("server_epochs", server_epochs, 1)
        self.lr = _check_float("lr", lr, positive=True)
        self.temperature = _check_float("temperature", temperature, positive=True)
        self.beta = _check_float("beta", beta, positive=False)
        self.feature_bits = (
            None
            if feature_bits is None
            else check_int("feature_bits", feature_bits, MIN_BITS, MAX_BITS)
        )
        self.seed = check_int("seed", seed, 0)
        if links.n_devices != data.n_devices:
            raise ValueError(f"links has {links.n_devices} devices but data has {data.n_devices}")
        if not 2 <= data.num_classes <= 256:
            raise ValueError(
                f"num_classes must be in 2..256 (1-byte labels), got {data.num_classes}"
            )
        conv_dims(data.input_shape)
        self.eligible = np.flatnonzero(links.reachable & (data.partition.sizes >= 2))
        if self.eligible.size == 0:
            raise CannotFitError("no device is reachable and holds >= 2 training samples")
        self.data, self.links = data, links
        self._x_train = torch.from_numpy(np.ascontiguousarray(data.x_train, dtype=np.float32))
        self._y_train = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64))
        self._x_test = torch.from_numpy(np.ascontiguousarray(data.x_test, dtype=np.float32))
        self.feature_shapes: dict[int, tuple[int, ...]] = {}
        self.macs: dict[int, int] = {}  # forward MACs per sample of each width's tiny model
        for w in sorted(set(self.client_widths)):
            probe = _tiny(data.input_shape, data.num_classes, w)
            self.feature_shapes[w] = activation_shapes(probe, data.input_shape)[feature_blocks]
            self.macs[w] = module_macs(probe, data.input_shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_torch_seed(self.seed, 3))
            self.server = GKTServer(
                self.feature_shapes, data.num_classes, self.server_width, self.server_blocks
            )
        self._server_opt = torch.optim.Adam(self.server.parameters(), lr=self.lr)
        self._models: dict[int, BlockModel] = {}
        self._subsets: dict[int, npt.NDArray[np.int64]] = {}
        self._soft: dict[int, Tensor] = {}  # device -> float16 server logits for its subset
        self._accuracy: dict[int, float] = {}  # device -> test accuracy after its last round
        self._latest: dict[int, int] = {}  # width -> device that trained most recently
        self.last_uploads: dict[int, Upload] = {}

    def width(self, device: int) -> int:
        """Tiny-model width of ``device`` (round-robin over ``client_widths``)."""
        return self.client_widths[device % len(self.client_widths)]

    def device_model(self, device: int) -> BlockModel:
        """The device's own tiny model (built, seeded, on first use)."""
        if device not in self._models:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_torch_seed(self.seed, 2, device))
                self._models[device] = _tiny(
                    self.data.input_shape, self.data.num_classes, self.width(device)
                )
        return self._models[device]

    def subset(self, device: int) -> npt.NDArray[np.int64]:
        """Training-sample indices ``device`` uses every round (fixed, seeded), sorted."""
        if device not in self._subsets:
            own = self.data.partition.device(device)
            rng = np.random.default_rng([self.seed, 4, device])
            size = min(own.size, self.samples_per_client)
            self._subsets[device] = np.sort(rng.choice(own, size=size, replace=False))
        return self._subsets[device]

    def _train_client(self, device: int, rng: np.random.Generator) -> bool:
        model, idx = self.device_model(device), torch.from_numpy(self.subset(device))
        x, y, soft = self._x_train[idx], self._y_train[idx], self._soft.get(device)
        use_kd = soft is not None and self.beta > 0
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        for _ in range(self.local_epochs):
            for b in _batches(len(y), self.batch_size, rng):
                logits = model(x[b])
                loss = nn.functional.cross_entropy(logits, y[b])
                if use_kd and soft is not None:
                    loss = loss + self.beta * kd_loss(logits, soft[b], self.temperature)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
        return use_kd

    def _features(self, model: BlockModel, x: Tensor) -> tuple[Tensor, Tensor]:
        """(features as sent, float16 logits) of ``model`` in eval mode, no gradients."""
        model.eval()
        hs, zs = [], []
        with torch.no_grad():
            for xb in torch.split(x, _EVAL_BATCH):
                h = model.forward_until(xb, self.feature_blocks)
                zs.append(model.forward_from(h, self.feature_blocks).half())
                bits = self.feature_bits
                hs.append(h if bits is None else quantize_activation(h, bits))
        return torch.cat(hs), torch.cat(zs)

    def _train_server(self, uploads: list[Upload], rng: np.random.Generator) -> None:
        self.server.train()
        for _ in range(self.server_epochs):
            steps = [(u, b) for u in uploads for b in _batches(len(u.labels), self.batch_size, rng)]
            for i in rng.permutation(len(steps)):
                u, b = steps[i]
                out = self.server(u.features[b], u.width)
                loss = nn.functional.cross_entropy(out, u.labels[b])
                if self.beta > 0:
                    loss = loss + self.beta * kd_loss(out, u.logits[b], self.temperature)
                self._server_opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                self._server_opt.step()

    def _server_logits(self, h: Tensor, width: int) -> Tensor:
        self.server.eval()
        with torch.no_grad():
            return torch.cat([self.server(hb, width) for hb in torch.split(h, _EVAL_BATCH)])

    def round(self, number: int) -> RoundRecord:
        """Run round ``number`` (1-based): local training, upload, server training, download.

        ``accuracy`` is the mean test accuracy of every device model trained so far (each as of
        its latest round), weighted by the samples it trains on. ``extra``: ``server_accuracy``
        (see `server_accuracy`), ``kd_clients`` (clients that used the KD term) and
        ``compute_energy_j`` (training + upload forward pass, all clients, J; included in
        ``device_energy_j`` with the radio energy of `LinkBudget.traffic`).
        """
        number = check_int("number", number, 1)
        rng = np.random.default_rng([self.seed, number])
        k = min(self.clients_per_round, self.eligible.size)
        clients = np.sort(rng.choice(self.eligible, size=k, replace=False)).astype(np.int64)
        uploads: list[Upload] = []
        kd_clients = 0
        for d in clients.tolist():
            kd_clients += self._train_client(d, np.random.default_rng([self.seed, number, 0, d]))
            idx = self.subset(d)
            h, logits = self._features(self.device_model(d), self._x_train[torch.from_numpy(idx)])
            labels = self._y_train[torch.from_numpy(idx)]
            uploads.append(Upload(idx, h, logits, labels, self.width(d)))
        self._train_server(uploads, np.random.default_rng([self.seed, number, 1]))
        for d, u in zip(clients.tolist(), uploads, strict=True):
            self._soft[d] = self._server_logits(u.features, u.width).half()
            _, test_logits = self._features(self.device_model(d), self._x_test)
            self._accuracy[d] = accuracy(test_logits.float().numpy(), self.data.y_test)
            self._latest[u.width] = d
        self.last_uploads = dict(zip(clients.tolist(), uploads, strict=True))

        n = np.array([u.labels.numel() for u in uploads], dtype=np.float64)
        classes = self.data.num_classes
        up = [
            n_i
            * upload_bytes_per_sample(math.prod(u.features.shape[1:]), classes, self.feature_bits)
            for n_i, u in zip(n, uploads, strict=True)
        ]
        traffic = self.links.traffic(clients, up, n * download_bytes_per_sample(classes))
        macs = np.array([self.macs[u.width] for u in uploads], dtype=np.float64)
        compute_j = self.links.training_energy_j(1.0, macs * n * self.local_epochs)
        compute_j = compute_j + self.links.inference_energy_j(1.0, macs * n)  # upload pass
        trained = sorted(self._accuracy)
        weights = np.array([self.subset(d).size for d in trained], dtype=np.float64)
        accs = np.array([self._accuracy[d] for d in trained])
        return RoundRecord(
            round=number,
            accuracy=float((weights * accs).sum() / weights.sum()),
            bytes_up=traffic.bytes_up,
            bytes_down=traffic.bytes_down,
            airtime_s=traffic.airtime_s,
            device_energy_j=float(traffic.device_energy_j.sum() + compute_j.sum()),
            clients=int(clients.size),
            extra={
                "server_accuracy": self.server_accuracy(),
                "kd_clients": float(kd_clients),
                "compute_energy_j": float(compute_j.sum()),
            },
        )

    def server_accuracy(self) -> float:
        """Mean over widths of the server's test accuracy on features (as sent) of the most
        recently trained client of that width; NaN before the first round."""
        scores = []
        for width, d in sorted(self._latest.items()):
            h, _ = self._features(self.device_model(d), self._x_test)
            scores.append(accuracy(self._server_logits(h, width).numpy(), self.data.y_test))
        return float(np.mean(scores)) if scores else math.nan
