"""`rf_transformer`: the RF foundation model, a pre-norm transformer encoder over IQ patches.

A frame of ``L`` complex samples (input ``(2, L)``: I and Q) is cut into ``L / P`` patches of
``P`` samples; a patch ``[I_0..I_{P-1}, Q_0..Q_{P-1}]`` is embedded by one linear layer, a
learned position embedding is added, and pre-norm encoder layers (LayerNorm -> multi-head
self-attention -> residual; LayerNorm -> GELU MLP -> residual; Xiong et al., "On Layer
Normalization in the Transformer Architecture", ICML 2020) follow. The design is that of the
wireless foundation models it is modelled on: LWM (Alikhani et al., arXiv 2411.08872: 16-element
patches, 12 layers of width 64, masked channel modelling) and SpectrumFM (Zhou et al.,
arXiv 2505.06256: masked IQ reconstruction, LoRA fine-tuning).

Between blocks the residual stream is kept channel-first, ``(batch, width, tokens)``, so the
model is a `BlockModel` like the ResNet: split computing and early exits cut it after any
layer, and the grafts of `tinylarge.models.split_exit` (1-D convolutions) fit it unchanged.

Heads: ``head`` (mean-pooled tokens -> class logits, what ``forward`` returns) and
``snr_head`` (mean-pooled tokens -> SNR estimate in dB); pretraining adds ``reconstruction``
(each token -> its patch's ``2P`` values).

Sizes (`RF_TRANSFORMER_SIZES`): ``xs`` is a toy for tests; ``s`` (0.80 M parameters) is what a
2-core CPU pretrains in minutes and the package ships pretrained; ``m``, ``l`` and ``xl``
(4.8 M, 14 M, 85 M) are for a Ray cluster or a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tinylarge.models.blocks import BlockModel
from tinylarge.models.checkpoints import builtin_checkpoint, load_encoder_weights
from tinylarge.models.registry import register_model


@dataclass(frozen=True)
class TransformerSize:
    """One rung of the size ladder: width (model dimension), layers and attention heads."""

    width: int
    layers: int
    heads: int
    mlp_ratio: int = 4


#: The size ladder. Parameter counts are for 128-sample frames, 8-sample patches, 8 classes.
RF_TRANSFORMER_SIZES: dict[str, TransformerSize] = {
    "xs": TransformerSize(width=32, layers=2, heads=2),  # ~27 k: tests only
    "s": TransformerSize(width=128, layers=4, heads=4),  # ~0.80 M
    "m": TransformerSize(width=256, layers=6, heads=8),  # ~4.8 M
    "l": TransformerSize(width=384, layers=8, heads=8),  # ~14 M
    "xl": TransformerSize(width=768, layers=12, heads=12),  # ~85 M
}


def patchify(x: Tensor, patch_samples: int) -> Tensor:
    """``(batch, 2, L)`` IQ frames -> ``(batch, L / P, 2P)`` patches ``[I_0..I_{P-1}, Q_0..]``."""
    batch, channels, length = x.shape
    tokens = length // patch_samples
    return (
        x.reshape(batch, channels, tokens, patch_samples)
        .permute(0, 2, 1, 3)
        .reshape(batch, tokens, channels * patch_samples)
    )


class PatchEmbedding(nn.Module):
    """IQ frame -> channel-first tokens ``(batch, width, tokens)``: linear patch embedding plus a
    learned position embedding; masked patches (pretraining) are replaced by a learned token."""

    def __init__(self, patch_samples: int, tokens: int, width: int) -> None:
        super().__init__()
        self.patch_samples = patch_samples
        self.proj = nn.Linear(2 * patch_samples, width)
        self.position = nn.Parameter(torch.zeros(1, tokens, width))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask``: optional bool ``(batch, tokens)``, True where the patch is hidden."""
        tokens = self.proj(patchify(x, self.patch_samples))
        if mask is not None:
            tokens = torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        out: Tensor = (tokens + self.position).transpose(1, 2)
        return out


class SelfAttention(nn.Module):
    """Multi-head self-attention with a packed ``qkv`` projection and an output ``proj``
    (plain `nn.Linear` layers, so LoRA adapters and ONNX export see ordinary matmuls)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, h: Tensor) -> Tensor:
        batch, tokens, width = h.shape
        qkv = self.qkv(h).reshape(batch, tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        projected: Tensor = self.proj(out.transpose(1, 2).reshape(batch, tokens, width))
        return projected


class EncoderLayer(nn.Module):
    """Pre-norm encoder layer on channel-first tokens ``(batch, width, tokens)``."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp_ratio * width)
        self.fc2 = nn.Linear(mlp_ratio * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor) -> Tensor:
        t = h.transpose(1, 2)
        t = t + self.drop(self.attn(self.norm1(t)))
        t = t + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(t)))))
        out: Tensor = t.transpose(1, 2)
        return out


class PooledHead(nn.Module):
    """Final LayerNorm over the width, mean over tokens, then a linear layer."""

    def __init__(self, width: int, outputs: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, outputs)

    def pooled(self, h: Tensor) -> Tensor:
        """``(batch, width, tokens)`` -> normalised, mean-pooled features ``(batch, width)``."""
        pooled: Tensor = self.norm(h.transpose(1, 2)).mean(dim=1)
        return pooled

    def forward(self, h: Tensor) -> Tensor:
        out: Tensor = self.linear(self.pooled(h))
        return out


class RfTransformer(BlockModel):
    """The RF foundation model: blocks ``[PatchEmbedding, EncoderLayer x layers]`` and heads.

    Attributes
    ----------
    head : PooledHead
        Class logits (what ``forward`` returns).
    snr_head : nn.Linear
        SNR estimate, dB, from the class head's pooled features.
    reconstruction : nn.Linear
        Pretraining only: each token (after the class head's norm) -> its patch's ``2P`` values.
    """

    def __init__(
        self,
        frame_samples: int,
        num_classes: int,
        size: TransformerSize,
        *,
        patch_samples: int,
        dropout: float,
    ) -> None:
        tokens = frame_samples // patch_samples
        blocks: list[nn.Module] = [PatchEmbedding(patch_samples, tokens, size.width)]
        blocks += [
            EncoderLayer(size.width, size.heads, size.mlp_ratio, dropout)
            for _ in range(size.layers)
        ]
        super().__init__(blocks, PooledHead(size.width, num_classes))
        self.patch_samples = patch_samples
        self.tokens = tokens
        self.width = size.width
        self.snr_head = nn.Linear(size.width, 1)
        self.reconstruction = nn.Linear(size.width, 2 * patch_samples)
        self.apply(_init_weights)

    @property
    def embedding(self) -> PatchEmbedding:
        embedding = self.blocks[0]
        assert isinstance(embedding, PatchEmbedding)
        return embedding

    @property
    def class_head(self) -> PooledHead:
        assert isinstance(self.head, PooledHead)
        return self.head

    def encode(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Channel-first tokens after the last layer, ``(batch, width, tokens)``."""
        h: Tensor = self.embedding(x, mask)
        for block in self.blocks[1:]:
            h = block(h)
        return h

    def features(self, x: Tensor) -> Tensor:
        """Pooled, normalised features ``(batch, width)`` (what the heads and probes see)."""
        return self.class_head.pooled(self.encode(x))

    def forward_heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits ``(batch, classes)`` and the SNR estimate ``(batch,)`` in dB."""
        pooled = self.features(x)
        return self.class_head.linear(pooled), self.snr_head(pooled).squeeze(-1)

    def reconstruct(self, x: Tensor, mask: Tensor) -> Tensor:
        """Predicted patches ``(batch, tokens, 2P)`` from frames with ``mask``ed patches hidden."""
        h = self.encode(x, mask)
        out: Tensor = self.reconstruction(self.class_head.norm(h.transpose(1, 2)))
        return out


def _init_weights(module: nn.Module) -> None:
    """ViT-style initialisation: truncated normal (std 0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_rf_transformer(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    size: str = "s",
    patch_samples: int = 8,
    dropout: float = 0.0,
) -> RfTransformer:
    """Build an untrained `RfTransformer` (the registered builder adds pretrained weights)."""
    if size not in RF_TRANSFORMER_SIZES:
        raise ValueError(
            f"rf_transformer: unknown size {size!r}; sizes: {', '.join(RF_TRANSFORMER_SIZES)}"
        )
    if len(input_shape) != 2 or input_shape[0] != 2:
        raise ValueError(
            f"rf_transformer takes IQ frames of shape (2, samples), got input_shape {input_shape}"
        )
    if patch_samples < 1 or input_shape[1] % patch_samples:
        raise ValueError(
            f"rf_transformer: patch_samples ({patch_samples}) must divide the frame length "
            f"({input_shape[1]})"
        )
    if num_classes < 2 or not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"rf_transformer needs num_classes >= 2 and 0 <= dropout < 1; got "
            f"num_classes={num_classes}, dropout={dropout}"
        )
    spec = RF_TRANSFORMER_SIZES[size]
    if spec.width % spec.heads:
        raise ValueError(f"width {spec.width} is not divisible by {spec.heads} heads")
    return RfTransformer(
        input_shape[1], num_classes, spec, patch_samples=patch_samples, dropout=dropout
    )


def parameter_count(size: str, frame_samples: int = 128, patch_samples: int = 8) -> int:
    """Parameters of the ``size`` model for 8 classes (class, SNR and reconstruction heads)."""
    model = build_rf_transformer((2, frame_samples), 8, size=size, patch_samples=patch_samples)
    return sum(p.numel() for p in model.parameters())


def attention_macs(size: str, tokens: int) -> int:
    """Multiply-accumulates of the attention products (QK^T and AV) per frame; linear layers are
    counted from the modules themselves."""
    spec = RF_TRANSFORMER_SIZES[size]
    return 2 * spec.layers * tokens * tokens * spec.width


def checkpoint_directory(checkpoint: str, size: str) -> Path | None:
    """Where the ``checkpoint`` option points: ``"builtin"`` -> the package's checkpoint of
    ``size`` (`builtin_checkpoint`), ``"none"`` -> None (random initialisation), anything else
    -> that directory (made by `tinylarge pretrain --out DIR`)."""
    if checkpoint == "none":
        return None
    if checkpoint == "builtin":
        return builtin_checkpoint(f"rf_transformer_{size}")
    path = Path(checkpoint).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"rf_transformer: checkpoint {checkpoint!r} is not 'builtin', 'none' or a directory "
            "made by `tinylarge pretrain --out DIR`"
        )
    return path


@register_model(
    "rf_transformer",
    "RF foundation model: transformer over IQ patches, pretrained by masked patch modelling "
    "(0.80 M params at size s, shipped pretrained)",
)
def rf_transformer(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    size: str = "s",
    patch_samples: int = 8,
    dropout: float = 0.0,
    checkpoint: str = "builtin",
) -> RfTransformer:
    """Build the RF foundation model, with pretrained encoder weights unless ``checkpoint`` is
    ``"none"``.

    Parameters
    ----------
    input_shape : tuple of int
        ``(2, samples)``: I and Q of a frame; ``samples`` divisible by ``patch_samples``.
    num_classes : int
        Outputs of the class head (the task heads are always freshly initialised).
    size : str
        Rung of `RF_TRANSFORMER_SIZES`: ``xs``, ``s``, ``m``, ``l``, ``xl``.
    patch_samples : int
        Complex samples per patch (token).
    dropout : float
        Dropout in attention and after each residual branch while training.
    checkpoint : str
        ``"builtin"`` (the checkpoint the package ships for ``size``), ``"none"`` or the
        directory of a `tinylarge pretrain` checkpoint.
    """
    model = build_rf_transformer(
        input_shape, num_classes, size=size, patch_samples=patch_samples, dropout=dropout
    )
    directory = checkpoint_directory(checkpoint, size)
    if directory is not None:
        load_encoder_weights(model, directory)
    return model


__all__ = [
    "RF_TRANSFORMER_SIZES",
    "RfTransformer",
    "TransformerSize",
    "attention_macs",
    "build_rf_transformer",
    "checkpoint_directory",
    "parameter_count",
    "patchify",
    "rf_transformer",
]
