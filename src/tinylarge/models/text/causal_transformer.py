"""A small GPT: the decoder-only transformer of the draft and target language models.

Pre-LN blocks (Xiong et al., ICML 2020) of causal multi-head self-attention and a 4x GELU MLP,
learned position embeddings, and an output layer tied to the token embedding (Press & Wolf,
EACL 2017), as in GPT-2 (Radford et al. 2019). Attention is `F.scaled_dot_product_attention`.

`CausalTransformer.forward` is teacher forcing over a whole window (``is_causal=True``, correct
only without cached keys: PyTorch aligns that mask top-left). `CausalTransformer.step` runs new
tokens against cached keys and values with an explicit boolean mask, so rows of one batch may
have different cache lengths and different numbers of new tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Keys and values of one layer: two tensors of shape (batch, heads, tokens, head width).
LayerCache = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class LmArchitecture:
    """Shape of a `CausalTransformer`.

    Attributes
    ----------
    vocab_size : int
        Token ids ``0 .. vocab_size - 1``.
    d_model : int
        Width of the residual stream; a multiple of ``heads``.
    layers, heads : int
    context : int
        Longest window in tokens (learned positions ``0 .. context - 1``); at least 2.
    """

    vocab_size: int
    d_model: int
    layers: int
    heads: int
    context: int

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "layers", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.context < 2:
            raise ValueError(f"context must be >= 2 tokens, got {self.context}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> LmArchitecture:
        """Inverse of `to_dict`; ``ValueError`` naming missing or unknown keys."""
        expected = set(cls.__dataclass_fields__)
        if set(document) != expected:
            raise ValueError(
                f"an LM architecture needs exactly the keys {sorted(expected)}, got "
                f"{sorted(document)}"
            )
        return cls(**{k: int(v) for k, v in document.items()})


#: Named sizes (without the vocabulary, which the tokenizer sets): (d_model, layers, heads,
#: context). With a 1,024-token vocabulary: toy ~39 k, draft ~0.14 M and target ~2.9 M params.
LM_SIZES: dict[str, tuple[int, int, int, int]] = {
    "toy": (24, 2, 2, 64),
    "draft": (48, 3, 4, 128),
    "target": (192, 6, 6, 128),
}


def lm_architecture(size: str, vocab_size: int) -> LmArchitecture:
    """The `LmArchitecture` of a named size; ``ValueError`` listing the sizes."""
    if size not in LM_SIZES:
        raise ValueError(f"unknown language-model size {size!r}; sizes: {', '.join(LM_SIZES)}")
    d_model, layers, heads, context = LM_SIZES[size]
    return LmArchitecture(vocab_size, d_model, layers, heads, context)


def macs_per_token(architecture: LmArchitecture, context_length: int) -> int:
    """Multiply-accumulates to predict one token attending to ``context_length`` tokens
    (itself included) with a KV cache.

    Per layer: ``12 d^2`` in the Q/K/V, output and MLP projections plus ``2 d n`` in attention
    (scores against ``n`` keys, weighted sum of ``n`` values); then ``d V`` in the tied output
    layer. Embedding lookups, norms, softmax and GELU are not MACs.
    """
    if not 1 <= context_length <= architecture.context:
        raise ValueError(
            f"context_length must lie in 1..{architecture.context}, got {context_length}"
        )
    d = architecture.d_model
    per_layer = 12 * d * d + 2 * d * context_length
    return architecture.layers * per_layer + d * architecture.vocab_size


class _Block(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, architecture: LmArchitecture) -> None:
        super().__init__()
        d = architecture.d_model
        self.heads = architecture.heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(
        self, x: Tensor, past: LayerCache | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, LayerCache]:
        """``x`` (B, N, d); ``past`` keys/values (B, H, P, d/H) with ``mask`` (B, 1, N, P + N),
        True where a query may attend; without ``past``, causal attention over ``x``. Returns
        the new ``x`` and this call's keys and values (B, H, N, d/H)."""
        batch, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=2)
        q, k, v = (t.view(batch, n, self.heads, d // self.heads).transpose(1, 2)
                   for t in (q, k, v))  # fmt: skip
        if past is None:
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            keys, values = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            attended = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, n, d))
        x = x + self.out(F.gelu(self.fc(self.norm2(x))))
        return x, (k, v)


class CausalTransformer(nn.Module):
    """Decoder-only transformer: token ids (B, T) to next-token logits (B, T, V)."""

    def __init__(self, architecture: LmArchitecture) -> None:
        super().__init__()
        self.architecture = architecture
        a = architecture
        self.token_embedding = nn.Embedding(a.vocab_size, a.d_model)
        self.position_embedding = nn.Embedding(a.context, a.d_model)
        self.blocks = nn.ModuleList(_Block(a) for _ in range(a.layers))
        self.final_norm = nn.LayerNorm(a.d_model)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's: N(0, 0.02) weights, zero biases, residual projections / sqrt(2 layers)."""
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                residual = name.endswith(("proj.weight", "out.weight"))
                scale = math.sqrt(2 * self.architecture.layers) if residual else 1.0
                nn.init.normal_(p, 0.0, 0.02 / scale)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def _head(self, x: Tensor) -> Tensor:
        return F.linear(self.final_norm(x), self.token_embedding.weight)

    def forward(self, tokens: Tensor) -> Tensor:
        """Teacher forcing: ``tokens`` (B, T) int64, T <= context -> logits (B, T, V)."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x, _ = block(x)
        return self._head(x)

    def prime(self, tokens: Tensor) -> tuple[Tensor, list[LayerCache]]:
        """Like `forward`, also returning every layer's keys and values (B, H, T, d/H)."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        caches = []
        for block in self.blocks:
            x, cache = block(x)
            caches.append(cache)
        return self._head(x), caches

    def step(
        self, tokens: Tensor, positions: Tensor, past: list[LayerCache], mask: Tensor
    ) -> tuple[Tensor, list[LayerCache]]:
        """New tokens against cached keys and values.

        Parameters
        ----------
        tokens, positions : Tensor
            (B, N) int64: the new tokens and their positions (< context).
        past : list of (Tensor, Tensor)
            Per layer, cached keys and values (B, H, P, d/H) (rows padded to a common P).
        mask : Tensor
            (B, 1, N, P + N) bool, True where a query may attend (padding masked out).

        Returns
        -------
        logits : Tensor
            (B, N, V).
        new : list of (Tensor, Tensor)
            Per layer, the keys and values of the new tokens (B, H, N, d/H).
        """
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        new = []
        for block, cache in zip(self.blocks, past, strict=True):
            x, fresh = block(x, cache, mask)
            new.append(fresh)
        return self._head(x), new
