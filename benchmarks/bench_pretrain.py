"""Pretraining speed: frames/s of `tinylarge pretrain` in one process and on Ray Train workers.

Run by hand::

    python benchmarks/bench_pretrain.py                 # size s, 2 + 20 steps, batch 128
    python benchmarks/bench_pretrain.py --size m --steps 10 --workers 2

Both ways train the same run (same global batch, seed and steps) into a temporary directory:
one process with ``--threads`` torch threads (default 2), then ``--workers`` Ray Train workers
(DDP over gloo, `tinylarge.models.pretraining.ray_train`) with one thread each on a fresh
local cluster. Frames/s is the steady state: the global batch over the time of each optimizer
step (data generation, forward, backward, gradient all-reduce, AdamW) after ``--warmup``
untimed steps, averaged as total frames over total time; held-out evaluation and checkpoints
are not in it. Ray's fixed costs are reported apart: start-up (from the call to the first
step's report, less that step) and shut-down (from the last step to the return).
The loss curves of the two ways must agree (largest relative difference printed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tinylarge.models.pretraining.loop import PretrainConfig, PretrainResult, pretrain
from tinylarge.models.pretraining.ray_train import pretrain_on_ray
from tinylarge.models.rf_transformer import parameter_count


@dataclass
class Timing:
    """Per-step frames/s as the loop reports them, and when each report arrived."""

    started: float = field(default_factory=time.perf_counter)
    reports: list[tuple[int, float, float]] = field(default_factory=list)  # step, fps, time

    def __call__(self, step: int, steps: int, loss: float, frames_per_s: float) -> None:
        self.reports.append((step, frames_per_s, time.perf_counter()))

    def steady(self, warmup: int, batch: int) -> tuple[float, int]:
        """Frames/s over the reported steps after ``warmup``, and how many there were."""
        timed = [fps for step, fps, _ in self.reports if step > warmup]
        return len(timed) * batch / sum(batch / fps for fps in timed), len(timed)


def load() -> str:
    """The 1-minute load average and the machine's cores (other jobs distort the figures)."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def one_process(config: PretrainConfig, threads: int) -> tuple[Timing, PretrainResult, float]:
    torch.set_num_threads(threads)
    timing = Timing()
    with tempfile.TemporaryDirectory() as directory:
        result = pretrain(config, Path(directory), progress=timing)
    return timing, result, time.perf_counter() - timing.started


def on_ray(config: PretrainConfig, workers: int) -> tuple[Timing, PretrainResult, float]:
    timing = Timing()
    with tempfile.TemporaryDirectory() as directory:
        result = pretrain_on_ray(config, Path(directory), workers=workers, threads=1,
                                 progress=timing)  # fmt: skip
    return timing, result, time.perf_counter() - timing.started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="s", help="model size (xs, s, m, l, xl)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch, frames")
    parser.add_argument("--threads", type=int, default=2, help="threads of the one process")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train workers")
    args = parser.parse_args()
    steps = args.warmup + args.steps
    config = PretrainConfig(size=args.size, steps=steps, batch_size=args.batch_size,
                            eval_frames=256, eval_every_steps=steps,
                            checkpoint_every_steps=steps)  # fmt: skip
    print(f"size {args.size} ({parameter_count(args.size):,} parameters), batch "
          f"{args.batch_size}, {args.warmup} + {args.steps} steps; {load()}")  # fmt: skip
    rows = []
    for name, run in [(f"1 process x {args.threads} threads",
                       lambda: one_process(config, args.threads)),
                      (f"{args.workers} Ray workers x 1 thread",
                       lambda: on_ray(config, args.workers))]:  # fmt: skip
        timing, result, wall_s = run()
        fps, timed = timing.steady(args.warmup, args.batch_size)
        _, first_fps, first_at = timing.reports[0]
        startup = first_at - timing.started - args.batch_size / first_fps
        shutdown = timing.started + wall_s - timing.reports[-1][2]
        rows.append((name, fps, timed, startup, shutdown, wall_s, result))
        print(f"  done: {name} ({load()})")
    print(f"\n{'way':<28} {'frames/s':>9} {'s/step':>7} {'timed':>6} {'start-up s':>10} "
          f"{'shut-down s':>11} {'wall s':>7}")  # fmt: skip
    for name, fps, timed, startup, shutdown, wall_s, _ in rows:
        print(f"{name:<28} {fps:>9.0f} {args.batch_size / fps:>7.3f} {timed:>6} "
              f"{startup:>10.1f} {shutdown:>11.1f} {wall_s:>7.1f}")  # fmt: skip
    base, ray = rows[0][-1].train_loss, rows[1][-1].train_loss
    worst = max(abs(a - b) / abs(a) for (_, a), (_, b) in zip(base, ray, strict=True))
    print(f"\nRay / one process: {rows[1][1] / rows[0][1]:.2f}x; largest relative difference "
          f"of the step losses: {worst:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
