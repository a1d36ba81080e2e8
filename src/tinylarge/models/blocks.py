"""Shared building blocks: dimension-generic layers and a partitionable block model.

Models are sequences of blocks, so later layers can cut them (split computing: the device runs
blocks ``[0, k)``, the edge the rest) or attach exits between blocks.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv(dims: int, c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Module:
    """A bias-free ``same``-padded convolution (batch norm follows) in 1-D or 2-D."""
    layer = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
    return layer(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)


def batch_norm(dims: int, channels: int) -> nn.Module:
    return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims](channels)


def max_pool(dims: int) -> nn.Module:
    return {1: nn.MaxPool1d, 2: nn.MaxPool2d}[dims](2)


def global_avg_pool(dims: int) -> nn.Module:
    return {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}[dims](1)


def conv_bn_relu(dims: int, c_in: int, c_out: int, kernel: int, *, pool: bool) -> nn.Sequential:
    """A ``same``-padded convolution (`conv`), batch norm and ReLU; then a 2x max pool when
    ``pool``."""
    layers = [conv(dims, c_in, c_out, kernel), batch_norm(dims, c_out), nn.ReLU()]
    if pool:
        layers.append(max_pool(dims))
    return nn.Sequential(*layers)


def classifier_head(dims: int, channels: int, num_classes: int) -> nn.Sequential:
    """Global average pool, flatten and a linear layer: ``channels`` feature maps -> logits."""
    return nn.Sequential(global_avg_pool(dims), nn.Flatten(), nn.Linear(channels, num_classes))


def conv_dims(input_shape: tuple[int, ...]) -> int:
    """Spatial dimensions of a ``(channels, *spatial)`` input: 1 or 2; else ``ValueError``."""
    if len(input_shape) not in (2, 3) or min(input_shape) < 1:
        raise ValueError(
            f"input_shape must be (channels, length) or (channels, height, width), "
            f"got {input_shape}"
        )
    return len(input_shape) - 1


class BlockModel(nn.Module):
    """A model that is a sequence of blocks followed by a classifier head.

    Parameters
    ----------
    blocks : sequence of nn.Module
        Feature blocks, applied in order.
    head : nn.Module
        Maps the last block's output to logits of shape ``(batch, num_classes)``.
    """

    def __init__(self, blocks: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward_until(self, x: Tensor, k: int) -> Tensor:
        """Output of blocks ``[0, k)`` (``k = 0`` returns the input)."""
        for block in self.blocks[:k]:
            x = block(x)
        return x

    def forward_from(self, h: Tensor, k: int) -> Tensor:
        """Logits from the output of block ``k - 1``."""
        for block in self.blocks[k:]:
            h = block(h)
        out: Tensor = self.head(h)
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_from(x, 0)
