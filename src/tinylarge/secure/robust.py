"""Byzantine-robust aggregation of stacked client states (pure functions, registered by name).

Each function maps ``stacked`` (name -> tensor with a leading client axis) and per-client
``weights`` to one state, like `tinylarge.integrate.colearning.local_training.weighted_average`.
Robust rules treat clients equally (weights only decide which clients count: weight 0 drops
one). Integer buffers (batch-norm step counters) take the plain weighted mean. Bounds: trimmed
mean needs n > 2f (Yin et al., ICML 2018), Krum n >= 2f + 3 (Blanchard et al., NeurIPS 2017);
outside them the functions raise instead of quietly falling back to the mean.

- ``median``: coordinate-wise median (Yin et al., ICML 2018).
- ``trimmed_mean``: per coordinate, drop the ``f`` largest and ``f`` smallest, average the rest.
- ``krum`` / ``multi_krum``: score each client by the summed squared distances to its
  ``n - f - 2`` nearest others; keep the ``m`` best-scored (Krum: m = 1) and average them
  (Blanchard et al., NeurIPS 2017).
- ``norm_clipping``: scale every client's update (its difference to the coordinate-wise median
  state) to at most the median update norm, then average (Sun et al., "Can You Really Backdoor
  Federated Learning?", 2019, with the median as the reference).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from tinylarge.integrate.colearning.aggregators import (
    Aggregator,
    aggregator_names,
    register_aggregator,
)
from tinylarge.integrate.colearning.local_training import weighted_average

State = dict[str, Tensor]


def _kept(stacked: State, weights: npt.ArrayLike) -> tuple[State, State]:
    """Float tensors of clients with weight > 0, and the weighted mean of integer buffers."""
    w = np.asarray(weights, dtype=np.float64)
    keep = torch.from_numpy(np.flatnonzero(w > 0))
    floats = {k: v[keep] for k, v in stacked.items() if v.dtype.is_floating_point}
    ints = {k: v for k, v in stacked.items() if not v.dtype.is_floating_point}
    return floats, weighted_average(ints, w) if ints else {}


def _flat(state: State) -> Tensor:
    """(clients, total values) float64 view of a stacked state."""
    return torch.cat([v.reshape(v.shape[0], -1).double() for v in state.values()], dim=1)


def _clients(state: State) -> int:
    return int(next(iter(state.values())).shape[0])


def median(stacked: State, weights: npt.ArrayLike) -> State:
    """Coordinate-wise median (the mean of the two middle values for an even count)."""
    floats, ints = _kept(stacked, weights)
    return {**{k: v.quantile(0.5, dim=0) for k, v in floats.items()}, **ints}


def trimmed_mean(stacked: State, weights: npt.ArrayLike, *, trim: int | None = None) -> State:
    """Coordinate-wise mean without the ``trim`` largest and smallest values.

    ``trim`` defaults to ``floor((n - 1) / 4)`` (up to a quarter); ``ValueError`` if
    ``n <= 2 * trim``.
    """
    floats, ints = _kept(stacked, weights)
    n = _clients(floats)
    f = (n - 1) // 4 if trim is None else trim
    if f < 0 or n <= 2 * f:
        raise ValueError(f"trimmed mean needs n > 2f clients, got n={n}, f={f}")
    out = {k: v.sort(dim=0).values[f : n - f].mean(dim=0) for k, v in floats.items()}
    return {**out, **ints}


def krum_scores(flat: Tensor, f: int) -> Tensor:
    """Krum score per client: sum of squared distances to its ``n - f - 2`` nearest others."""
    n = flat.shape[0]
    if n < 2 * f + 3:
        raise ValueError(f"Krum needs n >= 2f + 3 clients, got n={n}, f={f}")
    d = torch.cdist(flat, flat).pow(2)
    d.fill_diagonal_(math.inf)
    return d.sort(dim=1).values[:, : n - f - 2].sum(dim=1)


def multi_krum(
    stacked: State, weights: npt.ArrayLike, *, byzantine: int | None = None, keep: int | None = None
) -> State:
    """Average of the ``keep`` best Krum-scored clients (``byzantine`` = f, default
    ``floor((n - 3) / 2)``; ``keep`` defaults to ``n - f``)."""
    floats, ints = _kept(stacked, weights)
    n = _clients(floats)
    f = max((n - 3) // 2, 0) if byzantine is None else byzantine
    m = n - f if keep is None else keep
    if not 1 <= m <= n:
        raise ValueError(f"keep must lie in 1..{n}, got {m}")
    best = krum_scores(_flat(floats), f).argsort()[:m]
    return {**{k: v[best].mean(dim=0) for k, v in floats.items()}, **ints}


def krum(stacked: State, weights: npt.ArrayLike, *, byzantine: int | None = None) -> State:
    """The single client state with the best Krum score."""
    return multi_krum(stacked, weights, byzantine=byzantine, keep=1)


def norm_clipping(stacked: State, weights: npt.ArrayLike) -> State:
    """Mean of the clients' states after clipping each one's distance to the coordinate-wise
    median state to the median of those distances."""
    floats, ints = _kept(stacked, weights)
    center = {k: v.quantile(0.5, dim=0) for k, v in floats.items()}
    delta = {k: v - center[k] for k, v in floats.items()}
    norms = _flat(delta).norm(dim=1)
    bound = norms.median()
    scale = torch.where(norms > bound, bound / norms.clamp_min(1e-30), torch.ones_like(norms))
    out = {}
    for k, v in delta.items():
        s = scale.to(v.dtype).reshape(-1, *[1] * (v.ndim - 1))
        out[k] = center[k] + (v * s).mean(dim=0)
    return {**out, **ints}


ROBUST_AGGREGATORS: dict[str, Aggregator] = {
    "median": median,
    "trimmed_mean": trimmed_mean,
    "krum": krum,
    "multi_krum": multi_krum,
    "norm_clipping": norm_clipping,
}


def register_robust_aggregators() -> None:
    """Make the robust rules available to co-learning by name (idempotent)."""
    known = set(aggregator_names())
    for name, aggregator in ROBUST_AGGREGATORS.items():
        if name not in known:
            register_aggregator(name, aggregator)


register_robust_aggregators()
