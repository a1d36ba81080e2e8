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

``--secagg`` times one round with SecAgg+ (`tinylarge.secure.secagg`) against plain FedAvg::

    nice -n 10 python benchmarks/bench_fl.py --secagg [--clients 100 1000] [--num-shares 21]
        [--threshold-fraction 0.5] [--dropout 0.1] [--no-flower]

For each size: the plain round (batched local training + weighted average) and the secure
sum of the same round's updates (every client's keys, shares, masks and the server's
unmasking, in this process), with the bytes per client of each (plain: the float32 upload;
SecAgg+: every protocol message up and down) and the secure aggregate's largest difference
from the exact one. Then the same round with Flower's SecAgg+ primitives
(``benchmarks/secagg_flower_round.py``) in a separate virtual environment
(``~/.cache/tinylarge/flwr-venv``, made with ``python -m venv`` + ``pip install flwr`` on
first use: flwr pins older cryptography/rich/typer than tinylarge, so it never goes into this
environment); ``--no-flower`` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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


FLOWER_VENV = Path.home() / ".cache" / "tinylarge" / "flwr-venv"
FLOWER_SCRIPT = Path(__file__).with_name("secagg_flower_round.py")


def flower_python() -> Path | None:
    """The Python of the Flower venv, made on first use; None if flwr cannot be installed."""
    python = FLOWER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {FLOWER_VENV} with flwr (once) ...")
        subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "flwr", "numpy"])
        if done.returncode != 0:
            return None
    check = subprocess.run([str(python), "-c", "import flwr"], capture_output=True)
    return python if check.returncode == 0 else None


def bench_secagg(model, args) -> None:  # type: ignore[no-untyped-def]
    from tinylarge.secure.secagg import SecAggPlus

    state = model.state_dict()
    dim = 1 + sum(v.numel() for v in state.values() if v.dtype.is_floating_point)
    python = None if args.no_flower else flower_python()
    print(
        f"SecAgg+: num_shares {args.num_shares}, threshold {args.threshold_fraction:.0%} of "
        f"them, {args.dropout:.0%} of clients drop out after sharing keys; vector of {dim} "
        "values (model + weight), Flower's encoding defaults (clip 8, 2^22 levels, 2^32)"
    )
    for n in args.clients:
        gen = torch.Generator().manual_seed(n)
        x = torch.randn(n, args.samples, 2, 128, generator=gen)
        y = torch.randint(0, 8, (n, args.samples), generator=gen)
        t_plain, _ = timed(local_train_batched, model, x, y, args.batch_size, args.repeats)
        protocol = SecAggPlus(
            num_shares=args.num_shares,
            threshold_fraction=args.threshold_fraction,
            dropout_fraction=args.dropout,
        )
        updates = np.random.default_rng(n).normal(0.0, 0.05, (n, dim - 1))
        vectors = np.hstack([np.ones((n, 1)), updates])
        times, result = [], None
        for repeat in range(args.repeats):
            started = time.perf_counter()
            result = protocol.secure_sum(vectors, np.random.default_rng(repeat))
            times.append(time.perf_counter() - started)
        assert result is not None
        inc = result.included
        error = float(np.abs(result.total - vectors[inc].sum(axis=0)).max())
        ours = float(np.mean((result.bytes_up + result.bytes_down)[inc]))
        print(f"{n:>6,} clients: plain round {t_plain:7.3f} s, {4 * (dim - 1):,} B up per client;"
              f" SecAgg+ secure sum {statistics.median(times):7.3f} s (median of {args.repeats}),"
              f" {ours:,.0f} B per client up+down, max |sum error| {error:.2e} "
              f"(bound {result.error_bound:.2e})")  # fmt: skip
        if python is None:
            continue
        size, t = protocol.shape(n)
        out = subprocess.run(
            [str(python), str(FLOWER_SCRIPT), str(n), str(dim - 1), str(size), str(t),
             str(args.dropout), str(n)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        flower = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{'':>14} Flower {flower['seconds']:7.3f} s (1 run), "
            f"{flower['bytes_per_client']:,.0f} B per client up+down, "
            f"max |mean error| {flower['max_abs_error']:.2e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray", type=int, default=0, help="Ray workers (0: batched vs loop)")
    parser.add_argument("--secagg", action="store_true", help="SecAgg+ vs plain FedAvg")
    parser.add_argument("--num-shares", type=int, default=21)
    parser.add_argument("--threshold-fraction", type=float, default=0.5)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--no-flower", action="store_true", help="skip Flower's SecAgg+")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = build_model("tiny_cnn", (2, 128), 8, {"width": 5}, seed=0)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"round: 1 local epoch, {args.samples} samples/client, batch {args.batch_size}, SGD")
    if args.secagg:
        bench_secagg(model, args)
        return
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
