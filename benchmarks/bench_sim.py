"""Time the trace-driven engine: requests simulated per second with the cascade policy.

Run by hand::

    python benchmarks/bench_sim.py [--devices 1000000] [--requests 1000000 4000000] [--seed 0]

Setup (not timed): a synthetic trace of 20,000 test samples (8 classes; tiny and large logits
with the accuracies of the default scenario's models, roughly), a cascade tuned to offload 40 %
on a synthetic validation trace, 1,000,000 devices over 100 RedCap cells, each device holding
training samples of one SNR level. Timed: drawing the requests (Poisson, each matching its
device's data) and `run_policy` (decisions, MCU compute, uplink queues, edge batching, replies,
energy). Prints requests per second per size and whether the goal (at least 10^6 requests per
second on 2 cores) is met.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from tinylarge.data.partition import partition_iid
from tinylarge.integrate import Cascade, Trace
from tinylarge.net import EdgeServiceModel, LinkSettings, attach_devices, radio_profile
from tinylarge.sim.engine import DeviceCompute, OffloadPath, draw_requests, run_policy

GOAL_REQUESTS_PER_S = 1e6
N_CLASSES = 8


def synthetic_trace(rng: np.random.Generator, n: int) -> Trace:
    """Logits whose argmax is right with probability ~0.6 (tiny) and ~0.72 (large)."""
    y = rng.integers(0, N_CLASSES, n)
    snr = rng.choice(np.arange(-10.0, 21.0, 2.0), n)

    def logits(p_right: float) -> np.ndarray:
        z = rng.normal(0.0, 1.0, (n, N_CLASSES)).astype(np.float32)
        right = rng.random(n) < p_right
        z[np.arange(n), y] += np.where(right, 3.0, 0.0)
        return z

    return Trace(tiny_logits=logits(0.6), large_logits=logits(0.72), y=y, snr_db=snr)


def main() -> None:
    """Parse arguments, time the engine and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.devices < 1 or args.cells < 1 or min(args.requests) < 1:
        parser.error("--devices, --cells and --requests must be >= 1")

    rng = np.random.default_rng(args.seed)
    test, validation = synthetic_trace(rng, 20_000), synthetic_trace(rng, 10_000)
    cascade = Cascade("max_softmax", target_offload=0.4, frame_bytes=256, tiny_macs=34_640)
    cascade.fit(validation)
    # Each device's "training data": one sample of a random SNR level.
    train_snr = rng.choice(np.arange(-10.0, 21.0, 2.0), args.devices)
    partition = partition_iid(args.devices, args.devices, rng)
    cells = attach_devices(rng, radio_profile("redcap"), args.devices, n_cells=args.cells)
    edge = EdgeServiceModel(setup_s=0.002, per_item_s=0.00014, max_batch=64)
    # MCU cost of the default tiny model on stm32l4r5 (34,640 MACs, 1.07 ms, 49 uJ).
    compute = DeviceCompute.from_footprint(34_640, 1.068e-3, 49.1e-6)
    print(
        f"devices           : {args.devices:,} in {args.cells} RedCap cells; cascade, 40 % target"
    )
    best = 0.0
    for n in sorted(args.requests):
        # Keep the per-cell load fixed (1 request per device per second at 1e6 devices).
        duration_s = n / args.devices
        started = time.perf_counter()
        requests = draw_requests(
            rng, partition, train_snr, test.snr_db, rate_per_device_hz=1.0, duration_s=duration_s
        )
        outcome = run_policy(
            rng, cascade, test, requests, OffloadPath(cells, LinkSettings(), edge, compute, 8),
            deadline_s=0.05,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        rate = requests.device.size / elapsed
        best = max(best, rate)
        s = outcome.summary()
        print(
            f"{requests.device.size:>12,} requests: {elapsed:6.2f} s -> {rate:,.0f} requests/s "
            f"(accuracy {s['accuracy']:.3f}, offloaded {s['offload_fraction']:.3f})"
        )
    print(f"machine           : {platform.platform()}, {os.cpu_count()} CPUs")
    verdict = "MET" if best >= GOAL_REQUESTS_PER_S else "NOT MET"
    print(f"goal              : >= {GOAL_REQUESTS_PER_S:,.0f} requests/s -> {verdict}")


if __name__ == "__main__":
    main()
