"""Knowledge distillation: the loss against an independent formula, and training with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax

from tinylarge.config import TrainingSpec
from tinylarge.models.registry import build_model
from tinylarge.tiny.distill import distill, distillation_loss


def test_loss_matches_the_hinton_formula() -> None:
    rng = np.random.default_rng(0)
    teacher = rng.standard_normal((10, 5)).astype(np.float32) * 3
    student = rng.standard_normal((4, 5)).astype(np.float32)
    y = np.array([0, 3, 4, 1])
    idx = np.array([7, 2, 9, 0])
    t, alpha = 3.0, 0.6
    loss = distillation_loss(teacher, temperature=t, alpha=alpha)
    got = float(loss(torch.from_numpy(student), torch.from_numpy(y), torch.from_numpy(idx)))
    p_t = softmax(teacher[idx] / t, axis=1)
    kl = np.sum(p_t * (np.log(p_t) - log_softmax(student / t, axis=1)), axis=1).mean()
    ce = -log_softmax(student, axis=1)[np.arange(4), y].mean()
    assert got == pytest.approx(alpha * t**2 * kl + (1 - alpha) * ce, rel=1e-5)


def test_alpha_zero_is_plain_cross_entropy_and_bad_settings_are_refused() -> None:
    logits = torch.randn(3, 4)
    y = torch.tensor([0, 1, 2])
    loss = distillation_loss(np.zeros((3, 4), np.float32), temperature=2.0, alpha=0.0)
    expected = torch.nn.functional.cross_entropy(logits, y)
    assert float(loss(logits, y, torch.arange(3))) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distillation_loss(np.zeros((3, 4), np.float32), temperature=0.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        distillation_loss(np.zeros((3, 4), np.float32), temperature=1.0, alpha=1.5)


def test_student_learns_the_teacher_function_from_soft_targets_alone() -> None:
    """With alpha = 1 the labels are never used: the student can only learn from the teacher.
    Feed deliberately wrong labels; the student must still agree with the teacher."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 1, 8, 8)).astype(np.float32)
    teacher = build_model("tiny_cnn", (1, 8, 8), 3, {"width": 4}, seed=5).eval()
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(3.0)  # sharpen the teacher's decisions
    wrong_labels = rng.integers(0, 3, len(x))
    student = build_model("tiny_cnn", (1, 8, 8), 3, {"width": 8}, seed=0)
    spec = TrainingSpec(epochs=6, batch_size=100, learning_rate=2e-2, val_fraction=0.0)
    distill(student, teacher, x, wrong_labels, spec, temperature=2.0, alpha=1.0, seed=0)
    with torch.no_grad():
        t_pred = teacher(torch.from_numpy(x)).argmax(1).numpy()
        s_pred = student(torch.from_numpy(x)).argmax(1).numpy()
    assert np.mean(s_pred == t_pred) > 0.8
    assert np.mean(s_pred == wrong_labels) < 0.5
