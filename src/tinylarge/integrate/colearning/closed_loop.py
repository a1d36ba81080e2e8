"""The closed loop: offload -> label -> distil -> push, and offloading falls over time.

Devices run a cascade with the int8 tiny model: a frame whose max-softmax confidence is below
the threshold goes up (``frame_bytes`` on the uplink, a ``reply_bytes`` answer down) and the
large model answers it. The server keeps every offloaded frame with the large model's logits as
its label. Every ``update_every`` rounds it distils a new tiny model (warm-started from the one
in service) on its own labelled data plus everything gathered, quantizes it to int8, picks the
new threshold, and pushes model + threshold to every reachable device (counted on the downlink,
one unicast per device).

The threshold rule keeps accuracy and cuts offloading: on its held-out validation frames the
server first measures the day-0 cascade (day-0 model, threshold at ``target_offload``); each new
model gets the threshold with the *smallest* offload whose system accuracy on those frames is
at least the day-0 cascade's (`threshold_for_accuracy`). So a better tiny model shows up as
less offloading at the same accuracy.

Round ``r`` runs with the model installed at its start: round 1 is the day-0 cascade. The
record's ``accuracy`` and extra ``offload_fraction`` are the system's on the test set (large
model's answers without network losses); ``stream_*`` figures are over the frames the devices
saw that round. Devices draw their frames with replacement from their own training samples
(those not in the server's own set).

With an ``update_channel`` (e.g. `tinylarge.secure.updates.SignedUpdates`), each push is the
channel's package of model + threshold (a signed bundle): its bytes go on the downlink, a
device checks it before installing (`UpdateChannel.install`, run once per push on the real
bytes) and every reachable device pays the check's energy.
"""

from __future__ import annotations

import copy
import struct
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt
from torch import nn

from tinylarge.config.training_config import TrainingSpec
from tinylarge.data.partition import Partition
from tinylarge.errors import CannotFitError
from tinylarge.integrate.colearning.contract import (
    CoLearning,
    FederatedData,
    LinkBudget,
    RoundRecord,
)
from tinylarge.integrate.colearning.model_update import next_tiny_model
from tinylarge.integrate.inference.confidence import (
    cascade_outcome,
    max_softmax,
    threshold_for_accuracy,
    threshold_for_offload_fraction,
)
from tinylarge.models.evaluation import predict_logits
from tinylarge.tiny import runtime
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.model_file import to_bytes
from tinylarge.tiny.quantize import quantize_model
from tinylarge.validation import check_int

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Bytes of the threshold shipped with a model update (float32).
THRESHOLD_BYTES = 4


class UpdateChannel(Protocol):
    """How the server packages a model update and how a device checks it before installing."""

    def package(self, update: bytes, version: int) -> bytes:
        """What the server sends for ``update`` as ``version`` (>= 1)."""
        ...

    def install(self, package: bytes, installed_version: int) -> bytes:
        """The update a device with ``installed_version`` installs, or an exception (the
        device then keeps its model)."""
        ...

    def install_energy_j(self, update_bytes: int) -> float:
        """A device's energy to check a package of an ``update_bytes`` update, J."""
        ...


def reaches_accuracy(
    confidence: npt.ArrayLike,
    tiny_correct: npt.ArrayLike,
    large_correct: npt.ArrayLike,
    threshold: float,
    target_accuracy: float,
) -> bool:
    """Whether the cascade at ``threshold`` reaches ``target_accuracy`` on the given frames."""
    _, accuracy = cascade_outcome(confidence, threshold, tiny_correct, large_correct)
    return accuracy >= target_accuracy - 1e-12


def exclude_samples(partition: Partition, excluded: IntArray) -> Partition:
    """The partition without the samples in ``excluded`` (devices keep their order)."""
    drop = np.zeros(int(partition.indices.max(initial=-1)) + 1, dtype=bool)
    drop[excluded[excluded < drop.size]] = True
    keep = ~drop[partition.indices]
    device_of = np.repeat(np.arange(partition.n_devices), partition.sizes)
    counts = np.bincount(device_of[keep], minlength=partition.n_devices)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Partition(indices=partition.indices[keep].astype(np.int64), offsets=offsets)


class ClosedLoop(CoLearning):
    """The offload -> label -> distil -> push loop (see the module doc).

    Parameters
    ----------
    tiny : nn.Module
        The day-0 float tiny model (copied; distilled updates warm-start from it).
    large : nn.Module
        The edge model that answers offloads and labels them.
    data : FederatedData
    links : LinkBudget
    server_indices : array_like of int
        Training samples the server holds with labels (its own data); devices never stream them.
        The last ``validation_fraction`` of them choose thresholds and are not trained on.
    class_names : tuple of str
    distil_spec : TrainingSpec
        Training of each update (epochs, batch size, learning rate...).
    frames_per_device : int
        Frames each reachable device classifies per round.
    update_every : int
        Rounds between model pushes.
    target_offload : float
        The day-0 cascade's offload fraction.
    temperature, alpha : float
        Distillation temperature and soft-target weight (`tinylarge.tiny.distill`).
    frame_bytes, reply_bytes : int
        Bytes of an offloaded frame and of the edge's answer.
    forward_macs : int
        The tiny model's MACs per frame (device inference energy).
    calibration_samples : int
        Server frames used to calibrate each int8 quantization.
    update_channel : UpdateChannel, optional
        Packages each push (e.g. signed bundles) and checks it on the device; None: the raw
        model + threshold.
    seed : int
    """

    name: ClassVar[str] = "closed_loop"

    def __init__(
        self,
        tiny: nn.Module,
        large: nn.Module,
        data: FederatedData,
        links: LinkBudget,
        *,
        server_indices: npt.ArrayLike,
        class_names: tuple[str, ...],
        distil_spec: TrainingSpec,
        forward_macs: int,
        frames_per_device: int = 20,
        update_every: int = 2,
        target_offload: float = 0.4,
        temperature: float = 4.0,
        alpha: float = 0.7,
        frame_bytes: int = 256,
        reply_bytes: int = 8,
        validation_fraction: float = 0.2,
        calibration_samples: int = 1000,
        update_channel: UpdateChannel | None = None,
        seed: int = 0,
    ) -> None:
        server = np.unique(np.asarray(server_indices, dtype=np.int64))
        if server.size < 10 or server.min() < 0 or server.max() >= data.y_train.size:
            raise ValueError(
                f"server_indices must hold >= 10 training-sample indices in [0, "
                f"{data.y_train.size}), got {server.size} in range "
                f"[{server.min(initial=0)}, {server.max(initial=0)}]"
            )
        for name, value in (
            ("frames_per_device", frames_per_device),
            ("update_every", update_every),
            ("frame_bytes", frame_bytes),
            ("calibration_samples", calibration_samples),
            ("forward_macs", forward_macs),
        ):
            check_int(name, value, 1)
        if not 0.0 <= target_offload <= 1.0 or not 0.0 < validation_fraction < 1.0:
            raise ValueError(
                f"target_offload must lie in [0, 1] and validation_fraction in (0, 1), got "
                f"{target_offload} and {validation_fraction}"
            )
        if reply_bytes < 0:
            raise ValueError(f"reply_bytes must be >= 0, got {reply_bytes}")
        self.tiny_float = copy.deepcopy(tiny)
        self.large, self.data, self.links = large, data, links
        rng = np.random.default_rng(seed)
        server = rng.permutation(server)
        n_val = max(1, round(validation_fraction * server.size))
        self.server_train, self.server_val = server[:-n_val], server[-n_val:]
        self.stream = exclude_samples(data.partition, server)
        self.class_names, self.spec = class_names, distil_spec
        self.frames_per_device, self.update_every = frames_per_device, update_every
        self.target_offload, self.temperature, self.alpha = target_offload, temperature, alpha
        self.frame_bytes, self.reply_bytes = frame_bytes, reply_bytes
        self.forward_macs, self.calibration_samples = forward_macs, calibration_samples
        self.seed, self.rng = seed, rng
        self.update_channel = update_channel
        self.version = 0
        #: Rounds whose pushed model reached the day-0 accuracy at no threshold (it then takes
        #: the most accurate one).
        self.accuracy_target_missed_rounds: list[int] = []
        self._started = False
        self._test_logits: tuple[int, np.ndarray] = (-1, np.zeros((0, data.num_classes)))

    # -- the server's side -------------------------------------------------------------------
    def _start(self) -> None:
        if not np.any(self.links.reachable & (self.stream.sizes > 0)):
            raise CannotFitError(
                "no device both streams frames and can reach the server (link rate > 0)"
            )
        x = self.data.x_train
        self.large_train_logits = predict_logits(self.large, x[self.server_train])
        self.large_val_correct = (
            predict_logits(self.large, x[self.server_val]).argmax(1)
            == self.data.y_train[self.server_val]
        )
        self.large_test_correct = (
            predict_logits(self.large, self.data.x_test).argmax(1) == self.data.y_test
        )
        self.gathered_idx = np.zeros(0, dtype=np.int64)
        self.gathered_logits = np.zeros((0, self.data.num_classes), dtype=np.float32)
        self.int8 = quantize_model(self.tiny_float, self._calibration(), self.class_names)
        conf, tiny_ok = self._confidence(self.int8, self.server_val)
        self.threshold = threshold_for_offload_fraction(conf, self.target_offload)
        _, self.target_accuracy = cascade_outcome(
            conf, self.threshold, tiny_ok, self.large_val_correct
        )
        self._started = True

    def _calibration(self) -> np.ndarray:
        """Server frames that calibrate each int8 quantization."""
        return self.data.x_train[self.server_train[: self.calibration_samples]]

    def _int8_logits(self, model: TinyModel, x: np.ndarray) -> np.ndarray:
        out = runtime.run(model, model.quantize_input(x), arithmetic="tflm")
        return model.dequantize_output(out).reshape(len(x), -1)

    def _confidence(self, model: TinyModel, idx: IntArray) -> tuple[FloatArray, BoolArray]:
        logits = self._int8_logits(model, self.data.x_train[idx])
        return max_softmax(logits), logits.argmax(1) == self.data.y_train[idx]

    def _update(self, number: int) -> tuple[int, float]:
        """Distil, quantize and choose the threshold of the next model; the bytes each device
        receives and the energy each spends checking them (J)."""
        idx = np.concatenate([self.server_train, self.gathered_idx])
        teacher = np.concatenate([self.large_train_logits, self.gathered_logits])
        labels = np.concatenate(
            [self.data.y_train[self.server_train], self.gathered_logits.argmax(1)]
        ).astype(np.int64)  # gathered frames carry the large model's label, not the truth
        self.tiny_float, self.int8 = next_tiny_model(
            self.tiny_float,
            self.data.x_train[idx],
            labels,
            teacher,
            self.spec,
            temperature=self.temperature,
            alpha=self.alpha,
            seed=self.seed + number,
            calibration_x=self._calibration(),
            class_names=self.class_names,
        )
        conf, tiny_ok = self._confidence(self.int8, self.server_val)
        self.threshold = threshold_for_accuracy(
            conf, tiny_ok, self.large_val_correct, self.target_accuracy
        )
        if not reaches_accuracy(
            conf, tiny_ok, self.large_val_correct, self.threshold, self.target_accuracy
        ):
            self.accuracy_target_missed_rounds.append(number)
        self.version += 1
        update = to_bytes(self.int8) + struct.pack("<f", self.threshold)
        if self.update_channel is None:
            return len(update), 0.0
        package = self.update_channel.package(update, self.version)
        if self.update_channel.install(package, self.version - 1) != update:
            raise RuntimeError("the update channel delivered different bytes than were sent")
        return len(package), self.update_channel.install_energy_j(len(update))

    # -- one round -----------------------------------------------------------------------------
    def round(self, number: int) -> RoundRecord:
        if not self._started:
            self._start()
        devices = np.flatnonzero(self.links.reachable & (self.stream.sizes > 0)).astype(np.int64)
        device_of = np.repeat(devices, self.frames_per_device)
        pick = self.rng.random(device_of.size) * self.stream.sizes[device_of]
        frames = self.stream.indices[self.stream.offsets[device_of] + pick.astype(np.int64)]
        conf, tiny_ok = self._confidence(self.int8, frames)
        offload = conf < self.threshold
        off_idx = frames[offload]
        large_logits = (
            predict_logits(self.large, self.data.x_train[off_idx])
            if off_idx.size
            else np.zeros((0, self.data.num_classes), dtype=np.float32)
        )
        self.gathered_idx = np.concatenate([self.gathered_idx, off_idx])
        self.gathered_logits = np.concatenate([self.gathered_logits, large_logits])
        large_ok = large_logits.argmax(1) == self.data.y_train[off_idx]
        stream_correct = tiny_ok.copy()
        stream_correct[offload] = large_ok

        if self._test_logits[0] != self.version:  # the model in service changed
            self._test_logits = (self.version, self._int8_logits(self.int8, self.data.x_test))
        test_logits = self._test_logits[1]
        test_offload = max_softmax(test_logits) < self.threshold
        test_correct = np.where(
            test_offload, self.large_test_correct, test_logits.argmax(1) == self.data.y_test
        )
        threshold_used, version_used = self.threshold, self.version

        offloads = self.links.traffic(device_of[offload], self.frame_bytes, self.reply_bytes)
        energy = float(offloads.device_energy_j.sum())
        energy += float(self.links.inference_energy_j(self.forward_macs, frames.size))
        bytes_up, bytes_down, airtime = offloads.bytes_up, offloads.bytes_down, offloads.airtime_s
        update_bytes = 0
        if number % self.update_every == 0:
            update_bytes, check_j = self._update(number)
            push = self.links.traffic(devices, 0, update_bytes)
            bytes_down += push.bytes_down
            airtime += push.airtime_s
            energy += float(push.device_energy_j.sum()) + check_j * devices.size
        return RoundRecord(
            round=number,
            accuracy=float(test_correct.mean()),
            bytes_up=bytes_up,
            bytes_down=bytes_down,
            airtime_s=airtime,
            device_energy_j=energy,
            clients=int(devices.size),
            extra={
                "offload_fraction": float(test_offload.mean()),
                "stream_accuracy": float(stream_correct.mean()),
                "stream_offload_fraction": float(offload.mean()),
                "threshold": threshold_used,
                "model_version": float(version_used),
                "update_bytes_per_device": float(update_bytes),
                "gathered_frames": float(self.gathered_idx.size),
                "device_energy_j_per_frame": energy / max(frames.size, 1),
            },
        )
