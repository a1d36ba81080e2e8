"""The next tiny model of the closed loop: distil, then quantize to int8.

One step for the simulated loop (`tinylarge.integrate.colearning.closed_loop.ClosedLoop`) and
the live one at the edge (`tinylarge.deploy.live_loop.LiveLoop`): a copy of the model in
service is trained on frames labelled by the large model, with the large model's logits as
soft targets (`tinylarge.tiny.distill.distillation_loss`, Hinton et al. 2015), and quantized
(`tinylarge.tiny.quantize.quantize_model`). Only the teacher's logits are needed: the large
model answered those frames already, so it does not run again. Each caller packages the result
its own way (the simulator with the threshold through its update channel, the edge as a signed
bundle).
"""

from __future__ import annotations

import copy

import numpy as np
import numpy.typing as npt
from torch import nn

from tinylarge.config.training_config import TrainingSpec
from tinylarge.models.training import train
from tinylarge.tiny.distill import distillation_loss
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.quantize import quantize_model


def next_tiny_model(
    current: nn.Module,
    x: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    teacher_logits: npt.NDArray[np.float32],
    spec: TrainingSpec,
    *,
    temperature: float,
    alpha: float,
    seed: int,
    calibration_x: npt.NDArray[np.float32],
    class_names: tuple[str, ...],
) -> tuple[nn.Module, TinyModel]:
    """Distil a copy of ``current`` on ``(x, labels)`` with soft targets ``teacher_logits`` and
    quantize it to int8.

    Parameters
    ----------
    current : nn.Module
        The float tiny model in service (not changed): the student starts from a copy of it.
    x : ndarray of float32, shape (n, *input_shape)
        The training frames.
    labels : ndarray of int64, shape (n,)
        Their hard labels (e.g. the large model's classes).
    teacher_logits : ndarray of float32, shape (n, num_classes)
        The large model's logits of the same frames.
    spec : TrainingSpec
        Epochs, batch size, learning rate... of the distillation.
    temperature, alpha : float
        Softmax temperature (> 0) and soft-target weight in [0, 1] of the distillation loss.
    seed : int
        Seed of the training's batch order and initial state.
    calibration_x : ndarray of float32, shape (m, *input_shape)
        Frames that calibrate the int8 activation ranges (m >= 1).
    class_names : tuple of str

    Returns
    -------
    student : nn.Module
        The distilled float model (evaluation mode).
    model : TinyModel
        Its int8 version.
    """
    if len(teacher_logits) != len(x) or len(labels) != len(x):
        raise ValueError(
            f"x, labels and teacher_logits must hold the same frames; got {len(x)}, "
            f"{len(labels)} and {len(teacher_logits)} rows"
        )
    student = copy.deepcopy(current)
    loss = distillation_loss(teacher_logits, temperature=temperature, alpha=alpha)
    train(student, x, labels, spec, seed=seed, loss_fn=loss)
    return student, quantize_model(student.eval(), calibration_x, class_names)
