"""Time the whole network model: 1,000,000 devices and up to 10,000,000 messages.

Run by hand::

    python benchmarks/bench_net.py [--devices 1000000] [--messages 100000 1000000 10000000]
                                   [--cells 100] [--profile redcap] [--seed 0]

Steps timed: topology + channel (`attach_devices`: drop, LOS, path loss with shadowing and
O2I), Poisson message arrivals, and `send_messages` (fast fading, scheduling share per
cell and slot, CQI rate, HARQ, airtime, the cells' exact FIFO uplink queues, the edge's
batching queue, downlink reply, energy). The message rate is set so that each cell carries the
same load at every size (the duration grows with the message count), so the cost per message
is comparable. Prints the wall time of each size, the time per message, the peak resident
memory of the process, and whether the goals (10^7 messages in under 30 s, under 8 GB, linear
cost) are met.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np

from tinylarge.net import (
    EdgeServiceModel,
    LinkSettings,
    attach_devices,
    radio_profile,
    send_messages,
)

GOAL_SECONDS = 30.0
GOAL_MEMORY_BYTES = 8 * 1024**3
#: Messages per second per cell: a moderate load for a RedCap cell with 256-byte messages.
MESSAGES_PER_S_PER_CELL = 100.0


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    """Parse arguments, run the sizes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--profile", default="redcap")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.devices < 1 or args.cells < 1 or min(args.messages) < 1:
        parser.error("--devices, --cells and --messages must be >= 1")

    rng = np.random.default_rng(args.seed)
    profile = radio_profile(args.profile)
    started = time.perf_counter()
    cells = attach_devices(rng, profile, args.devices, n_cells=args.cells, indoor_fraction=0.2)
    topology_s = time.perf_counter() - started
    print(f"profile           : {args.profile}, {args.cells} cells")
    print(f"devices           : {args.devices:,}: topology + channel {topology_s:.2f} s")
    edge = EdgeServiceModel(setup_s=0.001, per_item_s=50e-6, max_batch=64)
    settings = LinkSettings()
    per_message = []
    for n in sorted(args.messages):
        duration_s = n / (MESSAGES_PER_S_PER_CELL * args.cells)
        started = time.perf_counter()
        arrival = np.sort(rng.uniform(0.0, duration_s, n))
        device = rng.integers(0, args.devices, n)
        result = send_messages(
            rng,
            cells,
            settings,
            edge,
            device=device,
            arrival_s=arrival,
            bytes_up=256,
            bytes_down=8,
        )
        elapsed = time.perf_counter() - started
        per_message.append(elapsed / n)
        summary = result.summary()
        print(
            f"{n:>12,} messages: {elapsed:7.2f} s ({elapsed / n * 1e6:.2f} us/message), "
            f"delivered {summary['delivered_fraction']:.3f}, p99 "
            f"{summary['latency_s']['p99'] * 1e3:.1f} ms, peak RSS "
            f"{_peak_rss_bytes() / 1024**3:.2f} GB"
        )
        del result
    print(f"machine           : {platform.platform()}, {os.cpu_count()} CPUs")
    largest = max(args.messages)
    total = topology_s + per_message[-1] * largest
    linear = max(per_message) / min(per_message)
    memory_ok = _peak_rss_bytes() < GOAL_MEMORY_BYTES
    print(
        f"goal              : {largest:,} messages + topology in < {GOAL_SECONDS:.0f} s -> "
        f"{'MET' if total < GOAL_SECONDS else 'NOT MET'} ({total:.1f} s); memory < 8 GB -> "
        f"{'MET' if memory_ok else 'NOT MET'}; time per message varies {linear:.2f}x across "
        "sizes (1.0 = perfectly linear)"
    )


if __name__ == "__main__":
    main()
