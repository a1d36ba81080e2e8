"""The draft distribution on the uplink: the full vocabulary in fp16, or CU-HLM's truncated,
quantized form (Oh et al., arXiv 2505.11788).

Speculative verification is exact only if the edge verifies with the very distribution the
device drew its token from. So the device first *prepares* its distribution
(`DistributionCodec.prepare`): ``q_sent`` is what the payload can carry, and the device draws
its draft token from ``q_sent``; the edge decodes exactly ``q_sent`` (``decode(encode(q_sent))
== q_sent``, bit for bit, and ``prepare`` is idempotent for the full codec).

Both codecs carry probabilities relative to the most probable token (whose value is exactly 1),
which keeps the small ones representable; ``q_sent`` is the decoded values divided by their
sum (float64).

- ``full``: ``V`` little-endian IEEE 754 binary16 values, ``2 V`` bytes. Probabilities below
  about 3e-8 of the largest round to zero (binary16's smallest subnormal is 2^-24), so those
  tokens are never drafted.
- ``truncated``: the ``top_k`` most probable tokens, or, when ``top_p`` is set, the fewest
  whose mass reaches ``top_p`` (``top_k`` is then not used), each with its probability
  relative to the largest quantized to ``bits`` bits: ``code = round(L q / q_max)``,
  ``L = 2^bits - 1``, clipped to ``[1, L]`` so that every kept token stays possible. The
  payload is one bit string, most significant bit first, zero-padded to whole bytes:
  ``k - 1`` in ``b = max(1, ceil(log2 V))`` bits, then ``k`` pairs (token id in ``b`` bits,
  code in ``bits`` bits) by increasing token id: ``ceil((b + k (b + bits)) / 8)`` bytes
  (`truncated_payload_bytes`). With V = 1024, k = 16, 8 bits: 38 bytes instead of 2,048.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from tinylarge.config.hybrid_lm_config import TruncationSpec
from tinylarge.integrate.hybrid_lm.speculative import all_finite

CodecKind = Literal["full", "truncated"]


def id_bits(vocab: int) -> int:
    """Bits of one token id in a truncated payload, ``max(1, ceil(log2 V))``."""
    if vocab < 1:
        raise ValueError(f"the vocabulary must hold at least one token, got {vocab}")
    return max(1, (vocab - 1).bit_length())


def full_payload_bytes(vocab: int) -> int:
    """Bytes of a full fp16 distribution over ``vocab`` tokens, ``2 V``."""
    id_bits(vocab)
    return 2 * vocab


def truncated_payload_bytes(kept: int, vocab: int, bits: int) -> int:
    """Bytes of a truncated payload with ``kept`` tokens, ``ceil((b + k (b + bits)) / 8)``."""
    b = id_bits(vocab)
    if not 1 <= kept <= vocab:
        raise ValueError(f"kept tokens must lie in 1..{vocab}, got {kept}")
    return math.ceil((b + kept * (b + bits)) / 8)


def _to_bits(values: NDArray[np.int64], width: int) -> NDArray[np.uint8]:
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] >> shifts) & 1).astype(np.uint8)


def _from_bits(bits: NDArray[np.uint8]) -> NDArray[np.int64]:
    weights = 1 << np.arange(bits.shape[-1] - 1, -1, -1, dtype=np.int64)
    return np.asarray(bits.astype(np.int64) @ weights)


@dataclass(frozen=True)
class DistributionCodec:
    """How a draft distribution is put on the uplink (module docstring).

    Attributes
    ----------
    kind : {"full", "truncated"}
    top_k : int
        Tokens kept by ``truncated`` when ``top_p`` is None.
    top_p : float or None
        ``truncated``: keep the fewest tokens whose mass reaches this instead.
    bits : int
        ``truncated``: bits per quantized probability, 2..16.
    """

    kind: CodecKind = "full"
    top_k: int = 16
    top_p: float | None = None
    bits: int = 8

    def __post_init__(self) -> None:
        if self.kind not in ("full", "truncated"):
            raise ValueError(f"codec kind must be 'full' or 'truncated', got {self.kind!r}")
        if self.top_k < 1 or not 2 <= self.bits <= 16:
            raise ValueError(f"need top_k >= 1 and bits in 2..16, got {self.top_k}, {self.bits}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")

    @classmethod
    def full(cls) -> DistributionCodec:
        """The whole vocabulary in fp16."""
        return cls("full")

    @classmethod
    def truncated(
        cls, top_k: int = 16, top_p: float | None = None, bits: int = 8
    ) -> DistributionCodec:
        """CU-HLM's truncated, quantized distribution."""
        return cls("truncated", top_k, top_p, bits)

    @classmethod
    def from_spec(cls, spec: TruncationSpec) -> DistributionCodec:
        """The truncated codec of a scenario's ``[hybrid_lm.truncation]``."""
        return cls.truncated(spec.top_k, spec.top_p, spec.bits)

    @property
    def label(self) -> str:
        """Short description for reports, e.g. ``"top-16, 8 bits"``."""
        if self.kind == "full":
            return "full fp16"
        keep = f"top-p {self.top_p:g}" if self.top_p is not None else f"top-{self.top_k}"
        return f"{keep}, {self.bits} bits"

    @property
    def levels(self) -> int:
        """Largest code of a quantized probability, ``2^bits - 1``."""
        return (1 << self.bits) - 1

    def prepare(self, q: Tensor) -> Tensor:
        """The distribution the payload carries, which the device samples its draft from.

        Parameters
        ----------
        q : Tensor, shape (V,) or (B, V)
            Draft probabilities (non-negative, positive sum; normalized here).

        Returns
        -------
        Tensor, float64, shape of ``q``
            ``q_sent``, each row summing to 1.
        """
        rows = q.unsqueeze(0) if q.ndim == 1 else q
        if rows.ndim != 2 or rows.shape[1] < 1:
            raise ValueError(f"q must have shape (V,) or (B, V), got {tuple(q.shape)}")
        qn = rows.to(torch.float64)
        if not all_finite(qn) or (qn.numel() and float(qn.min()) < 0):
            raise ValueError("q must be finite and non-negative")
        if self.kind == "truncated":
            sent = self._truncated(qn)
        else:
            top = qn.max(dim=1, keepdim=True).values
            if bool((top <= 0).any()):
                raise ValueError("every row of q must have positive mass")
            sent = (qn / top).to(torch.float16).to(torch.float64)
            sent /= sent.sum(dim=1, keepdim=True)
        return sent.squeeze(0) if q.ndim == 1 else sent

    def _truncated(self, q: Tensor) -> Tensor:
        """The truncated, quantized ``q_sent`` of probabilities ``q`` (B, V)."""
        if self.top_p is None:
            ordered, index = torch.topk(q, min(self.top_k, q.shape[1]), dim=1)
            keep = ordered > 0
        else:
            ordered, index = torch.sort(q, dim=1, descending=True, stable=True)
            mass = torch.cumsum(ordered, dim=1) / ordered.sum(dim=1, keepdim=True)
            reach = (mass < self.top_p).sum(dim=1, keepdim=True) + 1
            keep = (torch.arange(q.shape[1]).unsqueeze(0) < reach) & (ordered > 0)
        if bool((ordered[:, 0] <= 0).any()):
            raise ValueError("every row of q must have positive mass")
        relative = ordered / ordered[:, :1]
        codes = torch.clamp(torch.round(relative * self.levels), 1, self.levels)
        codes = torch.where(keep, codes, 0.0)
        codes /= codes.sum(dim=1, keepdim=True)
        return torch.zeros_like(q).scatter_(1, index, codes)

    def kept_counts(self, q_sent: Tensor) -> Tensor:
        """Tokens a payload carries per row of ``q_sent`` (B, V): the nonzero ones
        (``truncated``), or V (``full``); (B,) int64."""
        if self.kind == "full":
            return torch.full((q_sent.shape[0],), q_sent.shape[1], dtype=torch.int64)
        return (q_sent > 0).sum(dim=1)

    def payload_bytes(self, vocab: int, kept: int | None = None) -> int:
        """Bytes of one payload over ``vocab`` tokens carrying ``kept`` tokens (``truncated``;
        default ``min(top_k, V)``, required with ``top_p``)."""
        if self.kind == "full":
            return full_payload_bytes(vocab)
        if kept is None:
            if self.top_p is not None:
                raise ValueError("a top-p payload's size depends on the tokens kept: pass kept")
            kept = min(self.top_k, vocab)
        return truncated_payload_bytes(kept, vocab, self.bits)

    def payload_sizes(self, kept: NDArray[np.int64], vocab: int) -> NDArray[np.int64]:
        """`payload_bytes` of each count in ``kept`` (from `kept_counts`), int64."""
        k = np.asarray(kept, dtype=np.int64)
        if self.kind == "full":
            return np.full(k.shape, full_payload_bytes(vocab), dtype=np.int64)
        if k.size and (k.min() < 1 or k.max() > vocab):
            raise ValueError(f"kept tokens must lie in 1..{vocab}")
        b = id_bits(vocab)
        return np.asarray(-(-(b + k * (b + self.bits)) // 8), dtype=np.int64)

    def encode(self, q_sent: Tensor) -> bytes:
        """The payload of ``q_sent`` (V,), which must come from `prepare` (``ValueError``
        otherwise: the edge would verify against another distribution)."""
        if q_sent.ndim != 1 or q_sent.shape[0] < 1:
            raise ValueError(f"q_sent must have shape (V,), got {tuple(q_sent.shape)}")
        q = q_sent.detach().to(torch.float64).numpy()
        if not np.isfinite(q).all() or (q < 0).any() or q.max() <= 0:
            raise ValueError("q_sent must be finite, non-negative and not all zero")
        payload = self._encode_full(q) if self.kind == "full" else self._encode_truncated(q)
        if not np.array_equal(self._decode(payload, q.size), q):
            raise ValueError(
                f"q_sent is not a distribution this codec ({self.label}) carries: make it "
                "with prepare() and draw the draft token from it"
            )
        return payload

    def _encode_full(self, q: NDArray[np.float64]) -> bytes:
        # The same conversion as `prepare` (torch's); a value of q_sent relative to the largest
        # is within a few float64 ulps of a binary16 value, which it rounds back to.
        relative = torch.from_numpy(q / q.max()).to(torch.float16)
        return relative.numpy().astype("<f2").tobytes()

    def _encode_truncated(self, q: NDArray[np.float64]) -> bytes:
        ids = np.flatnonzero(q > 0).astype(np.int64)
        if self.top_p is None and ids.size > self.top_k:
            raise ValueError(f"q_sent has {ids.size} tokens with mass, more than top_k")
        codes = np.round(q[ids] / q.max() * self.levels).astype(np.int64)
        b = id_bits(q.size)
        pairs = np.hstack([_to_bits(ids, b), _to_bits(codes, self.bits)]).ravel()
        head = _to_bits(np.array([ids.size - 1], dtype=np.int64), b).ravel()
        return np.packbits(np.concatenate([head, pairs])).tobytes()

    def decode(self, payload: bytes, vocab: int) -> Tensor:
        """``q_sent`` (V,) float64 from a payload; ``ValueError`` saying what is wrong with a
        malformed one (length, ids out of the vocabulary or out of order, codes, values)."""
        return torch.from_numpy(self._decode(payload, vocab))

    def _decode(self, payload: bytes, vocab: int) -> NDArray[np.float64]:
        if self.kind == "full":
            return self._decode_full(payload, vocab)
        return self._decode_truncated(payload, vocab)

    def decode_many(self, payloads: Sequence[bytes], vocab: int) -> Tensor:
        """`decode` of each payload, stacked (B, V)."""
        if not payloads:
            return torch.zeros(0, vocab, dtype=torch.float64)
        return torch.stack([self.decode(p, vocab) for p in payloads])

    def _decode_full(self, payload: bytes, vocab: int) -> NDArray[np.float64]:
        if len(payload) != full_payload_bytes(vocab):
            raise ValueError(
                f"a full distribution over {vocab} tokens has {2 * vocab} bytes, got {len(payload)}"
            )
        raw = np.frombuffer(payload, dtype="<u2")
        values = raw.view("<f2").astype(np.float64)
        if (raw & 0x8000).any() or not np.isfinite(values).all():
            raise ValueError("a full distribution's values must be finite and non-negative")
        if values.max() != 1.0:
            raise ValueError(f"a full distribution's largest value must be 1, got {values.max()}")
        return np.asarray(values / values.sum())

    def _decode_truncated(self, payload: bytes, vocab: int) -> NDArray[np.float64]:
        b = id_bits(vocab)
        bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
        if bits.size < b:
            raise ValueError(f"a truncated payload has at least {math.ceil(b / 8)} byte(s)")
        kept = int(_from_bits(bits[:b])) + 1
        limit = vocab if self.top_p is not None else min(self.top_k, vocab)
        if kept > limit:
            raise ValueError(f"a truncated payload carries at most {limit} tokens, says {kept}")
        expected = truncated_payload_bytes(kept, vocab, self.bits)
        if len(payload) != expected:
            raise ValueError(f"a payload of {kept} tokens has {expected} bytes, got {len(payload)}")
        end = b + kept * (b + self.bits)
        if bits[end:].any():
            raise ValueError("a truncated payload's padding bits must be zero")
        pairs = bits[b:end].reshape(kept, b + self.bits)
        ids, codes = _from_bits(pairs[:, :b]), _from_bits(pairs[:, b:])
        if ids.max() >= vocab or (np.diff(ids) <= 0).any():
            raise ValueError(f"token ids must be increasing and lie in 0..{vocab - 1}")
        if codes.min() < 1 or codes.max() != self.levels:
            raise ValueError(f"codes must lie in 1..{self.levels}, the largest equal to it")
        weights = np.zeros(vocab, dtype=np.float64)
        weights[ids] = codes
        return np.asarray(weights / weights.sum())
