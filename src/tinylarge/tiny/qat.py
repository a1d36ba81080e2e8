"""Quantization-aware fine-tuning (fake quantization with a straight-through estimator).

Used when post-training quantization loses too much accuracy: the batch-norm-folded float model
is fine-tuned with every weight fake-quantized per output channel (symmetric, [-127, 127]) and
every activation fake-quantized per tensor at its calibrated int8 range, so training sees the
rounding the int8 model will apply (Jacob et al., "Quantization and Training of Neural Networks
for Efficient Integer-Arithmetic-Only Inference", CVPR 2018). The result is a float model whose
weights quantize well; `quantize_model` then converts it as usual.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import fx, nn
from torch.nn.utils import parametrize

from tinylarge.config.scenario import TrainingSpec
from tinylarge.models.training import (
    BatchLoss,
    ProgressCallback,
    TrainingReport,
    cross_entropy_loss,
    train,
)
from tinylarge.tiny.graph import INT8_MAX, INT8_MIN
from tinylarge.tiny.quantize import GraphMapping, activation_qparams, calibrate, fold_batch_norm


class _PerChannelWeightFakeQuant(nn.Module):
    """Parametrization: symmetric per-output-channel int8 fake quantization of a weight."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        absmax = weight.detach().reshape(weight.shape[0], -1).abs().amax(dim=1)
        scale = torch.clamp(absmax / 127.0, min=1e-8).float()
        zero = torch.zeros(weight.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)


def _is_not(node: fx.Node) -> Callable[[fx.Node], bool]:
    """A predicate true for every node but ``node``."""
    return lambda other: other is not node


def _insert_activation_fake_quant(
    gm: fx.GraphModule, qparams: dict[fx.Node, tuple[float, int]]
) -> None:
    for node, (scale, zero_point) in qparams.items():
        with gm.graph.inserting_after(node):
            fq = gm.graph.call_function(
                torch.fake_quantize_per_tensor_affine,
                (node, scale, zero_point, INT8_MIN, INT8_MAX),
            )
        node.replace_all_uses_with(fq, delete_user_cb=_is_not(fq))
    gm.graph.lint()
    gm.recompile()


def quantization_aware_finetune(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    spec: TrainingSpec,
    *,
    calibration_x: np.ndarray,
    seed: int,
    progress: ProgressCallback | None = None,
    loss_fn: BatchLoss = cross_entropy_loss,
) -> tuple[fx.GraphModule, TrainingReport]:
    """Fine-tune a folded copy of ``model`` with fake quantization; return it and the report.

    The returned module is plain float (fake quantization removed) with batch norm folded;
    pass it to `quantize_model`. ``model`` itself is not modified.
    """
    folded = fold_batch_norm(model)
    builder = GraphMapping(folded)
    ranges = calibrate(folded, calibration_x)
    qparams = {
        node: activation_qparams(ranges.low[node], ranges.high[node])
        for name, node in builder.defining_node.items()
        if name != "input"  # the input is quantized by the device's front end, not trained
    }
    qat = copy.deepcopy(folded)
    node_by_name = {n.name: n for n in qat.graph.nodes}
    _insert_activation_fake_quant(qat, {node_by_name[n.name]: q for n, q in qparams.items()})
    weighted = [m for m in qat.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear)]
    for module in weighted:
        parametrize.register_parametrization(module, "weight", _PerChannelWeightFakeQuant())
    report = train(qat, x, y, spec, seed=seed, progress=progress, loss_fn=loss_fn)
    for module in weighted:
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
    folded.load_state_dict(qat.state_dict())
    folded.eval()
    return folded, report
