"""Time `tinylarge.data.generate_radio_frames` at its default settings.

Run by hand::

    python benchmarks/bench_radio.py [--frames 100000] [--repeats 5] [--seed 0]

Prints the frame count, the median wall time over the repeats (after one warm-up run), the
throughput, the machine, and whether the goal (100,000 frames in under 10 s) is met.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from tinylarge.data import generate_radio_frames

#: The data layer's speed goal: 100,000 default frames in under 10 s on a 2-core machine.
GOAL_FRAMES = 100_000
GOAL_SECONDS = 10.0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main() -> None:
    """Parse arguments, run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=_positive_int, default=GOAL_FRAMES)
    parser.add_argument("--repeats", type=_positive_int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    generate_radio_frames(min(args.frames, 2048), np.random.default_rng(args.seed))  # warm-up
    times_s = []
    for repeat in range(args.repeats):
        rng = np.random.default_rng([args.seed, repeat])
        start = time.perf_counter()
        generate_radio_frames(args.frames, rng)
        times_s.append(time.perf_counter() - start)
    median_s = statistics.median(times_s)
    rate = args.frames / median_s
    seconds_for_goal = GOAL_FRAMES / rate
    print(f"frames            : {args.frames}")
    print(f"repeats           : {args.repeats} (after 1 warm-up)")
    print(f"median wall time  : {median_s:.3f} s  (min {min(times_s):.3f}, max {max(times_s):.3f})")
    print(f"throughput        : {rate:,.0f} frames/s")
    print(f"machine           : {platform.platform()}, {platform.machine()}")
    print(f"cpu count         : {os.cpu_count()}")
    print(f"python / numpy    : {platform.python_version()} / {np.__version__}")
    verdict = "MET" if seconds_for_goal < GOAL_SECONDS else "NOT MET"
    print(
        f"goal              : {GOAL_FRAMES:,} frames in < {GOAL_SECONDS:g} s -> {verdict} "
        f"({seconds_for_goal:.2f} s at this throughput)"
    )


if __name__ == "__main__":
    main()
