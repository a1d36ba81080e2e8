"""`tiny_cnn`: a microcontroller-sized CNN (1-D for radio frames, 2-D for images).

Three conv-BN-ReLU-maxpool blocks and a global-average-pool + linear head: only ops that an
int8 microcontroller runtime (TensorFlow Lite Micro, CMSIS-NN) executes natively. At the
default width (8) on the radio task it has about 1.7 k parameters and 80 k MACs per frame;
width 16 gives about 6.3 k parameters.
"""

from __future__ import annotations

from torch import nn

from tinylarge.models.blocks import BlockModel, classifier_head, conv_bn_relu, conv_dims
from tinylarge.models.registry import register_model


@register_model("tiny_cnn", "3-block CNN for microcontrollers (~1.7 k params at width 8 on radio)")
def tiny_cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    width: int = 8,
    kernel_size: int = 0,
) -> BlockModel:
    """Build the tiny CNN.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, length)`` (1-D convolutions) or ``(channels, height, width)`` (2-D).
    num_classes : int
        Number of classes.
    width : int
        Channels of the first block; later blocks have ``2 * width``.
    kernel_size : int
        Kernel of the first block (later blocks shrink it); 0 picks 7 in 1-D and 3 in 2-D.
    """
    dims = conv_dims(input_shape)
    if width < 1 or num_classes < 2 or kernel_size < 0:
        raise ValueError(
            f"tiny_cnn needs width >= 1, num_classes >= 2, kernel_size >= 0; got width={width}, "
            f"num_classes={num_classes}, kernel_size={kernel_size}"
        )
    k1 = kernel_size or (7 if dims == 1 else 3)
    k2, k3 = max(3, k1 - 2) | 1, 3
    size = min(input_shape[1:])
    blocks: list[nn.Module] = []
    channels = [input_shape[0], width, 2 * width, 2 * width]
    for i, k in enumerate((k1, k2, k3)):
        pool = size >= 2
        blocks.append(conv_bn_relu(dims, channels[i], channels[i + 1], k, pool=pool))
        size = size // 2 if pool else size
    return BlockModel(blocks, classifier_head(dims, 2 * width, num_classes))
