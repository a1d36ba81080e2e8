"""Knowledge distillation LargeML -> TinyML (Hinton, Vinyals & Dean, "Distilling the Knowledge
in a Neural Network", 2015).

The student minimises ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) +
(1 - alpha) * CE(student, labels)``; the ``T^2`` factor keeps the soft-target gradients on the
scale of the hard-label ones as ``T`` changes (section 2 of the paper).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tinylarge.config.scenario import TrainingSpec
from tinylarge.models.evaluation import predict_logits
from tinylarge.models.training import BatchLoss, ProgressCallback, TrainingReport, train


def distillation_loss(teacher_logits: np.ndarray, *, temperature: float, alpha: float) -> BatchLoss:
    """A `BatchLoss` mixing soft targets from ``teacher_logits`` (n, classes) with hard labels.

    Parameters
    ----------
    teacher_logits : ndarray, float32, shape (n, num_classes)
        The teacher's logits for every training sample, indexed like the training ``x``.
    temperature : float
        Softmax temperature ``T > 0`` of both teacher and student in the soft term.
    alpha : float
        Weight in [0, 1] of the soft term (0: labels only, 1: soft targets only).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    teacher = torch.from_numpy(np.ascontiguousarray(teacher_logits, dtype=np.float32))
    log_p_teacher = torch.log_softmax(teacher / temperature, dim=1)

    def loss(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        hard = nn.functional.cross_entropy(logits, y)
        if alpha == 0.0:
            return hard
        log_p_student = torch.log_softmax(logits / temperature, dim=1)
        soft = nn.functional.kl_div(
            log_p_student, log_p_teacher[idx], reduction="batchmean", log_target=True
        )
        return alpha * temperature**2 * soft + (1.0 - alpha) * hard

    return loss


def distill(
    student: nn.Module,
    teacher: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    spec: TrainingSpec,
    *,
    temperature: float,
    alpha: float,
    seed: int,
    progress: ProgressCallback | None = None,
    teacher_logits: np.ndarray | None = None,
) -> TrainingReport:
    """Train ``student`` in place on ``(x, y)`` with soft targets from ``teacher``.

    ``teacher_logits`` (n, classes) may be given to skip the teacher's forward pass (e.g. when
    they are cached); otherwise they are computed here in evaluation mode.
    """
    if teacher_logits is None:
        teacher_logits = predict_logits(teacher, x)
    if teacher_logits.shape[0] != len(x):
        raise ValueError(
            f"teacher_logits has {teacher_logits.shape[0]} rows for {len(x)} training samples"
        )
    loss_fn = distillation_loss(teacher_logits, temperature=temperature, alpha=alpha)
    return train(student, x, y, spec, seed=seed, progress=progress, loss_fn=loss_fn)
