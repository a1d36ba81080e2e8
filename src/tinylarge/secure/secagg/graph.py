"""SecAgg+'s communication graph: who shares secrets with whom.

In SecAgg (Bonawitz et al., CCS 2017) every client shares its secrets with every other one,
so a round costs each client O(n) key agreements and messages. SecAgg+ (Bell et al., CCS 2020)
replaces the complete graph by a sparse k-regular one of degree O(log n): a client agrees
pairwise masks with, and shares its secrets among, its k neighbours only. Here the graph is a
ring over a random permutation of the round's clients, each client linked to the
``(num_shares - 1) / 2`` nearest on either side (a randomly labelled Harary graph, the
construction of Flower's ``SecAggPlusWorkflow``); a client's *neighbourhood* is itself plus its
neighbours: ``num_shares`` members, one share each. When ``num_shares`` reaches the number of
clients, the graph is complete (SecAgg).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tinylarge.validation import check_int

IntArray = npt.NDArray[np.int64]


def neighbourhoods(n_clients: int, num_shares: int, rng: np.random.Generator) -> IntArray:
    """Each client's neighbourhood, int64 (n_clients, size), row ``i`` listing client ``i``
    first, then its neighbours; ``size = min(num_shares, n_clients)``.

    ``num_shares`` must be odd (a symmetric ring) unless it covers every client.
    """
    check_int("n_clients", n_clients, 2)
    check_int("num_shares", num_shares, 3)
    if num_shares >= n_clients:
        everyone = np.arange(n_clients, dtype=np.int64)
        return np.stack([np.concatenate([[i], np.delete(everyone, i)]) for i in everyone])
    if num_shares % 2 == 0:
        raise ValueError(
            f"num_shares must be odd below the number of clients (each client links to "
            f"(num_shares - 1) / 2 on either side of the ring), got {num_shares}"
        )
    order = rng.permutation(n_clients).astype(np.int64)
    position = np.empty(n_clients, dtype=np.int64)
    position[order] = np.arange(n_clients)
    half = num_shares // 2
    offsets = np.array([0] + [o for d in range(1, half + 1) for o in (-d, d)], dtype=np.int64)
    hoods: IntArray = order[(position[:, None] + offsets[None, :]) % n_clients]
    return hoods
