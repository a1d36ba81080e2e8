"""Aggregators: combine the clients' model states of a round into one (pluggable by name).

An aggregator is a pure function ``(stacked, weights) -> state``: ``stacked`` maps every
parameter/buffer name to a tensor with a leading client axis, ``weights`` holds one
non-negative weight per client (its sample count). Flower keeps the maths of its strategies in
module-level functions the same way. Robust aggregators (median, trimmed mean, Krum) register
here too (`register_aggregator`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy.typing as npt
from torch import Tensor

from tinylarge.integrate.colearning.local_training import weighted_average

State = dict[str, Tensor]
Aggregator = Callable[[State, npt.ArrayLike], State]

_AGGREGATORS: dict[str, Aggregator] = {"mean": weighted_average}


def register_aggregator(name: str, aggregator: Aggregator) -> Aggregator:
    """Make ``aggregator`` available as ``name``; ``ValueError`` if the name is taken."""
    if not name or name in _AGGREGATORS:
        raise ValueError(f"aggregator name {name!r} is empty or already registered")
    _AGGREGATORS[name] = aggregator
    return aggregator


def aggregator_names() -> list[str]:
    """Registered aggregator names, sorted."""
    return sorted(_AGGREGATORS)


def get_aggregator(name: str) -> Aggregator:
    """The aggregator registered as ``name``; ``ValueError`` lists the known names."""
    if name not in _AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; known: {', '.join(aggregator_names())}")
    return _AGGREGATORS[name]
