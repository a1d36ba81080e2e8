"""Scale the network model out: 10^8 messages over 1,000 cells, in one process vs on Ray.

Run by hand::

    python benchmarks/bench_scale.py                      # 10^8 messages, 1,000 cells, 2 workers
    python benchmarks/bench_scale.py --messages 1e7 --repeats 1   # a quick look

The scenario: ``--cells`` RedCap cells of ``--devices-per-cell`` devices each (TR 38.901 UMa
drop, 20 % indoor), Poisson traffic of 256-byte messages over ``--duration-s`` at the rate that
gives ``--messages`` messages, a 13-byte reply, an edge server at every base station
(``sites="per_cell"``). The cells are split into ``--shards`` shards of contiguous cells
(`tinylarge.net.shards`); each shard draws its cells' arrivals and sends them
(`tinylarge.net.uplink.cells_traffic_stats`) and returns its statistics, which merge exactly
(`tinylarge.net.message_stats.MessageStats`). The same shards run

- ``in-process``: one after the other in a fresh Python process;
- ``ray``: as tasks on a new local Ray cluster of ``--workers`` CPUs (`ray.init(num_cpus=W)`).

Every run is a child process of its own, so its peak memory is its own; the modes alternate,
``--repeats`` times each, so that a slow spell of a shared machine hits both. Printed per mode:
the median wall time (and range) of its runs (cluster start excluded, shipping the devices to
the object store included), messages per second, the median time of one shard, what one shard
allocates at its peak (tracemalloc, an untimed extra run: the memory a worker needs per shard
beyond the shared devices), the peak resident memory of the Ray workers (which counts the
object-store pages a worker wrote its results to and read the devices from) and of the driver
(which holds the sorted latencies of every shard, 8 bytes per delivered message); then the
median speed-up over the back-to-back pairs and a check that every run gave the same statistics.
Goal: at least 1.6x faster on 2 workers, with each worker's memory bounded by its shard.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from tinylarge.net import EdgeServiceModel, LinkSettings, attach_devices, radio_profile
from tinylarge.net.draws import cell_runs
from tinylarge.net.message_stats import MessageStats
from tinylarge.net.shards import cell_shard_bounds, run_in_process
from tinylarge.net.uplink import cells_traffic_stats

GOAL_SPEEDUP = 1.6
EDGE = EdgeServiceModel(setup_s=0.0018, per_item_s=0.00014, max_batch=64, sites="per_cell")


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shard_task(by_cell: Any, *args: Any, **kwargs: Any) -> tuple[MessageStats, float, int, float]:
    """One shard: its statistics, the worker's peak memory (MB), pid and the shard's wall time."""
    started = time.perf_counter()
    stats = cells_traffic_stats(*args, by_cell=by_cell, **kwargs)
    return stats, peak_rss_mb(), os.getpid(), time.perf_counter() - started


def shard_heap_mb(by_cell: Any, *args: Any, **kwargs: Any) -> float:
    """Peak of the memory one shard allocates (numpy arrays included, via tracemalloc), MB: what
    a worker needs for a shard beyond the inputs it shares (untimed: tracing slows it down)."""
    tracemalloc.start()
    try:
        cells_traffic_stats(*args, by_cell=by_cell, **kwargs)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def run_mode(args: argparse.Namespace) -> dict[str, Any]:
    """Run the scenario ``args.repeats`` times in this process's mode; return its figures."""
    devices = args.cells * args.devices_per_cell
    rate_hz = args.messages / (devices * args.duration_s)
    cells = attach_devices(
        np.random.default_rng(0), radio_profile("redcap"), devices, n_cells=args.cells,
        indoor_fraction=0.2,
    )  # fmt: skip
    bounds = cell_shard_bounds(np.full(args.cells, args.devices_per_cell), args.shards)
    per_shard = [(np.arange(lo, hi),) for lo, hi in itertools.pairwise(bounds)]
    traffic = {
        "rate_hz": rate_hz, "duration_s": args.duration_s, "bytes_up": 256, "bytes_down": 13,
        "compute_energy_j": 1.0e-4, "sleep_time_s": 1.0 / rate_hz,
    }  # fmt: skip
    if args.mode == "ray":
        import ray

        ray.init(address="local", num_cpus=args.workers, include_dashboard=False,
                 log_to_driver=False)  # fmt: skip
        remote = ray.remote(num_cpus=1)(shard_task)

        def run_shards() -> list[tuple[MessageStats, float, int, float]]:
            by_cell = cell_runs(cells.topology.cell)  # once for all shards
            refs = [ray.put(v) for v in (by_cell, 1, 2, cells, LinkSettings(), EDGE)]
            return list(ray.get([remote.remote(*refs, *a, **traffic) for a in per_shard]))

        run_shards()  # warm-up: start the workers and import tinylarge in them
        heap = ray.get(ray.remote(num_cpus=1)(shard_heap_mb).remote(
            cell_runs(cells.topology.cell), 1, 2, cells, LinkSettings(), EDGE, *per_shard[0],
            **traffic,
        ))  # fmt: skip
    else:
        heap = shard_heap_mb(
            cell_runs(cells.topology.cell),
            1,
            2,
            cells,
            LinkSettings(),
            EDGE,
            *per_shard[0],
            **traffic,
        )

        def run_shards() -> list[tuple[MessageStats, float, int, float]]:
            return run_in_process(
                lambda *a: shard_task(*a, **traffic),
                (cell_runs(cells.topology.cell), 1, 2, cells, LinkSettings(), EDGE),
                per_shard,
            )  # fmt: skip

    times, shard_s = [], []
    summary: dict[str, Any] = {}
    worker_peak: dict[int, float] = {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        parts = run_shards()
        merged = MessageStats.merge([p[0] for p in parts])
        summary = merged.summary()
        times.append(time.perf_counter() - started)
        shard_s += [p[3] for p in parts]
        for _, peak, pid, _ in parts:
            worker_peak[pid] = max(worker_peak.get(pid, 0.0), peak)
        del parts, merged
    return {
        "mode": args.mode,
        "wall_s": statistics.median(times),
        "all_wall_s": times,
        "messages": summary["messages"],
        "shards": len(per_shard),
        "shard_s_median": statistics.median(shard_s),
        "worker_peak_mb": sorted(worker_peak.values()),
        "shard_heap_mb": heap,
        "driver_peak_mb": peak_rss_mb(),
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=float, default=1e8)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--devices-per-cell", type=int, default=1000)
    parser.add_argument("--duration-s", type=float, default=200.0)
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", choices=["in-process", "ray"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # a child: one mode, figures as JSON on the last line
        print(json.dumps(run_mode(args)))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")  # fmt: skip
    print(f"{args.messages:.3g} messages over {args.cells} cells x {args.devices_per_cell} "
          f"devices, {args.shards} shards, {args.repeats} repeats (median)")  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {"in-process": [], "ray": []}
    for _ in range(args.repeats):  # modes alternate, so a slow spell of the machine hits both
        for mode in runs:
            child = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--mode", mode, "--repeats", "1"],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            runs[mode].append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"{'mode':<11} {'wall s (min-max)':>20} {'msg/s':>12} {'shard s':>8} "
          f"{'shard heap MB':>14} {'worker RSS MB':>14} {'driver RSS MB':>14}")  # fmt: skip
    results = {}
    for mode, mode_runs in runs.items():
        walls = [r["wall_s"] for r in mode_runs]
        shard_s = statistics.median(x["shard_s_median"] for x in mode_runs)
        r = {**mode_runs[0], "wall_s": statistics.median(walls), "shard_s_median": shard_s}
        results[mode] = r
        worker = max(p for x in mode_runs for p in x["worker_peak_mb"]) if mode == "ray" else None
        driver = max(x["driver_peak_mb"] for x in mode_runs)
        span = f"{r['wall_s']:.1f} ({min(walls):.1f}-{max(walls):.1f})"
        print(f"{mode:<11} {span:>20} {r['messages'] / r['wall_s']:>12,.0f} "
              f"{r['shard_s_median']:>8.2f} {r['shard_heap_mb']:>14,.0f} "
              f"{'-' if worker is None else f'{worker:,.0f}':>14} {driver:>14,.0f}")  # fmt: skip
    ratios = [
        a["wall_s"] / b["wall_s"] for a, b in zip(runs["in-process"], runs["ray"], strict=True)
    ]
    speedup = statistics.median(ratios)
    same = all(r["summary"] == runs["in-process"][0]["summary"] for x in runs.values() for r in x)
    verdict = "met" if speedup >= GOAL_SPEEDUP else "NOT met"
    print(f"speed-up on {args.workers} workers, median of {len(ratios)} back-to-back pairs: "
          f"{speedup:.2f}x (each pair: {', '.join(f'{x:.2f}' for x in ratios)}; goal >= "
          f"{GOAL_SPEEDUP}x: {verdict}); same statistics in every run: {same}")  # fmt: skip
    per_core = results["in-process"]["wall_s"] / results["in-process"]["messages"]
    print(
        f"per core: {per_core * 1e9:.0f} ns per message "
        f"({results['in-process']['shard_s_median']:.2f} s per shard of "
        f"{results['in-process']['messages'] / results['in-process']['shards']:,.0f} messages)"
    )
    print(json.dumps(results["in-process"]["summary"]))


if __name__ == "__main__":
    main()
