"""Shards of cells: per-cell random streams, the split, and results identical to one process."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from tinylarge.net import (
    EdgeServiceModel,
    LinkSettings,
    MessageResult,
    attach_devices,
    cell_poisson_arrivals,
    radio_profile,
    send_messages,
)
from tinylarge.net.cell import CellDevices
from tinylarge.net.draws import draw_messages
from tinylarge.net.shards import cell_shard_bounds, run_in_process, shard_messages

N_CELLS = 9
SETTINGS = LinkSettings(scheduler="proportional_fair", fading="rician", bler_target=0.2)
EDGE = EdgeServiceModel(setup_s=0.002, per_item_s=0.0004, max_batch=16, max_wait_s=0.002)


def _scenario(n_devices: int = 1800) -> tuple[CellDevices, np.ndarray, np.ndarray]:
    cells = attach_devices(
        np.random.default_rng(0), radio_profile("nb_iot"), n_devices, n_cells=N_CELLS,
        indoor_fraction=0.5,
    )  # fmt: skip
    # a busy run: every cell's uplink queues, some messages fall in outage or fail HARQ
    device, arrival = cell_poisson_arrivals(
        11, cells.topology.cell, np.arange(N_CELLS), rate_hz=2.0, duration_s=2.0
    )
    return cells, device, arrival


def _send(cells: CellDevices, device: np.ndarray, arrival: np.ndarray, edge: EdgeServiceModel,
          shards: int, runner: object = None) -> MessageResult:  # fmt: skip
    return send_messages(
        np.random.default_rng(5), cells, SETTINGS, edge, device=device, arrival_s=arrival,
        bytes_up=300, bytes_down=20, compute_energy_j=1e-4, sleep_time_s=0.5, shards=shards,
        runner=runner,  # type: ignore[arg-type]
    )  # fmt: skip


def _assert_identical(a: MessageResult, b: MessageResult) -> None:
    for f in dataclasses.fields(a):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f.name)


@pytest.mark.parametrize("sites", ["shared", "per_cell"])
def test_sharded_results_are_identical_to_one_process_for_any_shard_count(sites: str) -> None:
    cells, device, arrival = _scenario()
    edge = replace(EDGE, sites=sites)
    whole = _send(cells, device, arrival, edge, shards=1)
    assert 0 < whole.delivered.mean() < 1 and whole.uplink_queue_wait_s.max() > 0
    assert whole.edge_wait_s.max() > 0
    for shards in (2, 3, 4, 9, 50):
        _assert_identical(whole, _send(cells, device, arrival, edge, shards, run_in_process))


def test_a_messages_draws_do_not_depend_on_the_other_cells() -> None:
    cell = np.array([0, 3, 3, 1, 0, 3, 2, 1, 0])
    kwargs = {"fading": "rayleigh", "rician_k_db": 3.0, "bler": 0.3, "max_transmissions": 4}
    full = draw_messages(7, cell, **kwargs)  # type: ignore[arg-type]
    for keep in ([0, 4, 8], [1, 2, 5, 3, 7], [6]):
        index = np.array(keep)
        part = draw_messages(7, cell[index], **kwargs)  # type: ignore[arg-type]
        for f in dataclasses.fields(full):
            np.testing.assert_array_equal(getattr(part, f.name), getattr(full, f.name)[index])
    other_seed = draw_messages(8, cell, **kwargs)  # type: ignore[arg-type]
    assert not np.array_equal(other_seed.uplink_fading, full.uplink_fading)


def test_cell_arrivals_do_not_depend_on_the_other_cells() -> None:
    cell_of_device = np.arange(600) % 6
    device, time = cell_poisson_arrivals(
        3, cell_of_device, np.arange(6), rate_hz=5.0, duration_s=4.0
    )
    assert abs(device.size - 600 * 5 * 4) < 5 * np.sqrt(12_000)
    some_device, some_time = cell_poisson_arrivals(
        3, cell_of_device, [2, 5], rate_hz=5.0, duration_s=4.0
    )
    mine = np.isin(cell_of_device[device], [2, 5])
    np.testing.assert_array_equal(some_device, device[mine])
    np.testing.assert_array_equal(some_time, time[mine])
    # by cell, then by time within a cell
    cells = cell_of_device[device]
    assert np.all(np.diff(cells) >= 0)
    for c in range(6):
        assert np.all(np.diff(time[cells == c]) >= 0)
    with pytest.raises(ValueError, match="rate_hz > 0"):
        cell_poisson_arrivals(3, cell_of_device, [0], rate_hz=0.0, duration_s=1.0)


def test_cells_split_into_contiguous_shards_of_about_equal_load() -> None:
    load = np.random.default_rng(1).integers(50, 150, 1000)
    bounds = cell_shard_bounds(load, 8)
    assert bounds[0] == 0 and bounds[-1] == 1000 and np.all(np.diff(bounds) > 0)
    per_shard = np.add.reduceat(load, bounds[:-1])
    assert per_shard.size == 8 and per_shard.max() < 1.05 * load.sum() / 8
    # no empty shard: fewer loaded cells than shards gives one shard per loaded cell
    np.testing.assert_array_equal(cell_shard_bounds([0, 0, 3, 0, 0, 4, 0], 5), [0, 3, 7])
    np.testing.assert_array_equal(cell_shard_bounds([0, 0], 3), [0, 2])
    with pytest.raises(ValueError, match="shards must be >= 1"):
        cell_shard_bounds(load, 0)
    cell = np.array([4, 0, 2, 4, 1, 3, 0])
    parts = shard_messages(cell, 5, 3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(cell.size))
    for part in parts:
        assert np.all(np.diff(part) > 0)
    assert len({int(c) for p in parts for c in cell[p]}) == 5
    assert all(set(cell[a]).isdisjoint(cell[b]) for a in parts for b in parts if a is not b)


def test_an_edge_server_per_cell_does_not_queue_other_cells_requests() -> None:
    cells = attach_devices(np.random.default_rng(0), radio_profile("redcap"), 2, n_cells=2)
    cells = replace(
        cells, uplink_mean_snr_db=np.full(2, 20.0), downlink_mean_snr_db=np.full(2, 30.0)
    )
    cells = replace(cells, topology=replace(cells.topology, d_2d_m=np.full(2, 100.0)))
    no_fading = LinkSettings(fading="none", bler_target=0.0, max_transmissions=1)
    one_at_a_time = EdgeServiceModel(setup_s=0.01, per_item_s=0.0, max_batch=1, max_wait_s=None)
    kwargs = {"device": [0, 1], "arrival_s": [0.0, 0.0], "bytes_up": 100, "bytes_down": 10}
    shared = send_messages(np.random.default_rng(0), cells, no_fading, one_at_a_time, **kwargs)
    per_cell = send_messages(
        np.random.default_rng(0), cells, no_fading, replace(one_at_a_time, sites="per_cell"),
        **kwargs,
    )  # fmt: skip
    # both reach the edge at the same instant: a shared server serves one after the other
    assert sorted(shared.edge_wait_s.tolist()) == pytest.approx([0.0, 0.01], abs=2e-9)
    assert per_cell.edge_wait_s.tolist() == [0.0, 0.0]


def test_refuses_zero_shards() -> None:
    cells, device, arrival = _scenario(90)
    with pytest.raises(ValueError, match="shards must be >= 1"):
        _send(cells, device, arrival, EDGE, shards=0)


@pytest.mark.parametrize("sites", ["shared", "per_cell"])
def test_shards_on_ray_give_the_in_process_result(ray_local: None, sites: str) -> None:
    from tinylarge.sim.ray_shards import ray_runner

    cells, device, arrival = _scenario()
    edge = replace(EDGE, sites=sites)
    _assert_identical(
        _send(cells, device, arrival, edge, shards=1),
        _send(cells, device, arrival, edge, shards=3, runner=ray_runner),
    )


def test_shard_statistics_merge_to_the_whole_runs_summary() -> None:
    from tinylarge.net.message_stats import MessageStats
    from tinylarge.net.uplink import cells_traffic_stats

    cells, _, _ = _scenario()
    edge = replace(EDGE, sites="per_cell")
    traffic = {"rate_hz": 2.0, "duration_s": 2.0, "bytes_up": 300, "bytes_down": 20,
               "compute_energy_j": 1e-4, "sleep_time_s": 0.5}  # fmt: skip
    # the whole run as the network stage does it: arrivals of every cell, then the messages
    device, arrival = cell_poisson_arrivals(
        21, cells.topology.cell, np.arange(N_CELLS), rate_hz=2.0, duration_s=2.0
    )
    whole = send_messages(
        np.random.default_rng(5), cells, SETTINGS, edge, device=device, arrival_s=arrival,
        bytes_up=300, bytes_down=20, compute_energy_j=1e-4, sleep_time_s=0.5,
    ).summary()  # fmt: skip
    link_seed = int(np.random.default_rng(5).integers(0, 2**63, dtype=np.int64))
    parts = [
        cells_traffic_stats(21, link_seed, cells, SETTINGS, edge, ids, **traffic)  # type: ignore[arg-type]
        for ids in ([0, 1, 2, 3], [4], [5, 6, 7, 8])
    ]
    merged = MessageStats.merge(parts).summary()
    assert merged["latency_s"] == whole["latency_s"] | {
        "mean": pytest.approx(whole["latency_s"]["mean"], rel=1e-12)
    }
    for key, value in whole.items():
        if key != "latency_s":
            assert merged[key] == pytest.approx(value, rel=1e-12), key
    with pytest.raises(ValueError, match="edge server per cell"):
        cells_traffic_stats(21, link_seed, cells, SETTINGS, EDGE, [0], **traffic)  # type: ignore[arg-type]


def test_shard_statistics_use_the_cell_runs_they_are_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``by_cell`` computed once for all shards is what a shard uses: it does not sort the
    devices by cell again (and the statistics are the same as without it)."""
    import tinylarge.net.uplink as uplink
    from tinylarge.net.draws import cell_runs

    cells, _, _ = _scenario()
    edge = replace(EDGE, sites="per_cell")
    traffic = {"rate_hz": 2.0, "duration_s": 2.0, "bytes_up": 300, "bytes_down": 20}
    alone = uplink.cells_traffic_stats(21, 7, cells, SETTINGS, edge, [0, 4], **traffic)  # type: ignore[arg-type]
    by_cell = cell_runs(cells.topology.cell)

    def no_second_sort(device_cell: np.ndarray) -> tuple[np.ndarray, ...]:
        raise AssertionError("the shard sorted the devices by cell although by_cell was given")

    monkeypatch.setattr(uplink, "cell_runs", no_second_sort)
    given = uplink.cells_traffic_stats(
        21, 7, cells, SETTINGS, edge, [0, 4], by_cell=by_cell, **traffic  # type: ignore[arg-type]
    )  # fmt: skip
    assert given.summary() == alone.summary()
