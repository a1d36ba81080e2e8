"""The training loop: Adam, cosine/step schedule, validation split, early stopping, progress.

Deterministic under a seed: the validation split, the batch order and the initial weights
(see `build_model`) come from explicit generators, never from global random state.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tinylarge.config.scenario import TrainingSpec
from tinylarge.seeding import derive_seed

#: Called once per finished batch with (epoch index, batches done in this epoch, batches per epoch,
#: last validation accuracy or None); the CLI hangs a rich progress bar on it.
ProgressCallback = Callable[[int, int, int, float | None], None]

#: A training loss: (logits of the batch, hard labels of the batch, indices of the batch's samples
#: into the ``x`` given to `train`) -> scalar loss. The default is cross-entropy on the labels;
#: knowledge distillation (`tinylarge.tiny.distill`) plugs in a soft-target loss here.
BatchLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_loss(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` against the hard labels ``y`` (``idx`` unused)."""
    return nn.functional.cross_entropy(logits, y)


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of one epoch (losses are mean cross-entropy in nats)."""

    epoch: int
    learning_rate: float
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None


@dataclass(frozen=True)
class TrainingReport:
    """What happened during training; saved beside the weights in the cache and run directory."""

    epochs_run: int
    best_epoch: int
    stopped_early: bool
    train_time_s: float
    n_train: int
    n_val: int
    history: list[EpochRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "train_time_s": self.train_time_s,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "history": [vars(r) for r in self.history],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TrainingReport:
        history = [EpochRecord(**r) for r in data["history"]]  # type: ignore[attr-defined]
        fields = {k: v for k, v in data.items() if k != "history"}
        return cls(history=history, **fields)  # type: ignore[arg-type]


def _check_arrays(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"train needs x of shape (n, ...) and y of shape (n,), got {x.shape} and {y.shape}"
        )
    if len(x) < 2:
        raise ValueError(f"train needs at least 2 samples, got {len(x)}")


def _scheduler(
    optimizer: torch.optim.Optimizer, spec: TrainingSpec
) -> torch.optim.lr_scheduler.LRScheduler:
    if spec.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=spec.epochs)
    if spec.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, spec.step_size_epochs, spec.step_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _epoch: 1.0)


@torch.inference_mode()
def _loss_and_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    return loss_sum / len(x), correct / len(x)


@dataclass(frozen=True)
class _Split:
    """Training and validation tensors; ``train_idx`` indexes the ``x`` given to `train`."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    train_idx: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def n_val(self) -> int:
        """Validation samples (0 without a validation split)."""
        return len(self.x_val)


def _split(x: np.ndarray, y: np.ndarray, spec: TrainingSpec, seed: int) -> _Split:
    """Shuffle (seeded), cap at ``spec.max_train_samples`` and hold out the validation share."""
    order = np.random.default_rng(derive_seed(seed, "train", "split")).permutation(len(x))
    if spec.max_train_samples is not None:
        order = order[: spec.max_train_samples]
    n_val = round(len(order) * spec.val_fraction)
    if spec.val_fraction > 0 and (n_val < 1 or n_val >= len(order)):
        raise ValueError(
            f"val_fraction={spec.val_fraction} of {len(order)} samples leaves no validation or no "
            "training data; use more samples or val_fraction = 0"
        )
    x_all = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    y_all = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    val_idx, train_idx = torch.from_numpy(order[:n_val]), torch.from_numpy(order[n_val:])
    return _Split(
        x_train=x_all[train_idx],
        y_train=y_all[train_idx],
        train_idx=train_idx,
        x_val=x_all[val_idx],
        y_val=y_all[val_idx],
    )


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: BatchLoss,
    data: _Split,
    perm: torch.Tensor,
    batch_size: int,
    *,
    epoch: int,
    last_val: float | None,
    progress: ProgressCallback | None,
) -> tuple[float, int]:
    """One pass over the training data in the order ``perm``.

    Returns the sum of the batch losses weighted by batch size, and the correct predictions;
    calls ``progress(epoch, batches done, batches, last_val)`` after each batch.
    """
    model.train()
    batches = math.ceil(len(data.x_train) / batch_size)
    loss_sum, correct = 0.0, 0
    for b in range(batches):
        idx = perm[b * batch_size : (b + 1) * batch_size]
        if len(idx) < 2 and b > 0:  # a batch of one breaks batch norm; drop the stray sample
            continue
        logits = model(data.x_train[idx])
        loss = loss_fn(logits, data.y_train[idx], data.train_idx[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        loss_sum += float(loss.detach()) * len(idx)
        correct += int((logits.detach().argmax(1) == data.y_train[idx]).sum())
        if progress is not None:
            progress(epoch, b + 1, batches, last_val)
    return loss_sum, correct


def _fit(
    model: nn.Module,
    data: _Split,
    spec: TrainingSpec,
    seed: int,
    progress: ProgressCallback | None,
    loss_fn: BatchLoss,
) -> tuple[list[EpochRecord], int, bool]:
    """The epochs of `train`: Adam, the schedule, validation, early stopping.

    Leaves ``model`` with its best-validation-loss weights when there is a validation split.
    Returns the per-epoch history, the best epoch and whether training stopped early.
    """
    n_train, n_val = len(data.x_train), data.n_val
    optimizer = torch.optim.Adam(
        model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay
    )
    scheduler = _scheduler(optimizer, spec)
    shuffle = torch.Generator().manual_seed(derive_seed(seed, "train", "shuffle"))
    history: list[EpochRecord] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    stopped_early = False
    for epoch in range(spec.epochs):
        perm = torch.randperm(n_train, generator=shuffle)
        loss_sum, correct = _train_epoch(
            model, optimizer, loss_fn, data, perm, spec.batch_size, epoch=epoch,
            last_val=history[-1].val_accuracy if history else None, progress=progress,
        )  # fmt: skip
        lr = float(optimizer.param_groups[0]["lr"])
        scheduler.step()
        val_loss = val_acc = None
        if n_val:
            val_loss, val_acc = _loss_and_accuracy(
                model, data.x_val, data.y_val, max(spec.batch_size, 1024)
            )
        history.append(
            EpochRecord(epoch, lr, loss_sum / n_train, correct / n_train, val_loss, val_acc)
        )
        if val_loss is not None and val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        if spec.patience_epochs and n_val and epoch - best_epoch >= spec.patience_epochs:
            stopped_early = epoch + 1 < spec.epochs
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(history) - 1
    return history, best_epoch, stopped_early


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    spec: TrainingSpec | None = None,
    *,
    seed: int,
    progress: ProgressCallback | None = None,
    loss_fn: BatchLoss = cross_entropy_loss,
) -> TrainingReport:
    """Train ``model`` in place with Adam (cross-entropy by default); keep the best validation
    weights (validation always uses cross-entropy on the hard labels).

    Parameters
    ----------
    model : nn.Module
        Maps float32 ``(batch, *input_shape)`` to logits ``(batch, num_classes)``.
    x : ndarray, float32, shape (n, *input_shape)
    y : ndarray, int64, shape (n,)
    spec : TrainingSpec, optional
        Epochs, batch size, learning rate, schedule, validation split, patience (defaults if None).
    seed : int
        Seeds the validation split and batch order.
    progress : callable, optional
        Called after every batch (see `ProgressCallback`).
    loss_fn : callable, optional
        The training loss (see `BatchLoss`); cross-entropy on ``y`` by default.

    Returns
    -------
    TrainingReport
        Per-epoch history; with a validation split the model ends with its best-validation-loss
        weights, else with its last ones.
    """
    spec = spec or TrainingSpec()
    _check_arrays(x, y)
    data = _split(x, y, spec, seed)
    started = time.perf_counter()
    history, best_epoch, stopped_early = _fit(model, data, spec, seed, progress, loss_fn)
    model.eval()
    return TrainingReport(
        epochs_run=len(history),
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        train_time_s=time.perf_counter() - started,
        n_train=len(data.x_train),
        n_val=data.n_val,
        history=history,
    )
