"""`large_resnet`: the edge/cloud model, a residual network (1-D for radio, 2-D for images).

A stem convolution and four stages of pre-activation-free basic residual blocks (He et al.,
"Deep Residual Learning for Image Recognition", CVPR 2016) with channel widths
``width x (1, 2, 4, 8)``; each stage after the first halves the resolution while it is at
least 2. At the default width (24) on the radio task it has about 545 k parameters.
"""

from __future__ import annotations

from torch import Tensor, nn

from tinylarge.models.blocks import (
    BlockModel,
    batch_norm,
    classifier_head,
    conv,
    conv_bn_relu,
    conv_dims,
)
from tinylarge.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3-wide conv-BN layers with an identity (or 1x1 projection) shortcut, then ReLU."""

    def __init__(self, dims: int, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(dims, c_in, c_out, 3, stride),
            batch_norm(dims, c_out),
            nn.ReLU(),
            conv(dims, c_out, c_out, 3),
            batch_norm(dims, c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                conv(dims, c_in, c_out, 1, stride), batch_norm(dims, c_out)
            )
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.body(x) + self.shortcut(x))
        return out


@register_model(
    "large_resnet", "residual network for the edge/cloud (~545 k params at width 24 on radio)"
)
def large_resnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    width: int = 24,
    blocks_per_stage: int = 2,
) -> BlockModel:
    """Build the large residual network.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, length)`` (1-D) or ``(channels, height, width)`` (2-D).
    num_classes : int
        Number of classes.
    width : int
        Channels of the first stage; stages have ``width x (1, 2, 4, 8)``.
    blocks_per_stage : int
        Residual blocks per stage.
    """
    dims = conv_dims(input_shape)
    if width < 1 or blocks_per_stage < 1 or num_classes < 2:
        raise ValueError(
            f"large_resnet needs width >= 1, blocks_per_stage >= 1, num_classes >= 2; got "
            f"width={width}, blocks_per_stage={blocks_per_stage}, num_classes={num_classes}"
        )
    size = min(input_shape[1:])
    halve = size >= 32  # long frames: halve once in the stem, as ResNet does
    stem = conv_bn_relu(dims, input_shape[0], width, 7 if dims == 1 else 3, pool=halve)
    size = size // 2 if halve else size
    blocks: list[nn.Module] = [stem]
    c_in = width
    for stage, factor in enumerate((1, 2, 4, 8)):
        c_out = width * factor
        stride = 2 if stage > 0 and size >= 2 else 1
        size = size // stride
        for i in range(blocks_per_stage):
            blocks.append(BasicBlock(dims, c_in, c_out, stride if i == 0 else 1))
            c_in = c_out
    return BlockModel(blocks, classifier_head(dims, c_in, num_classes))
