"""Evaluation: logits in batches; accuracy overall, per SNR bucket and per class; confusion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@torch.inference_mode()
def predict_logits(model: nn.Module, x: np.ndarray, *, batch_size: int = 2048) -> np.ndarray:
    """Logits of ``model`` in eval mode.

    Parameters
    ----------
    x : ndarray, float32, shape (n, *input_shape)

    Returns
    -------
    ndarray, float32, shape (n, num_classes)
    """
    model.eval()
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    parts = [model(x_t[s : s + batch_size]).numpy() for s in range(0, len(x_t), batch_size)]
    return np.concatenate(parts).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of predictions against labels.

    Attributes
    ----------
    accuracy : float
        Fraction correct over all samples.
    confusion : ndarray, int64, shape (num_classes, num_classes)
        ``confusion[true, predicted]`` counts.
    snr_db : ndarray, float64, shape (n_buckets,)
        SNR bucket values (empty when the task has no SNR metadata).
    accuracy_by_snr : ndarray, float64, shape (n_buckets,)
    count_by_snr : ndarray, int64, shape (n_buckets,)
    """

    accuracy: float
    confusion: np.ndarray
    snr_db: np.ndarray
    accuracy_by_snr: np.ndarray
    count_by_snr: np.ndarray

    @property
    def accuracy_by_class(self) -> np.ndarray:
        """Recall of each class, float64 shape (num_classes,); NaN for a class absent from y."""
        support = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(self.confusion) / support, np.nan)

    def accuracy_where(self, snr_min_db: float) -> float:
        """Accuracy over the frames with SNR >= ``snr_min_db`` (NaN if none)."""
        keep = self.snr_db >= snr_min_db
        total = int(self.count_by_snr[keep].sum())
        if total == 0:
            return float("nan")
        return float((self.accuracy_by_snr[keep] * self.count_by_snr[keep]).sum() / total)


def evaluate(
    predicted: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    snr_db: np.ndarray | None = None,
) -> Evaluation:
    """Score predicted labels against true labels.

    Parameters
    ----------
    predicted, y : ndarray, int, shape (n,)
        Predicted and true class indices in ``[0, num_classes)``.
    num_classes : int
    snr_db : ndarray, shape (n,), optional
        Per-sample SNR; buckets are its distinct values (the task's SNR grid).
    """
    predicted, y = np.asarray(predicted), np.asarray(y)
    if predicted.shape != y.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError(
            f"predicted and y must be equal-length 1-D arrays, got {predicted.shape}, {y.shape}"
        )
    for name, arr in (("predicted", predicted), ("y", y)):
        if arr.min() < 0 or arr.max() >= num_classes:
            raise ValueError(
                f"{name} labels must lie in [0, {num_classes}), got [{arr.min()}, {arr.max()}]"
            )
    confusion = np.bincount(y * num_classes + predicted, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes).astype(np.int64)
    correct = predicted == y
    if snr_db is None:
        buckets, acc, count = np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
    else:
        snr = np.asarray(snr_db, dtype=np.float64)
        if snr.shape != y.shape:
            raise ValueError(f"snr_db must have shape {y.shape}, got {snr.shape}")
        buckets, inverse = np.unique(snr, return_inverse=True)
        count = np.bincount(inverse, minlength=len(buckets)).astype(np.int64)
        acc = np.bincount(inverse, weights=correct, minlength=len(buckets)) / count
    return Evaluation(
        accuracy=float(correct.mean()),
        confusion=confusion,
        snr_db=buckets,
        accuracy_by_snr=acc,
        count_by_snr=count,
    )
