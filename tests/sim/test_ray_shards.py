"""Shards on Ray survive a worker killed mid-shard, and refuse a bad shard count."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinylarge.net import (
    EdgeServiceModel,
    LinkSettings,
    attach_devices,
    cell_poisson_arrivals,
    radio_profile,
    send_messages,
)
from tinylarge.sim.ray_shards import ray_runner, shard_plan


@pytest.mark.parametrize("sites", ["shared", "per_cell"])
def test_a_worker_killed_mid_shard_loses_nothing(
    ray_local: None, tmp_path: Path, sites: str
) -> None:
    cells = attach_devices(np.random.default_rng(0), radio_profile("lte_m"), 900, n_cells=6)
    device, arrival = cell_poisson_arrivals(
        4, cells.topology.cell, np.arange(6), rate_hz=2.0, duration_s=2.0
    )
    edge = EdgeServiceModel(setup_s=0.002, per_item_s=0.0003, sites=sites)  # type: ignore[arg-type]

    def send(runner: Any, shards: int) -> Any:
        return send_messages(
            np.random.default_rng(9), cells, LinkSettings(), edge, device=device,
            arrival_s=arrival, bytes_up=256, bytes_down=13, shards=shards, runner=runner,
        )  # fmt: skip

    def killing_runner(fn: Any, shared: Any, per_shard: Any) -> Any:
        marker_dir = str(tmp_path)

        def dies_once(*args: Any) -> Any:
            import os
            import signal

            # the first attempt at each shard SIGKILLs its own worker mid-shard
            marker = Path(marker_dir) / f"shard-{int(args[-1].device[0])}"
            if not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args)

        return ray_runner(dies_once, shared, per_shard)

    whole = send(None, 1)
    survived = send(killing_runner, 3)
    assert len(list(tmp_path.iterdir())) == 3  # every shard's worker was killed once
    for f in dataclasses.fields(whole):
        np.testing.assert_array_equal(getattr(whole, f.name), getattr(survived, f.name))


def test_a_bad_shard_count_is_refused() -> None:
    assert shard_plan(0) == (1, None)
    assert shard_plan(4) == (4, ray_runner)
    with pytest.raises(ValueError, match="ray_shards must be >= 0"):
        shard_plan(-1)
    from tinylarge.config import load_preset, scenario_from_table
    from tinylarge.config.loading import scenario_to_table

    table = scenario_to_table(load_preset("smoke"))
    table["network"]["ray_shards"] = -2  # type: ignore[index]
    with pytest.raises(ValueError, match="ray_shards"):
        scenario_from_table(table, "test")
    table["network"]["ray_shards"] = 0  # type: ignore[index]
    table["network"]["edge_sites"] = "everywhere"  # type: ignore[index]
    with pytest.raises(ValueError, match="edge_sites"):
        scenario_from_table(table, "test")
