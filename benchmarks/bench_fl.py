"""Time one FedAvg round: all clients batched (one grouped network) vs a plain per-client loop.

Run by hand::

    python benchmarks/bench_fl.py [--clients 100 1000] [--samples 64] [--batch-size 32]
    python benchmarks/bench_fl.py --ray 2 --clients 10000 --samples 16   # in-process vs Ray

Each client holds ``--samples`` radio-shaped frames (2 x 128, random values: the timing does not
depend on them) and runs 1 local epoch of SGD on the default scenario's tiny CNN (width 5,
758 parameters); the round ends with the weighted average. Prints the median wall time of
each way (3 repeats, after a warm-up round), the speed-up, and the largest difference between
the two averaged models (they must agree up to float rounding). Goal: batched at least 10x
faster at 1,000 clients.

``--ray W`` instead times the batched round in this process (one thread, as a Ray worker has)
against the same round split over W Ray workers on a local cluster
(`tinylarge.integrate.colearning.local_training_ray`), and checks that the averaged weights are
identical.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from tinylarge.integrate.colearning.local_training import (
    LocalSgd,
    local_train_batched,
    local_train_loop,
    weighted_average,
)
from tinylarge.models.registry import build_model

GOAL_SPEEDUP = 10.0


def one_round(train, model, x, y, batch_size: int):  # type: ignore[no-untyped-def]
    params, buffers = train(model, x, y, LocalSgd(epochs=1, batch_size=batch_size, lr=0.05, seed=0))
    weights = [1.0] * x.shape[0]
    return weighted_average(params, weights), weighted_average(buffers, weights)


def timed(train, model, x, y, batch_size: int, repeats: int):  # type: ignore[no-untyped-def]
    one_round(train, model, x[:2], y[:2], batch_size)  # warm-up
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = one_round(train, model, x, y, batch_size)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def bench_ray(model, x, y, batch_size: int, repeats: int, workers: int) -> None:  # type: ignore[no-untyped-def]
    import functools

    import ray

    from tinylarge.integrate.colearning.local_training_ray import local_train_on_ray

    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    torch.set_num_threads(1)
    on_ray = functools.partial(local_train_on_ray, shards=workers)
    t_here, (p_here, _) = timed(local_train_batched, model, x, y, batch_size, repeats)
    t_ray, (p_ray, _) = timed(on_ray, model, x, y, batch_size, repeats)
    same = all(torch.equal(p_here[k], p_ray[k]) for k in p_here)
    print(f"{x.shape[0]:>6,} clients: in-process (1 thread) {t_here:7.3f} s, {workers} Ray "
          f"workers {t_ray:7.3f} s -> {t_here / t_ray:4.2f}x; averaged weights identical: "
          f"{same}")  # fmt: skip
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray", type=int, default=0, help="Ray workers (0: batched vs loop)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = build_model("tiny_cnn", (2, 128), 8, {"width": 5}, seed=0)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"round: 1 local epoch, {args.samples} samples/client, batch {args.batch_size}, SGD")
    for n in args.clients:
        gen = torch.Generator().manual_seed(n)
        x = torch.randn(n, args.samples, 2, 128, generator=gen)
        y = torch.randint(0, 8, (n, args.samples), generator=gen)
        if args.ray:
            bench_ray(model, x, y, args.batch_size, args.repeats, args.ray)
            continue
        t_batched, (p_b, _) = timed(local_train_batched, model, x, y, args.batch_size, args.repeats)
        t_loop, (p_l, _) = timed(local_train_loop, model, x, y, args.batch_size, args.repeats)
        diff = max(float((p_b[k] - p_l[k]).abs().max()) for k in p_b)
        speedup = t_loop / t_batched
        print(
            f"{n:>6,} clients: batched {t_batched:7.3f} s, loop {t_loop:7.3f} s -> "
            f"{speedup:5.1f}x; max |weight difference| {diff:.2e}"
        )
        if n >= 1000:
            verdict = "MET" if speedup >= GOAL_SPEEDUP else "NOT MET"
            print(f"goal (>= {GOAL_SPEEDUP:g}x at 1,000 clients): {verdict}")


if __name__ == "__main__":
    main()
