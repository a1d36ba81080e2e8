"""Compression of clients' model updates before upload, with the bytes each one costs on air.

An update is the difference between a client's state after local training and the global state
it started from (float tensors with a leading client axis). A compressor returns what the
server decodes and each client's upload size; lossy schemes therefore change what is learnt,
and their accuracy cost shows in the round records.

- ``none``: float32, 4 bytes per value.
- ``int8``: per client and tensor, symmetric linear quantization ``q = round(v / s)`` in
  [-127, 127] with ``s = max|v| / 127``; ``numel`` bytes + a float32 scale (4 bytes) per tensor.
- ``topk``: per client and tensor the ``ceil(fraction * numel)`` largest-magnitude values
  (Aji & Heafield, "Sparse Communication for Distributed Gradient Descent", EMNLP 2017, without
  error feedback); 4 bytes per kept value plus their positions, as the cheaper of a bitmap
  (``ceil(numel / 8)`` bytes) or one index per value (1, 2 or 4 bytes for tensors up to 2^8,
  2^16, 2^32 values).

Integer buffers (batch-norm step counters) are not sent: the server knows how many steps each
client ran. They pass through unchanged at 0 bytes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

State = dict[str, Tensor]
IntArray = npt.NDArray[np.int64]

FLOAT32_BYTES = 4
SCALE_BYTES = 4


def index_bytes(numel: int) -> int:
    """Bytes of one position index into a tensor of ``numel`` values: 1, 2 or 4."""
    return 1 if numel <= 2**8 else 2 if numel <= 2**16 else 4


def topk_payload_bytes(numel: int, kept: int) -> int:
    """Bytes of ``kept`` float32 values of a ``numel``-value tensor with their positions."""
    positions = min(math.ceil(numel / 8), kept * index_bytes(numel))
    return kept * FLOAT32_BYTES + positions


class UpdateCompressor(ABC):
    """Encodes stacked client updates; returns the decoded updates and bytes per client."""

    name: ClassVar[str]

    def compress(self, delta: State) -> tuple[State, IntArray]:
        """Decoded updates (same shapes) and each client's upload size, bytes (int64)."""
        clients = {int(v.shape[0]) for v in delta.values()}
        if len(clients) != 1:
            raise ValueError(f"every tensor needs the same leading client axis, got {clients}")
        n = clients.pop()
        out: State = {}
        total = np.zeros(n, dtype=np.int64)
        for key, value in delta.items():
            if not value.dtype.is_floating_point:
                out[key] = value
                continue
            flat = value.reshape(n, -1)
            decoded, size = self._tensor(flat)
            out[key] = decoded.reshape(value.shape)
            total += size
        return out, total

    @abstractmethod
    def _tensor(self, flat: Tensor) -> tuple[Tensor, int]:
        """Encode+decode one tensor (clients, numel); bytes per client."""


class NoCompression(UpdateCompressor):
    name = "none"

    def _tensor(self, flat: Tensor) -> tuple[Tensor, int]:
        return flat, FLOAT32_BYTES * flat.shape[1]


class Int8Compression(UpdateCompressor):
    name = "int8"

    def _tensor(self, flat: Tensor) -> tuple[Tensor, int]:
        peak = flat.abs().amax(dim=1, keepdim=True)
        scale = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
        q = torch.clamp(torch.round(flat / scale), -127, 127)
        return q * scale, flat.shape[1] + SCALE_BYTES


class TopKCompression(UpdateCompressor):
    name = "topk"

    def __init__(self, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"top-k fraction must lie in (0, 1], got {fraction}")
        self.fraction = fraction

    def _tensor(self, flat: Tensor) -> tuple[Tensor, int]:
        numel = flat.shape[1]
        kept = max(1, math.ceil(self.fraction * numel))
        idx = flat.abs().topk(kept, dim=1).indices
        out = torch.zeros_like(flat).scatter_(1, idx, flat.gather(1, idx))
        return out, topk_payload_bytes(numel, kept)


COMPRESSIONS = ("none", "int8", "topk")


def make_compressor(name: str, *, topk_fraction: float = 0.1) -> UpdateCompressor:
    """The compressor called ``name`` (one of `COMPRESSIONS`)."""
    if name == "none":
        return NoCompression()
    if name == "int8":
        return Int8Compression()
    if name == "topk":
        return TopKCompression(topk_fraction)
    raise ValueError(f"unknown update compression {name!r}; known: {', '.join(COMPRESSIONS)}")


def state_bytes(state: State) -> int:
    """Bytes of a model state sent as float32 (integer buffers not sent)."""
    return FLOAT32_BYTES * sum(v.numel() for v in state.values() if v.dtype.is_floating_point)
