"""The co-learning contract: data held by devices, the link that carries every byte, round records.

A co-learning scheme (FedAvg, FedProx, federated distillation, split learning, the closed
offload-distil loop) runs rounds between simulated devices and the server. Every round returns a
`RoundRecord`: test accuracy of what the round produced, bytes each way, airtime and the devices'
energy (radio from `LinkBudget`, compute from MACs). Schemes subclass `CoLearning` and implement
`round`; `run` drives the rounds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from tinylarge.data.partition import Partition
from tinylarge.net.mean_rate import MeanRateLink
from tinylarge.net.overhead import ProtocolOverhead

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Training MACs per sample ~ 3x the forward MACs (forward + backward w.r.t. activations and
#: weights), the usual estimate (Kaplan et al., "Scaling Laws for Neural Language Models", 2020,
#: section 2.1: C ~ 6N per token = 3x the 2N forward FLOPs).
TRAINING_MACS_PER_FORWARD_MAC = 3.0


@dataclass(frozen=True, eq=False)
class FederatedData:
    """The task's arrays as the devices hold them.

    Attributes
    ----------
    x_train : ndarray, float32, shape (n_train, *input_shape)
    y_train : ndarray, int64, shape (n_train,)
    x_test, y_test : the held-out set every round is scored on
    partition : Partition
        Which training samples each device holds (device ``d``: ``partition.device(d)``).
    num_classes : int
    """

    x_train: npt.NDArray[np.float32]
    y_train: IntArray
    x_test: npt.NDArray[np.float32]
    y_test: IntArray
    partition: Partition
    num_classes: int

    def __post_init__(self) -> None:
        if (
            self.x_train.shape[0] != self.y_train.shape[0]
            or self.x_test.shape[0] != (self.y_test.shape[0])
        ):
            raise ValueError("x and y of each split must hold the same number of samples")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"train and test inputs differ in shape: {self.x_train.shape[1:]} vs "
                f"{self.x_test.shape[1:]}"
            )
        if self.partition.indices.size and self.partition.indices.max() >= self.y_train.size:
            raise ValueError("the partition refers to samples beyond x_train")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def n_devices(self) -> int:
        return self.partition.n_devices


@dataclass(frozen=True)
class Traffic:
    """What one round's messages cost on the network and on the devices.

    ``airtime_s`` is the cell's time on air with the devices served one after another; energy
    is per device (radio, plus the protocol overhead's crypto if any), J.
    """

    bytes_up: int
    bytes_down: int
    airtime_s: float
    device_energy_j: FloatArray


@dataclass
class SecurityLedger:
    """Running totals of what a `LinkBudget`'s protocol overhead added to its traffic.

    ``overhead_bytes``: headers and tags of all messages; ``handshake_bytes``: both flights of
    every session set-up; ``crypto_energy_j``: the devices' AEAD and public-key work, J;
    ``sessions``: devices that set up a session.
    """

    overhead_bytes: int = 0
    handshake_bytes: int = 0
    crypto_energy_j: float = 0.0
    sessions: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "overhead_bytes": self.overhead_bytes,
            "handshake_bytes": self.handshake_bytes,
            "crypto_energy_j": self.crypto_energy_j,
            "sessions": self.sessions,
        }


@dataclass(frozen=True, eq=False)
class LinkBudget(MeanRateLink):
    """Each device's mean-rate link to the server (`tinylarge.net.mean_rate.MeanRateLink`),
    its compute power and the protocol layer its messages go through.

    Attributes
    ----------
    uplink_bps, downlink_bps, slot_s, tx_draw_w, rx_power_w
        The link, as in `MeanRateLink`: whole-band rates at the mean SNR (bit/s, 0 out of
        range), the slot (s) and the radio's TX draw and RX power (W).
    joules_per_mac : float
        The device MCU's energy per MAC of the int8 tiny model (its measured footprint), J.
    overhead : ProtocolOverhead
        A protocol layer every message goes through (e.g. the security layer's): its header
        and tag on every message, its crypto energy on every byte, and one session set-up the
        first time each device talks (sessions last as long as this budget). Default: none.

    ``ledger`` keeps the running totals of what ``overhead`` added.
    """

    joules_per_mac: float
    overhead: ProtocolOverhead = field(default_factory=ProtocolOverhead)
    ledger: SecurityLedger = field(init=False, repr=False)
    _session_open: npt.NDArray[np.bool_] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.joules_per_mac) and self.joules_per_mac >= 0):
            raise ValueError(f"joules_per_mac must be finite and >= 0, got {self.joules_per_mac}")
        object.__setattr__(self, "ledger", SecurityLedger())
        object.__setattr__(self, "_session_open", np.zeros(self.n_devices, dtype=np.bool_))

    @classmethod
    def over(
        cls,
        link: MeanRateLink,
        *,
        joules_per_mac: float,
        overhead: ProtocolOverhead | None = None,
    ) -> LinkBudget:
        """A budget over ``link`` (e.g. `MeanRateLink.of_cells`), with fresh sessions."""
        return cls(
            link.uplink_bps,
            link.downlink_bps,
            link.slot_s,
            link.tx_draw_w,
            link.rx_power_w,
            joules_per_mac=joules_per_mac,
            overhead=overhead or ProtocolOverhead(),
        )

    def traffic(
        self,
        devices: npt.ArrayLike,
        bytes_up: npt.ArrayLike,
        bytes_down: npt.ArrayLike,
        *,
        messages_up: npt.ArrayLike = 1,
        messages_down: npt.ArrayLike = 1,
    ) -> Traffic:
        """Cost of ``devices`` sending ``bytes_up`` and receiving ``bytes_down`` each.

        ``bytes_up``/``bytes_down`` (payload) broadcast against ``devices``; each device's
        payload travels in ``messages_up``/``messages_down`` messages (broadcast; none when its
        payload is 0), each adding the overhead's header and tag. A device without a session
        first sets one up. Bytes, airtime and energy are what is on air, overhead included.
        Every device must be reachable (select clients from `reachable`); otherwise
        ``ValueError``.
        """
        dev = np.asarray(devices, dtype=np.int64).reshape(-1)
        up_b = np.broadcast_to(np.asarray(bytes_up, dtype=np.float64), dev.shape)
        down_b = np.broadcast_to(np.asarray(bytes_down, dtype=np.float64), dev.shape)
        if dev.size and (dev.min() < 0 or dev.max() >= self.n_devices):
            raise ValueError(f"device ids must lie in [0, {self.n_devices})")
        if not self.reachable[dev].all():
            bad = dev[~self.reachable[dev]][:5].tolist()
            raise ValueError(f"devices {bad} are out of range of the server (link rate 0)")
        ov = self.overhead
        n_up = np.where(up_b > 0, np.broadcast_to(np.asarray(messages_up), dev.shape), 0)
        n_down = np.where(down_b > 0, np.broadcast_to(np.asarray(messages_down), dev.shape), 0)
        if (n_up < 0).any() or (n_down < 0).any():
            raise ValueError("messages_up and messages_down must be >= 0")
        header_b = ov.message_bytes * (n_up + n_down)
        up_b = up_b + ov.message_bytes * n_up
        down_b = down_b + ov.message_bytes * n_down
        crypto = (up_b + down_b) * ov.device_j_per_byte
        if ov.enabled:  # first contact: set up a session (its flights travel with the payload)
            new = np.zeros(dev.shape, dtype=np.bool_)
            _, first = np.unique(dev, return_index=True)
            new[first] = ~self._session_open[dev[first]]
            self._session_open[dev[new]] = True
            up_b = up_b + new * ov.session_up_bytes
            down_b = down_b + new * ov.session_down_bytes
            crypto = crypto + new * ov.session_device_j
            sessions = int(new.sum())
            self.ledger.sessions += sessions
            self.ledger.handshake_bytes += sessions * (ov.session_up_bytes + ov.session_down_bytes)
            self.ledger.overhead_bytes += int(header_b.sum())
            self.ledger.crypto_energy_j += float(crypto.sum())
        up_air, up_j = self.send(up_b, dev)
        down_air, down_j = self.receive(down_b, dev)
        energy = up_j + down_j + crypto
        return Traffic(
            bytes_up=round(float(up_b.sum())),
            bytes_down=round(float(down_b.sum())),
            airtime_s=float(up_air.sum() + down_air.sum()),
            device_energy_j=np.asarray(energy, dtype=np.float64),
        )

    def training_energy_j(
        self, forward_macs_per_sample: float, samples: npt.ArrayLike
    ) -> FloatArray:
        """Device compute energy of training on ``samples`` samples (forward + backward), J.

        An estimate: `TRAINING_MACS_PER_FORWARD_MAC` x forward MACs at the int8 inference
        energy per MAC (float training on an MCU costs more; this is a lower bound).
        """
        n = np.asarray(samples, dtype=np.float64)
        return np.asarray(
            TRAINING_MACS_PER_FORWARD_MAC * forward_macs_per_sample * n * self.joules_per_mac
        )

    def inference_energy_j(
        self, forward_macs_per_sample: float, samples: npt.ArrayLike
    ) -> FloatArray:
        """Device compute energy of forward passes only (e.g. computing features), J."""
        n = np.asarray(samples, dtype=np.float64)
        return np.asarray(forward_macs_per_sample * n * self.joules_per_mac)


@dataclass(frozen=True, eq=False)
class SecureSumResult:
    """What a secure sum gives the server, and what it cost each client of the round.

    Attributes
    ----------
    total : ndarray of float64, shape (dim,)
        The sum of the vectors of the clients in ``included`` (decoded; within the encoding's
        precision of the exact sum).
    included : ndarray of bool, shape (clients,)
        Clients whose vectors are in ``total`` (the others dropped out mid-round).
    bytes_up, bytes_down : ndarray of int64, shape (clients,)
        Payload bytes each client sent / received for the protocol (its masked vector
        included, the model download not).
    messages_up, messages_down : ndarray of int64, shape (clients,)
        How many messages carried them.
    device_energy_j : ndarray of float64, shape (clients,)
        Each client's compute energy for the protocol (key agreements, masks, encryption), J.
    error_bound : float
        Largest possible difference between ``total`` and the exact sum, per element, for
        vectors inside the encoding's range.
    """

    total: FloatArray
    included: BoolArray
    bytes_up: IntArray
    bytes_down: IntArray
    messages_up: IntArray
    messages_down: IntArray
    device_energy_j: FloatArray
    error_bound: float


class SecureSum(Protocol):
    """A secure aggregation protocol: the server learns only the sum of the clients' vectors
    (implementation: `tinylarge.secure.secagg.SecAggPlus`).

    It must raise (and change nothing) when it cannot finish a round, e.g. when too many
    clients dropped out to remove their masks.
    """

    name: str

    def secure_sum(self, vectors: FloatArray, rng: np.random.Generator) -> SecureSumResult:
        """Sum ``vectors`` (clients, dim), one row per client of the round; ``rng`` draws the
        round's protocol choices (communication graph, which clients drop out)."""
        ...


@dataclass(frozen=True)
class RoundRecord:
    """One round of a co-learning scheme.

    Attributes
    ----------
    round : int
        1-based round number.
    accuracy : float
        Test accuracy after the round (of the model the scheme produces for devices, or of the
        system for the closed loop), in [0, 1].
    bytes_up, bytes_down : int
        Bytes all devices sent / received this round (payloads as counted by the scheme).
    airtime_s : float
        Cell airtime of the round's messages, s.
    device_energy_j : float
        Energy all participating devices spent this round (radio + compute), J.
    clients : int
        Devices that took part.
    extra : dict of str -> float
        Scheme-specific per-round figures (e.g. ``offload_fraction``).
    """

    round: int
    accuracy: float
    bytes_up: int
    bytes_down: int
    airtime_s: float
    device_energy_j: float
    clients: int
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "round": self.round,
            "accuracy": self.accuracy,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "airtime_s": self.airtime_s,
            "device_energy_j": self.device_energy_j,
            "clients": self.clients,
            **self.extra,
        }


RoundCallback = Callable[[RoundRecord], None]


class CoLearning(ABC):
    """A co-learning scheme: rounds between devices and the server.

    Subclasses set ``name`` and implement `round`; constructors only store and validate their
    arguments (scikit-learn style), state lives in attributes the rounds update.
    """

    name: ClassVar[str]

    @abstractmethod
    def round(self, number: int) -> RoundRecord:
        """Run round ``number`` (1-based) and return its record."""

    def run(self, rounds: int, progress: RoundCallback | None = None) -> list[RoundRecord]:
        """Run ``rounds`` rounds; ``progress`` is called with each record as it finishes."""
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
        records = []
        for number in range(1, rounds + 1):
            record = self.round(number)
            records.append(record)
            if progress is not None:
                progress(record)
        return records


def accuracy(logits: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Fraction of rows of ``logits`` whose argmax equals ``y``."""
    z, labels = np.asarray(logits), np.asarray(y)
    return float((z.argmax(axis=1) == labels).mean()) if labels.size else 0.0
