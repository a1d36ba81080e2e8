"""Shards of cells: split a run's messages by cell, run each shard, merge in message order.

Cells are independent given their messages (each has its own uplink queue and random stream,
`tinylarge.net.draws`), so a shard of whole cells can be simulated anywhere. A shard is a
contiguous range of cells with about as many messages as the others; a runner maps a function
over the shards (`run_in_process`, or `tinylarge.sim.ray_shards.ray_runner` on a Ray cluster).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
T = TypeVar("T")


class ShardRunner(Protocol):
    """Runs ``fn(*shared, *args)`` for every ``args`` of ``per_shard``; results in that order.

    ``shared`` is the same for every shard (a cluster runner ships it once).
    """

    def __call__(
        self, fn: Callable[..., T], shared: tuple[Any, ...], per_shard: Sequence[tuple[Any, ...]]
    ) -> list[T]: ...


def run_in_process(
    fn: Callable[..., T], shared: tuple[Any, ...], per_shard: Sequence[tuple[Any, ...]]
) -> list[T]:
    """Run the shards one after the other in this process."""
    return [fn(*shared, *args) for args in per_shard]


def cell_shard_bounds(load_per_cell: npt.ArrayLike, shards: int) -> IntArray:
    """Split cells ``0..n_cells-1`` into at most ``shards`` contiguous ranges of about equal
    load (e.g. messages per cell); returns the ranges' bounds, shape (k + 1,), from 0 to
    n_cells. Every range holds some load (empty ranges are dropped), unless all is zero.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    load = np.asarray(load_per_cell, dtype=np.float64)
    cumulative = np.r_[0.0, np.cumsum(load)]  # load of the cells before each bound
    if load.size == 0 or cumulative[-1] <= 0:
        return np.array([0, load.size], dtype=np.int64)
    # range k ends at the first bound where the load before it reaches k/shards of all
    targets = cumulative[-1] * np.arange(1, shards) / shards
    inner = np.searchsorted(cumulative, targets, side="left")
    bounds = np.unique(np.r_[0, inner, load.size]).astype(np.int64)
    kept = bounds[np.r_[True, np.diff(cumulative[bounds]) > 0]]
    kept[-1] = load.size  # trailing cells without load join the last range
    return kept


def shard_messages(cell: npt.ArrayLike, n_cells: int, shards: int) -> list[IntArray]:
    """Positions of the messages of each shard of cells (sent in ``cell``, shape (n,)), each in
    increasing order; one part holding everything when ``shards`` is 1."""
    c = np.asarray(cell, dtype=np.int64)
    if shards == 1 or c.size == 0:
        return [np.arange(c.size, dtype=np.int64)]
    bounds = cell_shard_bounds(np.bincount(c, minlength=n_cells), shards)
    shard_of_message = np.searchsorted(bounds, c, side="right") - 1
    order = np.argsort(shard_of_message, kind="stable")
    splits = np.searchsorted(shard_of_message[order], np.arange(1, bounds.size - 1))
    return [part for part in np.split(order, splits) if part.size]


def merge_by_index(parts: Sequence[T], index: Sequence[IntArray], n: int) -> T:
    """Merge dataclasses of per-message arrays computed on ``index`` (positions of each part's
    messages) into one of length ``n`` in message order."""
    first = parts[0]
    merged: dict[str, Any] = {}
    for f in dataclasses.fields(first):  # type: ignore[arg-type]
        arrays = [np.asarray(getattr(p, f.name)) for p in parts]
        out = np.empty((n, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
        for where, values in zip(index, arrays, strict=True):
            out[where] = values
        merged[f.name] = out
    return type(first)(**merged)
