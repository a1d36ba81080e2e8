"""The closed loop, live at the edge: offloads labelled by the large model become the next tiny
model, pushed to the devices as a signed bundle.

Every frame the server answers is kept with the large model's logits (soft targets) and class
(hard label). Each ``update_every`` new frames, a worker thread distils a copy of the current
tiny model on everything gathered and quantizes it
(`tinylarge.integrate.colearning.model_update.next_tiny_model`, the simulator's closed-loop
step), and signs it as the next version (`tinylarge.secure.bundle`); the server publishes it
retained, so a device that connects later still gets it. Serving never waits for training.
What must survive a restart is on disk in ``state_dir``: the gathered frames and logits
(``labels.npz``) and the last version pushed (``bundle_version``), so versions only ever grow
(devices refuse a rollback).

The loop keeps the most recent ``max_kept`` frames (default `MAX_KEPT`), not all of them: an
edge answering 500 requests/s gathers 30,000 frames a minute, and a soak test of 30 minutes
showed an edge that kept everything growing by about 48 MB a minute (and each update would
train on ever more frames). The most recent frames are also the ones that describe what the
devices see now.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
from torch import nn

from tinylarge.config.training_config import TrainingSpec
from tinylarge.integrate.colearning.model_update import next_tiny_model
from tinylarge.secure.bundle import sign_bundle
from tinylarge.secure.identity import Identity
from tinylarge.tiny.model_file import to_bytes

LABELS_FILE, VERSION_FILE = "labels.npz", "bundle_version"
#: Frames (with their logits) an edge keeps for the next updates: about 52 MB for frames of
#: 2 x 128 float32 values.
MAX_KEPT = 50_000


def read_version(state_dir: str | Path) -> int:
    """The newest model version an edge with this state directory has signed (0: none)."""
    path = Path(state_dir) / VERSION_FILE
    return int(path.read_text()) if path.is_file() else 0


class LiveLoop:
    """Gathers labelled offloads and builds the next signed tiny-model bundle (see module doc).

    Parameters
    ----------
    state_dir : path
        Where the gathered labels and the version counter live.
    tiny : nn.Module
        The float tiny model the devices run (int8) today; each update continues from the last.
    class_names : tuple of str
    spec : TrainingSpec
        Distillation epochs, batch size, learning rate of each update.
    identity : Identity
        The edge's signing identity.
    target : str
        Device class in the bundle manifest (the MCU name).
    update_every : int
        New labelled frames between two updates.
    max_kept : int
        The most recent frames kept for the updates (older ones are dropped; module doc).
    """

    def __init__(
        self,
        state_dir: str | Path,
        tiny: nn.Module,
        class_names: tuple[str, ...],
        spec: TrainingSpec,
        identity: Identity,
        target: str,
        *,
        update_every: int = 500,
        max_kept: int = MAX_KEPT,
        calibration_samples: int = 500,
        temperature: float = 4.0,
        alpha: float = 0.5,
        seed: int = 0,
    ) -> None:
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        if max_kept < 1:
            raise ValueError(f"max_kept must be >= 1, got {max_kept}")
        self.max_kept = max_kept
        #: `add` runs on the server's event loop while `build_update` runs in a worker thread
        self._lock = threading.Lock()
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tiny, self.class_names = tiny, class_names
        self.calibration_samples = calibration_samples
        self.spec, self.identity, self.target = spec, identity, target
        self.update_every, self.temperature, self.alpha, self.seed = (
            update_every, temperature, alpha, seed
        )  # fmt: skip
        self.x: list[npt.NDArray[np.float32]] = []
        self.logits: list[npt.NDArray[np.float32]] = []
        labels = self.state_dir / LABELS_FILE
        if labels.is_file():
            with np.load(labels) as saved:
                self.x, self.logits = [saved["x"]], [saved["logits"]]
        self.gathered = self.held = sum(len(x) for x in self.x)
        self.since_update = 0
        self.version = read_version(self.state_dir)

    def add(self, x: npt.NDArray[np.float32], logits: npt.NDArray[np.float32]) -> bool:
        """Keep a batch of answered frames; True when an update is due."""
        with self._lock:
            self.x.append(np.asarray(x, np.float32))
            self.logits.append(np.asarray(logits, np.float32))
            self.gathered += len(x)
            self.held += len(x)
            self.since_update += len(x)
        if self.held > 2 * self.max_kept:  # trimmed in bulk: one copy per max_kept frames
            self._keep_recent()
        return self.since_update >= self.update_every

    def _keep_recent(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Drop all but the most recent `max_kept` frames; those frames and their logits."""
        with self._lock:
            x = np.concatenate(self.x)[-self.max_kept :]
            logits = np.concatenate(self.logits)[-self.max_kept :]
            self.x, self.logits, self.held = [x], [logits], len(x)
        return x, logits

    def save(self) -> None:
        """Write the gathered frames and logits (atomically)."""
        if not self.x:
            return
        self._write(*self._keep_recent())

    def _write(self, x: npt.NDArray[np.float32], logits: npt.NDArray[np.float32]) -> None:
        tmp = self.state_dir / f".{LABELS_FILE}.tmp-{os.getpid()}.npz"
        np.savez(tmp, x=x, logits=logits)
        tmp.replace(self.state_dir / LABELS_FILE)

    def build_update(self) -> tuple[int, bytes]:
        """Distil, quantize and sign the next model: ``(version, bundle)``. Blocking: run it in
        a worker thread. The version counter is on disk before the bundle leaves."""
        self.since_update = 0
        x, logits = self._keep_recent()
        self._write(x, logits)
        version = self.version + 1
        # calibrated on the frames devices offload: what the next model will be unsure about
        student, model = next_tiny_model(
            self.tiny,
            x,
            logits.argmax(1).astype(np.int64),
            logits,
            self.spec,
            temperature=self.temperature,
            alpha=self.alpha,
            seed=self.seed + version,
            calibration_x=x[: self.calibration_samples],
            class_names=self.class_names,
        )
        bundle = sign_bundle(to_bytes(model), version, self.target, self.identity)
        (self.state_dir / VERSION_FILE).write_text(str(version))
        self.version, self.tiny = version, student
        return version, bundle
