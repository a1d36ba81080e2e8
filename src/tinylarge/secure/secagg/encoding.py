"""Fixed-point encoding of real vectors into the integers modulo ``2**modulus_bits``.

SecAgg+ sums integers modulo ``R = 2**modulus_bits`` (Bell et al., "Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead", CCS 2020; Bonawitz et al., "Practical Secure
Aggregation for Privacy-Preserving Machine Learning", CCS 2017). A real value ``v`` is clipped
to ``[-clip_range, clip_range]`` and mapped to one of ``levels`` integers,
``q = round((v + clip_range) / step)`` with ``step = 2 clip_range / (levels - 1)``, so
``q`` lies in ``[0, levels - 1]``. The sum of ``n`` such integers is exact modulo ``R`` as long
as ``n (levels - 1) < R``; decoding subtracts ``n clip_range``.

Flower's SecAgg+ (``flwr.common.secure_aggregation.quantization``) uses the same clipping and
range (defaults ``clipping_range = 8.0``, ``quantization_range = 2**22``, ``modulus_range =
2**32``) with stochastic rounding (unbiased, error < ``step``); this encoding rounds to the
nearest level (error <= ``step / 2`` for a value inside the clipping range), which makes the
aggregate a deterministic function of the inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.validation import check_int

FloatArray = npt.NDArray[np.float64]
UIntArray = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class FixedPoint:
    """Clipping range, quantization levels and modulus of the encoding.

    Attributes
    ----------
    clip_range : float
        Values are clipped to ``[-clip_range, clip_range]`` (> 0).
    levels : int
        Number of quantization levels (>= 2).
    modulus_bits : int
        The sum lives modulo ``2**modulus_bits`` (8..62; masks are drawn from that range).
    """

    clip_range: float = 8.0
    levels: int = 2**22
    modulus_bits: int = 32

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_range) and self.clip_range > 0):
            raise ValueError(f"clip_range must be a finite number > 0, got {self.clip_range}")
        check_int("modulus_bits", self.modulus_bits, 8, 62)
        check_int("levels", self.levels, 2, 2**self.modulus_bits)

    @property
    def step(self) -> float:
        """Distance between two levels, in the values' unit."""
        return 2.0 * self.clip_range / (self.levels - 1)

    @property
    def modulus(self) -> int:
        return int(2**self.modulus_bits)

    @property
    def max_clients(self) -> int:
        """The most vectors whose sum cannot wrap around the modulus."""
        return (self.modulus - 1) // (self.levels - 1)

    @property
    def element_bytes(self) -> int:
        """Bytes of one element modulo ``2**modulus_bits`` on the wire."""
        return -(-self.modulus_bits // 8)

    def encode(self, values: npt.ArrayLike) -> UIntArray:
        """Clip and quantize ``values`` (any shape) to integers in ``[0, levels - 1]``."""
        v = np.asarray(values, dtype=np.float64)
        if not np.isfinite(v).all():
            raise ValueError("cannot encode NaN or infinite values")
        clipped = np.clip(v, -self.clip_range, self.clip_range)
        q = np.rint((clipped + self.clip_range) / self.step)
        return np.clip(q, 0, self.levels - 1).astype(np.uint64)

    def decode_sum(self, total: npt.ArrayLike, count: int) -> FloatArray:
        """The real sum of ``count`` encoded vectors from their integer sum modulo the
        modulus (``ValueError`` when ``count`` vectors could have wrapped around it)."""
        check_int("count", count, 0, self.max_clients)
        s = np.asarray(total, dtype=np.uint64) & np.uint64(self.modulus - 1)
        return s.astype(np.float64) * self.step - count * self.clip_range

    def sum_error_bound(self, count: int) -> float:
        """Largest difference between the decoded sum of ``count`` vectors and their true sum,
        per element, for values inside the clipping range: ``count * step / 2``."""
        return count * self.step / 2.0
