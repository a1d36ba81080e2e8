"""One split-learning step: the device trains the first blocks, the server the rest.

A `BlockModel` is cut at ``cut``: the device holds blocks ``[0, cut)`` (the *device part*), the
server blocks ``[cut, n)`` and the head (the *server part*). One training step on a mini-batch
(`split_train_step`):

1. the device runs its blocks in train mode and sends the activation ("smashed data"),
   quantized to ``activation_bits``
   (`tinylarge.integrate.inference.split_computing.quantize_activation`; ``None``
   sends float32), and the batch's labels;
2. the server runs its part on what it received, computes the cross-entropy (mean over the
   batch) and backpropagates to the received activation;
3. the server sends that gradient, quantized to ``gradient_bits`` (same quantizer, ``None``:
   float32); the device backpropagates it into its blocks (straight-through: the quantizer is
   treated as the identity in the backward pass);
4. both sides take a plain SGD step ``w <- w - lr * grad`` with the same ``lr``.

Bytes on air per sample (`smashed_bytes`, `label_bytes`): an activation or gradient of ``e``
values costs ``ceil(e x bits / 8) + QUANT_HEADER_BYTES`` when quantized and ``4 e`` as float32;
a label costs 1 byte when ``num_classes <= 256`` (2 bytes up to 65,536 classes, else 4).

`tinylarge.integrate.colearning.split_learning` builds the split-learning and SplitFed schemes on
it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tinylarge.integrate.inference.split_computing import (
    MAX_BITS,
    MIN_BITS,
    QUANT_HEADER_BYTES,
    quantize_activation,
)
from tinylarge.models.blocks import BlockModel

#: Bytes of one float32 value.
FLOAT32_BYTES = 4


def check_bits(name: str, bits: int | None) -> None:
    """``ValueError`` unless ``bits`` is None (float32) or an integer in MIN_BITS..MAX_BITS."""
    if bits is None:
        return
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(
            f"{name} must be None (float32) or an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}"
        )


def smashed_bytes(elements: int, bits: int | None, samples: int = 1) -> int:
    """Bytes on air of ``samples`` activations (or gradients) of ``elements`` values each.

    ``ceil(elements x bits / 8) + QUANT_HEADER_BYTES`` per sample when quantized to ``bits``
    (2..16), ``4 x elements`` when ``bits`` is ``None`` (float32).
    """
    check_bits("bits", bits)
    if bits is None:
        return samples * FLOAT32_BYTES * elements
    return samples * (math.ceil(elements * bits / 8) + QUANT_HEADER_BYTES)


def label_bytes(num_classes: int, samples: int = 1) -> int:
    """Bytes of ``samples`` class labels: 1 each if ``num_classes <= 256``, 2 up to 65,536,
    else 4."""
    per = 1 if num_classes <= 2**8 else 2 if num_classes <= 2**16 else 4
    return samples * per


def transfer_bytes(module: nn.Module) -> int:
    """Bytes of sending ``module``'s state as float32: 4 per element of every floating-point
    parameter and buffer (weights, batch-norm running statistics); integer buffers (the
    batch-norm step counter) are not sent, as in
    `tinylarge.integrate.colearning.update_compression`."""
    state = module.state_dict().values()
    return FLOAT32_BYTES * sum(int(t.numel()) for t in state if t.dtype.is_floating_point)


def cut_model(model: BlockModel, cut: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The device part (blocks ``[0, cut)``) and server part (blocks ``[cut, n)`` + head).

    Both are views: they hold ``model``'s own modules, so training them trains ``model``.

    Parameters
    ----------
    model : BlockModel
    cut : int
        Blocks on the device, ``1 .. n_blocks`` (the head always runs on the server).

    Returns
    -------
    (device_part, server_part) : nn.Sequential
        ``device_part`` maps (batch, *input_shape) to the activation at the cut;
        ``server_part`` maps that activation to logits (batch, num_classes).
    """
    n_blocks = len(model.blocks)
    if isinstance(cut, bool) or not isinstance(cut, int) or not 1 <= cut <= n_blocks:
        raise ValueError(
            f"cut must be an integer in 1..{n_blocks} (blocks on the device), got {cut!r}"
        )
    device = nn.Sequential(*model.blocks[:cut])
    server = nn.Sequential(*model.blocks[cut:], model.head)
    return device, server


def _send(value: Tensor, bits: int | None) -> Tensor:
    """What the other side receives: ``value`` quantized to ``bits`` (or a float32 copy)."""
    sent = value.detach()
    return sent.clone() if bits is None else quantize_activation(sent, bits)


@dataclass(frozen=True, eq=False)
class SplitStep:
    """One split training step on a mini-batch.

    Attributes
    ----------
    loss : float
        Mean cross-entropy of the batch (before the update), nats.
    activation : Tensor, shape (batch, *activation_shape)
        The activation the server received (dequantized; detached).
    gradient : Tensor, shape (batch, *activation_shape)
        The loss gradient w.r.t. the activation that the device received (dequantized).
    activation_bytes, gradient_bytes, label_bytes : int
        Bytes on air of the batch's activations (up), gradients (down) and labels (up).
    """

    loss: float
    activation: Tensor
    gradient: Tensor
    activation_bytes: int
    gradient_bytes: int
    label_bytes: int

    @property
    def bytes_up(self) -> int:
        """Activations + labels, bytes."""
        return self.activation_bytes + self.label_bytes

    @property
    def bytes_down(self) -> int:
        """Gradients, bytes."""
        return self.gradient_bytes


def split_backward(
    device_part: nn.Module,
    server_part: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    num_classes: int,
    activation_bits: int | None,
    gradient_bits: int | None,
) -> SplitStep:
    """Forward and backward pass of one split step; leaves the gradients in every ``.grad``.

    Both parts are put in train mode (batch-norm uses batch statistics and updates its running
    statistics). Existing ``.grad`` of both parts are discarded first, so afterwards they hold
    this batch's gradients exactly. With ``activation_bits = gradient_bits = None`` they equal
    the gradients of the unsplit model.

    Parameters
    ----------
    device_part, server_part : nn.Module
        See `cut_model`.
    x : Tensor, float, shape (batch, *input_shape)
    y : Tensor, int64, shape (batch,)
        Class labels in ``[0, num_classes)``.
    num_classes : int
        Sets the label size on air (`label_bytes`).
    activation_bits, gradient_bits : int or None
        Quantization of the activation (up) and of its gradient (down): 2..16, None = float32.

    Returns
    -------
    SplitStep
    """
    check_bits("activation_bits", activation_bits)
    check_bits("gradient_bits", gradient_bits)
    if x.ndim < 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(
            f"x must have shape (batch, *input_shape) and y (batch,), batch >= 1; got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    for part in (device_part, server_part):
        part.train()
        part.zero_grad(set_to_none=True)
    h = device_part(x)  # device
    received = _send(h, activation_bits).requires_grad_(True)  # uplink
    loss = nn.functional.cross_entropy(server_part(received), y)  # server
    loss.backward()  # type: ignore[no-untyped-call]
    assert received.grad is not None  # set by the backward pass above
    gradient = _send(received.grad, gradient_bits)  # downlink
    if h.requires_grad:  # device, straight-through (a block may hold no parameters)
        h.backward(gradient)
    elements = math.prod(h.shape[1:])
    batch = int(x.shape[0])
    return SplitStep(
        loss=float(loss.detach()),
        activation=received.detach(),
        gradient=gradient,
        activation_bytes=smashed_bytes(elements, activation_bits, batch),
        gradient_bytes=smashed_bytes(elements, gradient_bits, batch),
        label_bytes=label_bytes(num_classes, batch),
    )


def sgd_step(module: nn.Module, lr: float) -> None:
    """Plain SGD on every parameter with a gradient, ``w <- w - lr * grad``; clears the grads."""
    with torch.no_grad():
        for p in module.parameters():
            if p.grad is not None:
                p.sub_(lr * p.grad)
                p.grad = None


def split_train_step(
    device_part: nn.Module,
    server_part: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    lr: float,
    num_classes: int,
    activation_bits: int | None,
    gradient_bits: int | None,
) -> SplitStep:
    """`split_backward`, then an SGD step of step size ``lr`` on both parts (in place)."""
    step = split_backward(
        device_part,
        server_part,
        x,
        y,
        num_classes=num_classes,
        activation_bits=activation_bits,
        gradient_bits=gradient_bits,
    )
    sgd_step(device_part, lr)
    sgd_step(server_part, lr)
    return step
