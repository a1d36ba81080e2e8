"""Client selection: which reachable devices take part in a round (pluggable by name).

A selector is ``(rng, links, k) -> device ids`` (sorted int64, at most ``k``, all reachable):
- ``uniform``: ``k`` reachable devices uniformly at random without replacement (FedAvg's
  client sampling, McMahan et al. 2017);
- ``best_channel``: the ``k`` reachable devices with the highest mean uplink rate, ties broken at
  random (channel-aware scheduling, e.g. Nishio & Yonetani, "Client Selection for Federated
  Learning with Heterogeneous Resources in Mobile Edge", ICC 2019). It finishes rounds fastest
  and biases the model towards the cell centre.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tinylarge.errors import CannotFitError
from tinylarge.integrate.colearning.contract import LinkBudget

IntArray = npt.NDArray[np.int64]
Selector = Callable[[np.random.Generator, LinkBudget, int], IntArray]


def _reachable(links: LinkBudget) -> IntArray:
    ids = np.flatnonzero(links.reachable).astype(np.int64)
    if ids.size == 0:
        raise CannotFitError("no device can reach the server (every link rate is 0)")
    return ids


def select_uniform(rng: np.random.Generator, links: LinkBudget, k: int) -> IntArray:
    """``min(k, reachable)`` reachable devices uniformly at random, sorted."""
    ids = _reachable(links)
    return np.sort(rng.choice(ids, size=min(k, ids.size), replace=False)).astype(np.int64)


def select_best_channel(rng: np.random.Generator, links: LinkBudget, k: int) -> IntArray:
    """The ``min(k, reachable)`` reachable devices with the highest mean uplink rate, sorted."""
    ids = _reachable(links)
    rate = np.asarray(links.uplink_bps)[ids]
    order = np.lexsort((rng.random(ids.size), -rate))  # by rate, descending; random tie-break
    return np.sort(ids[order[: min(k, ids.size)]]).astype(np.int64)


_SELECTORS: dict[str, Selector] = {"uniform": select_uniform, "best_channel": select_best_channel}


def selector_names() -> list[str]:
    return sorted(_SELECTORS)


def get_selector(name: str) -> Selector:
    """The selector registered as ``name``; ``ValueError`` lists the known names."""
    if name not in _SELECTORS:
        raise ValueError(f"unknown client selection {name!r}; known: {', '.join(selector_names())}")
    return _SELECTORS[name]


def select_clients(name: str, rng: np.random.Generator, links: LinkBudget, k: int) -> IntArray:
    """Run selector ``name`` after checking ``k >= 1``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"clients per round must be an integer >= 1, got {k!r}")
    return get_selector(name)(rng, links, k)
