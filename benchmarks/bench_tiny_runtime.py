"""Time the integer runtime (both arithmetics) against ONNX Runtime on the same int8 model.

Run by hand::

    python benchmarks/bench_tiny_runtime.py [--frames 4096] [--repeats 7] [--seed 0] [--width 5]
    python benchmarks/bench_tiny_runtime.py --model runs/<run>/tiny_int8.tlm

The model is `tinylarge.tiny.examples.random_tiny_cnn` (the default tiny CNN's layout on a
(2, 128) radio frame, random int8 weights), or a saved TinyModel given with ``--model``.
Prints, for ``run(..., arithmetic="tflm")``, ``run(...,
arithmetic="onnx")``, ONNX Runtime as the reference runs it (graph optimizations disabled) and
ONNX Runtime with its default optimizations, the median wall time over the repeats (after one
warm-up run, with a pause between contenders) and frames per second; then each mode's speed
relative to the faster ONNX Runtime configuration, whether the outputs agree, the machine, and
whether the goal (our runtime at least half as fast as ONNX Runtime) is met.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tinylarge.tiny.examples import random_tiny_cnn
from tinylarge.tiny.model_file import load_tiny_model
from tinylarge.tiny.onnx_export import make_session, run_onnxruntime
from tinylarge.tiny.runtime import run

#: Our runtime must reach at least this fraction of ONNX Runtime's frames per second.
GOAL_RATIO = 0.5
#: Pause between contenders: ONNX Runtime's and OpenBLAS's worker threads spin for a while
#: after a run and would otherwise slow down whichever contender runs next.
PAUSE_S = 1.0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _median_seconds(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times_s.append(time.perf_counter() - start)
    return statistics.median(times_s), times_s


def main() -> None:
    """Parse arguments, run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=_positive_int, default=4096, help="batch size")
    parser.add_argument("--repeats", type=_positive_int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=_positive_int, default=5, help="tiny CNN width")
    parser.add_argument("--model", type=Path, default=None, help="a .tlm file to time instead")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    if args.model is not None:
        model = load_tiny_model(args.model)
        described = f"{args.model}, input {model.input_spec.shape}"
    else:
        model = random_tiny_cnn(rng, input_shape=(2, 128), width=args.width, num_classes=8)
        described = f"random_tiny_cnn width {args.width}, input (2, 128), 8 classes"
    x = rng.integers(-128, 128, (args.frames, *model.input_spec.shape)).astype(np.int8)
    reference = make_session(model)  # graph optimizations disabled
    optimized = make_session(model, ort.SessionOptions())  # ONNX Runtime's defaults

    contenders: dict[str, Callable[[], np.ndarray]] = {
        "onnxruntime (no graph opt.)": lambda: run_onnxruntime(reference, x),
        "onnxruntime (default opt.)": lambda: run_onnxruntime(optimized, x),
        "tinylarge tflm": lambda: run(model, x, arithmetic="tflm", batch_size=args.frames),
        "tinylarge onnx": lambda: run(model, x, arithmetic="onnx", batch_size=args.frames),
    }
    medians_s = {}
    print(f"model             : {described}")
    print(f"frames per batch  : {args.frames}, repeats: {args.repeats} (after 1 warm-up)")
    for name, fn in contenders.items():
        time.sleep(PAUSE_S)  # let the previous contender's spinning worker threads go idle
        median_s, times_s = _median_seconds(fn, args.repeats)
        medians_s[name] = median_s
        print(
            f"{name:28s}: median {median_s * 1e3:8.2f} ms (min {min(times_s) * 1e3:.2f}, "
            f"max {max(times_s) * 1e3:.2f})  {args.frames / median_s:12,.0f} frames/s"
        )
    ort_best_s = min(
        medians_s["onnxruntime (no graph opt.)"], medians_s["onnxruntime (default opt.)"]
    )
    for name in ("tinylarge tflm", "tinylarge onnx"):
        ratio = ort_best_s / medians_s[name]
        print(f"{name} / fastest onnxruntime speed ratio: {ratio:.2f}")

    exact = np.array_equal(
        contenders["tinylarge onnx"](), contenders["onnxruntime (no graph opt.)"]()
    )
    lsb = np.abs(
        contenders["tinylarge tflm"]().astype(np.int16) - contenders["tinylarge onnx"]()
    ).max()
    print(f"onnx mode == onnxruntime: {exact}; max |tflm - onnx|: {lsb} LSB")
    print(f"machine           : {platform.platform()}, {platform.machine()}")
    print(f"cpu count         : {os.cpu_count()}")
    print(
        f"python / numpy / onnxruntime: {platform.python_version()} / {np.__version__} / "
        f"{ort.__version__}"
    )
    slowest = max(medians_s["tinylarge tflm"], medians_s["tinylarge onnx"])
    verdict = "MET" if ort_best_s / slowest >= GOAL_RATIO else "NOT MET"
    print(
        f"goal              : both modes >= {GOAL_RATIO:g} x the fastest onnxruntime frames/s "
        f"-> {verdict} (worst ratio {ort_best_s / slowest:.2f})"
    )


if __name__ == "__main__":
    main()
