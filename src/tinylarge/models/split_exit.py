"""A learned bottleneck and an early-exit head grafted onto a trained `BlockModel` (SPINN-style).

Split computing only pays when what the device sends is smaller than the input; the large
model's own activations rarely are (on the radio task every one is larger than the 256-byte
frame). Following Matsubara et al. ("Head Network Distillation", IEEE Access 2019) and SPINN
(Laskaridis et al., MobiCom 2020), the trained large model is cut after block ``k`` and given

* a **bottleneck**: an encoder on the device (a strided 3-wide convolution to a few channels
  and half the resolution) whose output is quantized to ``code_bits`` and sent, and a decoder
  at the edge (nearest upsampling, a 3-wide convolution back to the block's channels, batch norm,
  then ReLU when the cut activation is one) that feeds blocks ``[k, n)``;
* an **exit head** on the device (strided 3-wide convolutions with batch norm and ReLU, global
  average pooling, linear) that answers without the edge when it is confident.

What the cut produces decides the decoder's output (`cut_is_signed`, a probe of the frozen
device blocks on seeded random inputs). A convolutional network's blocks end in ReLU: the
activation is a non-negative feature map and the decoder ends in ReLU too. A transformer's
blocks hand on the residual stream, channel-first tokens ``(batch, width, tokens)`` that take
both signs: the decoder's output is linear (batch norm's affine map, no ReLU), so it can take
every value the stream takes. Measured on the radio task (12,000 training frames, 3,000 test
frames): on the RF transformer of size s (trained from scratch to 30 % accuracy) cut after its
patch embedding, the edge's accuracy from the code was 24.2 % with the linear output against
16.7 % with ReLU; after the first encoder layer, and at size xs (3 seeds), the two were within
noise of each other. The convolutional exit head stays for both: on channel-first tokens its
strided convolutions mix neighbouring patches, and it beat a token head (layer norm, per-token
MLP, mean over tokens, linear) by 4 to 6 points at both sizes after the embedding and after
one encoder layer.

The large model stays frozen (its weights and batch-norm statistics never change; the graft
works on a deep copy). The exit head learns from the labels; the bottleneck from the labels
through the frozen rest of the network, with the code's quantization in the loop (straight-
through estimator), so the edge half is trained for exactly what arrives over the air.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from tinylarge.config.training_config import TrainingSpec
from tinylarge.models.blocks import BlockModel, batch_norm, classifier_head, conv, conv_bn_relu
from tinylarge.models.training import ProgressCallback, TrainingReport, train


class Frozen(nn.Module):
    """A module whose parameters never train and which always runs in eval mode."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> Frozen:
        super().train(mode)
        self.module.eval()  # batch-norm statistics of the trained model must not move
        return self

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.module(x)
        return out


def quantize_ste(h: Tensor, bits: int) -> Tensor:
    """Per-sample min/max quantization to ``bits`` bits with a straight-through gradient.

    The forward value equals `tinylarge.integrate.inference.split_computing.quantize_activation`
    (what goes on air);
    the backward pass treats quantization as the identity (Bengio et al., 2013).
    """
    flat = h.reshape(h.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values.detach()
    span = flat.max(dim=1, keepdim=True).values.detach() - lo
    scale = torch.where(span > 0, span / (2**bits - 1), torch.ones_like(span))
    q = torch.clamp(torch.round((flat - lo) / scale), 0, 2**bits - 1)
    deq = (lo + q * scale).reshape(h.shape)
    return h + (deq - h).detach()


def _downsample(dims: int, c_in: int, c_out: int) -> nn.Module:
    return conv(dims, c_in, c_out, 3, stride=2)


class Encoder(nn.Module):
    """Device half of the bottleneck: strided 3-wide conv to ``channels`` and batch norm."""

    def __init__(self, dims: int, c_in: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_downsample(dims, c_in, channels), batch_norm(dims, channels))

    def forward(self, h: Tensor) -> Tensor:
        out: Tensor = self.body(h)
        return out


class Decoder(nn.Module):
    """Edge half of the bottleneck: upsample x2 (nearest), 3-wide conv, batch norm, and ReLU
    unless ``signed`` (the cut activation takes both signs: a linear output)."""

    def __init__(self, dims: int, channels: int, c_out: int, *, signed: bool = False) -> None:
        super().__init__()
        layers = list(conv_bn_relu(dims, channels, c_out, 3, pool=False))
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), *(layers[:2] if signed else layers)
        )

    def forward(self, code: Tensor, size: tuple[int, ...]) -> Tensor:
        out: Tensor = self.body(code)
        # An odd length loses one sample to the stride; crop/pad back to the block's size.
        return nn.functional.interpolate(out, size=size) if tuple(out.shape[2:]) != size else out


def exit_head(dims: int, c_in: int, widths: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Per width a strided 3-wide conv, batch norm and ReLU; then global pool and linear."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [_downsample(dims, c_in, width), batch_norm(dims, width), nn.ReLU()]
        c_in = width
    return nn.Sequential(*layers, *classifier_head(dims, c_in, num_classes))


#: Random frames `cut_is_signed` runs through the device blocks, and their seed.
SIGN_PROBES, SIGN_PROBE_SEED = 64, 0


def cut_is_signed(device_blocks: nn.Module, input_shape: tuple[int, ...]) -> bool:
    """Whether the activation at the cut takes negative values: ``device_blocks`` (in eval mode)
    on `SIGN_PROBES` standard-normal inputs drawn from their own seeded generator (the global
    torch random state is not touched). False for blocks that end in ReLU (on any input)."""
    generator = torch.Generator().manual_seed(SIGN_PROBE_SEED)
    probe = torch.randn((SIGN_PROBES, *input_shape), generator=generator)
    with torch.no_grad():
        return bool((device_blocks(probe) < 0).any())


class SplitExitModel(nn.Module):
    """The large model cut after block ``split_at``, with a bottleneck and an exit head there.

    Parameters
    ----------
    large : BlockModel
        The trained large model (deep-copied and frozen; the caller's model is untouched).
    input_shape : tuple of int
        ``(channels, *spatial)`` of one input sample.
    split_at : int
        Blocks ``[0, split_at)`` run on the device, 1..n_blocks.
    code_channels : int
        Channels of the bottleneck code (its resolution is half the block output's).
    code_bits : int
        Bits per code value on air, 2..8.
    exit_widths : tuple of int
        Channels of the exit head's strided convolutions (each halves the resolution).

    Attributes
    ----------
    signed : bool
        Whether the activation at the cut takes both signs (`cut_is_signed`): then the
        decoder's output is linear, else it ends in ReLU.
    """

    def __init__(
        self,
        large: BlockModel,
        input_shape: tuple[int, ...],
        *,
        split_at: int = 1,
        code_channels: int = 4,
        code_bits: int = 4,
        exit_widths: tuple[int, ...] = (12, 24),
    ) -> None:
        super().__init__()
        n_blocks = len(large.blocks)
        if not 1 <= split_at <= n_blocks:
            raise ValueError(f"split_at must be in 1..{n_blocks} (blocks), got {split_at}")
        if code_channels < 1 or not exit_widths or min(exit_widths) < 1:
            raise ValueError(
                "code_channels and every exit width must be >= 1 (at least one width); got "
                f"code_channels={code_channels}, exit_widths={exit_widths}"
            )
        if not 2 <= code_bits <= 8:
            raise ValueError(f"code_bits must be in 2..8, got {code_bits}")
        frozen = copy.deepcopy(large)
        self.split_at = split_at
        self.code_bits = code_bits
        self.input_shape = tuple(input_shape)
        self.device_blocks = Frozen(nn.Sequential(*frozen.blocks[:split_at]))
        self.edge_blocks = Frozen(nn.Sequential(*frozen.blocks[split_at:], frozen.head))
        with torch.no_grad():
            probe = self.device_blocks(torch.zeros((1, *self.input_shape)))
        self.activation_shape = tuple(int(d) for d in probe.shape[1:])
        dims = len(self.activation_shape) - 1
        c_k = self.activation_shape[0]
        with torch.no_grad():
            num_classes = int(
                frozen.head(
                    frozen.forward_until(torch.zeros((1, *self.input_shape)), n_blocks)
                ).shape[1]
            )
        self.signed = cut_is_signed(self.device_blocks, self.input_shape)
        self.encoder = Encoder(dims, c_k, code_channels)
        self.decoder = Decoder(dims, code_channels, c_k, signed=self.signed)
        self.exit = exit_head(dims, c_k, tuple(exit_widths), num_classes)
        with torch.no_grad():
            self.code_shape = tuple(int(d) for d in self.encoder(probe).shape[1:])

    @property
    def code_elements(self) -> int:
        """Values in one sample's code."""
        return math.prod(self.code_shape)

    def encode(self, x: Tensor) -> Tensor:
        """The device's code of ``x``, quantized to ``code_bits`` (straight-through)."""
        return quantize_ste(self.encoder(self.device_blocks(x)), self.code_bits)

    def final_logits(self, x: Tensor) -> Tensor:
        """Logits of the edge from the received code."""
        out: Tensor = self.edge_blocks(self.decoder(self.encode(x), self.activation_shape[1:]))
        return out

    def exit_logits(self, x: Tensor) -> Tensor:
        """Logits of the device's exit head."""
        out: Tensor = self.exit(self.device_blocks(x))
        return out

    def forward(self, x: Tensor) -> Tensor:
        """The edge's logits (what `train` optimises for the bottleneck)."""
        return self.final_logits(x)


class _ExitOnly(nn.Module):
    def __init__(self, model: SplitExitModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.exit_logits(x)


def train_split_exit(
    model: SplitExitModel,
    x: np.ndarray,
    y: np.ndarray,
    spec: TrainingSpec,
    *,
    part: Literal["exit", "bottleneck"],
    seed: int,
    progress: ProgressCallback | None = None,
) -> TrainingReport:
    """Train the exit head or the bottleneck of ``model`` in place with `train` and ``spec``.

    The other part and the large model's layers are not touched (they get no gradient).
    """
    if part == "exit":
        report = train(_ExitOnly(model), x, y, spec, seed=seed, progress=progress)
    elif part == "bottleneck":
        report = train(model, x, y, spec, seed=seed, progress=progress)
    else:
        raise ValueError(f"part must be 'exit' or 'bottleneck', got {part!r}")
    model.eval()
    return report


@torch.no_grad()
def split_exit_logits(
    model: SplitExitModel, x: npt.ArrayLike, *, batch_size: int = 1024
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Exit-head and edge (through the quantized code) logits of every sample, float32 (n, C)."""
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float32))
    was_training = model.training
    model.eval()
    try:
        exits, finals = [], []
        for xb in torch.split(inputs, batch_size):
            h = model.device_blocks(xb)
            exits.append(model.exit(h))
            code = quantize_ste(model.encoder(h), model.code_bits)
            finals.append(model.edge_blocks(model.decoder(code, model.activation_shape[1:])))
    finally:
        model.train(was_training)
    return (
        torch.cat(exits).numpy().astype(np.float32),
        torch.cat(finals).numpy().astype(np.float32),
    )
