"""Time the exact FIFO queues of `tinylarge.net.queues` at 1e5, 1e6 and 1e7 messages.

Run by hand::

    python benchmarks/bench_queues.py [--sizes 100000 1000000 10000000] [--repeats 3]
                                      [--per-group 10] [--max-batch 32] [--seed 0]

For each size: Poisson arrivals (one message per ms on average, load 0.8), exponential
service times. `fifo_queue` runs one queue; `fifo_queue_grouped` runs one queue per group of
``--per-group`` messages on average (say, per device; arrivals in time order, groups mixed);
`batch_queue` serves batches of up to ``--max-batch`` with a 5 ms time-out. Prints the median
wall time over the repeats (after one warm-up run at the smallest size), the throughput, and
the peak memory the call allocates on top of its inputs (tracemalloc, measured in a separate
run so that tracing does not slow the timed ones), in MB and bytes per message.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from tinylarge.net.batching import batch_queue, linear_batch_service
from tinylarge.net.queues import fifo_queue, fifo_queue_grouped


def _positive_int(text: str) -> int:
    value = int(float(text))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _median_time_s(call: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    times_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times_s.append(time.perf_counter() - start)
    return statistics.median(times_s), min(times_s), max(times_s)


def _peak_bytes(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _calls(
    arrival_s: np.ndarray, service_s: np.ndarray, group: np.ndarray, max_batch: int
) -> dict[str, Callable[[], object]]:
    service = linear_batch_service(2e-3, 0.1e-3)  # 2 ms per batch + 0.1 ms per request
    return {
        "fifo_queue": lambda: fifo_queue(arrival_s, service_s),
        "fifo_queue_grouped": lambda: fifo_queue_grouped(group, arrival_s, service_s),
        "batch_queue": lambda: batch_queue(
            arrival_s, max_batch=max_batch, batch_service_s=service, max_wait_s=5e-3
        ),
    }


def main() -> None:
    """Parse arguments, run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=_positive_int, nargs="+", default=[100_000, 1_000_000, 10_000_000]
    )
    parser.add_argument("--repeats", type=_positive_int, default=3)
    parser.add_argument("--per-group", type=_positive_int, default=10)
    parser.add_argument("--max-batch", type=_positive_int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"machine        : {platform.platform()}, {platform.machine()}")
    print(f"cpu count      : {os.cpu_count()}")
    print(f"python / numpy : {platform.python_version()} / {np.__version__}")
    print(f"repeats        : {args.repeats} (median; after 1 warm-up)")
    print()
    header = f"{'function':<20} {'messages':>11} {'median s':>9} {'min s':>7} {'max s':>7}"
    print(f"{header} {'Mmsg/s':>7} {'peak MB':>8} {'B/msg':>6}")
    warmed = False
    for n in sorted(args.sizes):
        rng = np.random.default_rng([args.seed, n])
        arrival_s = np.cumsum(rng.exponential(1e-3, n))
        service_s = rng.exponential(0.8e-3, n)
        group = rng.integers(0, max(1, n // args.per_group), n)
        for name, call in _calls(arrival_s, service_s, group, args.max_batch).items():
            if not warmed:
                call()
            median_s, low_s, high_s = _median_time_s(call, args.repeats)
            peak = _peak_bytes(call)
            print(
                f"{name:<20} {n:>11,} {median_s:>9.3f} {low_s:>7.3f} {high_s:>7.3f} "
                f"{n / median_s / 1e6:>7.1f} {peak / 1e6:>8.0f} {peak / n:>6.0f}"
            )
        warmed = True


if __name__ == "__main__":
    main()
