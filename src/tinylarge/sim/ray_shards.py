"""Shards of cells as Ray tasks (`tinylarge.net.shards`): the runner the network stage and the
policy engine use when ``network.ray_shards`` > 0.

The shared arguments (the devices' channels, the settings) go into Ray's object store once and
every task reads them from shared memory; each task gets its own shard's messages and returns
its per-message arrays, which `tinylarge.net.shards.merge_by_index` puts back in message order.
Nothing of Ray is re-implemented: scheduling, the object store and worker processes are Ray's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tinylarge.net.shards import ShardRunner
from tinylarge.ray_cluster import start_ray

T = TypeVar("T")


def ray_runner(
    fn: Callable[..., T], shared: tuple[Any, ...], per_shard: Sequence[tuple[Any, ...]]
) -> list[T]:
    """Run ``fn(*shared, *args)`` for every shard as a Ray task (one CPU each).

    A worker that dies mid-shard (killed, out of memory) has its shard run again, up to 3
    times: a shard is a pure function of its inputs, so the result is unchanged (tested).
    """
    import ray

    start_ray(os.environ.get("RAY_ADDRESS"))  # the cluster in RAY_ADDRESS, else a local one
    refs = [ray.put(value) for value in shared]
    remote = ray.remote(num_cpus=1, max_retries=3)(fn)
    return list(ray.get([remote.remote(*refs, *args) for args in per_shard]))


def shard_plan(ray_shards: int) -> tuple[int, ShardRunner | None]:
    """Shards and runner for a scenario's ``network.ray_shards`` (0: one shard, this process)."""
    if ray_shards < 0:
        raise ValueError(f"ray_shards must be >= 0 (0: in this process), got {ray_shards}")
    return (ray_shards, ray_runner) if ray_shards else (1, None)
