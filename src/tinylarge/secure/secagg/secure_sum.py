"""SecAgg+ as the secure sum of a federated round (`SecAggPlus.secure_sum`).

Which clients drop out is drawn per round: ``round(dropout_fraction * clients)`` of them, chosen
uniformly, leave after sharing their keys (before sending their masked input: the case that
needs the shares). Bytes, messages and device energy per client come from
`tinylarge.secure.secagg.costs`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.integrate.colearning.contract import FloatArray, SecureSumResult
from tinylarge.secure.secagg.costs import client_costs
from tinylarge.secure.secagg.encoding import FixedPoint
from tinylarge.secure.secagg.graph import neighbourhoods
from tinylarge.secure.secagg.protocol import RoundTranscript, run_round, threshold_for
from tinylarge.secure.secagg.shamir import Entropy
from tinylarge.tiny.mcu import McuProfile
from tinylarge.validation import check_fraction, check_int


@dataclass(frozen=True)
class SecAggPlus:
    """Secure aggregation of the clients' update vectors with SecAgg+ (Bell et al., CCS 2020).

    Parameters
    ----------
    num_shares : int
        Neighbourhood size: each client shares its secrets among itself and
        ``num_shares - 1`` neighbours (odd, >= 3; a round with fewer clients uses them all).
    threshold_fraction : float
        Shares needed to rebuild a secret, as a fraction of the neighbourhood (rounded up,
        at least 2). Above 1/2, a server that claims a client both dropped and survived
        cannot gather both of its secrets from honest neighbours.
    encoding : FixedPoint
        Clipping range, quantization levels and modulus.
    dropout_fraction : float
        Fraction of each round's clients that drop out after sharing their keys, in [0, 1).
    mcu : McuProfile, optional
        The clients' MCU, for the compute energy; None: compute not charged (0 J).
    entropy : callable
        ``entropy(n) -> n random bytes`` for keys, seeds and share polynomials (default
        `secrets.token_bytes`; the sum does not depend on it, masks cancel exactly).
    """

    num_shares: int = 21
    threshold_fraction: float = 0.5
    encoding: FixedPoint = field(default_factory=FixedPoint)
    dropout_fraction: float = 0.0
    mcu: McuProfile | None = None
    entropy: Entropy = secrets.token_bytes
    name: str = "secagg+"

    def __post_init__(self) -> None:
        check_int("num_shares", self.num_shares, 3)
        threshold_for(self.num_shares, self.threshold_fraction)
        if check_fraction("dropout_fraction", self.dropout_fraction) >= 1.0:
            raise ValueError(f"dropout_fraction must be below 1, got {self.dropout_fraction}")

    def shape(self, clients: int) -> tuple[int, int]:
        """Neighbourhood size and threshold for a round of ``clients`` clients."""
        size = min(self.num_shares, clients)
        return size, threshold_for(size, self.threshold_fraction)

    def run(self, vectors: FloatArray, rng: np.random.Generator) -> RoundTranscript:
        """One round over ``vectors`` (clients, dim): the graph and the dropouts from ``rng``."""
        n = int(np.shape(vectors)[0])
        if n < 2:
            raise ValueError(f"secure aggregation needs at least 2 clients in a round, got {n}")
        size, threshold = self.shape(n)
        included = np.ones(n, dtype=np.bool_)
        included[rng.choice(n, size=round(self.dropout_fraction * n), replace=False)] = False
        hoods = neighbourhoods(n, size, rng)
        return run_round(vectors, hoods, included, threshold, self.encoding, self.entropy)

    def secure_sum(self, vectors: FloatArray, rng: np.random.Generator) -> SecureSumResult:
        """The `tinylarge.integrate.colearning.contract.SecureSum` hook: the round's sum and
        each client's bytes, messages and compute energy."""
        transcript = self.run(vectors, rng)
        dim = int(np.shape(vectors)[1])
        size = transcript.neighbourhoods.shape[1]
        alive = client_costs(dim, size, self.encoding)
        gone = client_costs(dim, size, self.encoding, dropped=True)
        inc = transcript.included

        def pick(a: float, b: float, dtype: type) -> npt.NDArray[Any]:
            return np.where(inc, a, b).astype(dtype)

        mcu = self.mcu
        return SecureSumResult(
            total=transcript.total,
            included=inc,
            bytes_up=pick(alive.bytes_up, gone.bytes_up, np.int64),
            bytes_down=pick(alive.bytes_down, gone.bytes_down, np.int64),
            messages_up=pick(alive.messages_up, gone.messages_up, np.int64),
            messages_down=pick(alive.messages_down, gone.messages_down, np.int64),
            device_energy_j=pick(
                alive.energy_j(mcu) if mcu else 0.0, gone.energy_j(mcu) if mcu else 0.0, np.float64
            ),
            error_bound=self.encoding.sum_error_bound(int(inc.sum())),
        )
