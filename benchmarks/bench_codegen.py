"""The generated C of a tiny model: host frames/s, and Cortex-M4 instructions and memory.

Run by hand::

    python benchmarks/bench_codegen.py [--frames 4096] [--single 1024] [--repeats 5] [--seed 0]
    python benchmarks/bench_codegen.py --model runs/<run>/tiny_int8.tlm [--no-qemu]

The model is `tinylarge.tiny.examples.random_tiny_cnn` (the default tiny CNN's layout on a
(2, 128) radio frame, random int8 weights) or a saved TinyModel given with ``--model``.

Host: every runner in `make_runners` (the generated C compiled with the host gcc -O2 and called
through ctypes, the numpy runtime ``run(..., arithmetic="tflm")``, and TensorFlow Lite Micro's
own interpreter on the exported ``.tflite``, one frame per invoke) maps the same int8
frames to outputs; printed are the median wall time over the repeats (after one warm-up) and
frames per second, batched (all frames in one call) and single-frame (one call per frame, over
the first ``--single`` frames), and whether every runner's outputs equal the numpy runtime's.

Cortex-M4 (unless ``--no-qemu``): `tinylarge.tiny.codegen.c_check` on ``--qemu-frames`` frames
under QEMU mps2-an386: mismatches, instructions per inference (within the model library's
functions) and per MAC, flash and SRAM of the model
library (text/data/bss from arm-none-eabi-size, plus the measured stack), the whole ELF, and
the footprint model's TFLite Micro estimate for comparison. Instructions are not cycles.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinylarge.tiny.codegen import HostModel, c_check, export_c
from tinylarge.tiny.examples import random_tiny_cnn
from tinylarge.tiny.footprint import footprint
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.model_file import load_tiny_model
from tinylarge.tiny.runtime import run
from tinylarge.tiny.tflite_export import to_tflite
from tinylarge.tiny.tflm_check import TflmInterpreter

Runner = Callable[[np.ndarray], np.ndarray]
#: MCU profile of the footprint estimate printed beside the measurement (a Cortex-M4).
ESTIMATE_MCU = "stm32l4r5"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def make_runners(model: TinyModel, work_dir: Path) -> dict[str, Runner]:
    """``{name: f(int8 frames (N, ...)) -> int8 outputs (N, ...)}``: the contenders."""
    export_c(model, work_dir)
    host = HostModel(work_dir)
    tflm = TflmInterpreter(to_tflite(model), model.output_spec.shape)  # one frame per invoke
    return {
        "C (host gcc -O2, ctypes)": host.run,
        "numpy runtime (tflm)": lambda x: run(model, x, arithmetic="tflm"),
        "TFLM interpreter (.tflite)": tflm.run,
    }


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times_s.append(time.perf_counter() - start)
    return statistics.median(times_s)


def bench_host(runners: dict[str, Runner], x: np.ndarray, single: int, repeats: int) -> None:
    """Print batched and single-frame frames/s of each runner, and output agreement."""
    reference = runners["numpy runtime (tflm)"](x)
    first = x[:single]
    print(f"{'runner':28s} {'batched frames/s':>18s} {'single-frame frames/s':>22s}  exact")
    for name, runner in runners.items():
        batched_s = _median_s(lambda: runner(x), repeats)  # noqa: B023 (called at once)
        single_s = _median_s(lambda: [runner(f[None]) for f in first], repeats)  # noqa: B023
        exact = np.array_equal(runner(x), reference)
        print(f"{name:28s} {len(x) / batched_s:18,.0f} {len(first) / single_s:22,.0f}  {exact}")


def bench_m4(model: TinyModel, x: np.ndarray, work_dir: Path, count_frames: int) -> None:
    """Print the Cortex-M4 check and measurements, and the TFLM footprint estimate."""
    start = time.perf_counter()
    check = c_check(model, x, work_dir, count_frames=count_frames)
    elapsed_s = time.perf_counter() - start
    lib, elf = check.library, check.program
    estimate = footprint(model, ESTIMATE_MCU)
    print(f"Cortex-M4 (QEMU mps2-an386), {check.frames} frames, {elapsed_s:.1f} s in all")
    print(f"  mismatches vs numpy runtime : {check.mismatches} (max {check.max_abs_lsb} LSB)")
    print(f"  MACs per inference          : {check.macs:,}")
    print(f"  instructions per inference  : {check.instructions_per_inference:,.0f} (library)")
    print(f"  instructions per MAC        : {check.instructions_per_mac:.2f}")
    print(f"  library text/data/bss       : {lib.text:,} / {lib.data:,} / {lib.bss:,} B")
    print(f"  arena, stack high-water     : {check.arena_bytes:,} B, {check.stack_bytes:,} B")
    print(f"  flash, SRAM (measured)      : {check.flash_bytes:,} B, {check.sram_bytes:,} B")
    print(f"  whole ELF text/data/bss     : {elf.text:,} / {elf.data:,} / {elf.bss:,} B (newlib)")
    print(
        f"  TFLM estimate ({ESTIMATE_MCU}) : flash {estimate.flash_bytes:,} B "
        f"(interpreter + kernels {estimate.flash.runtime_code_bytes:,} B), "
        f"SRAM {estimate.peak_sram_bytes:,} B"
    )


def main() -> None:
    """Parse arguments, run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=_positive_int, default=4096, help="batched frames")
    parser.add_argument("--single", type=_positive_int, default=1024, help="single-frame calls")
    parser.add_argument("--repeats", type=_positive_int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=None, help="a .tlm file instead")
    parser.add_argument("--qemu-frames", type=_positive_int, default=1000)
    parser.add_argument("--count-frames", type=_positive_int, default=64)
    parser.add_argument("--no-qemu", action="store_true", help="host figures only")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    if args.model is not None:
        model = load_tiny_model(args.model)
        described = f"{args.model}, input {model.input_spec.shape}"
    else:
        model = random_tiny_cnn(rng)
        described = "random_tiny_cnn, input (2, 128), 8 classes"
    x = rng.integers(-128, 128, (args.frames, *model.input_spec.shape)).astype(np.int8)
    print(f"model   : {described}")
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs"
    print(f"machine : {machine}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-codegen-") as tmp:
        work = Path(tmp)
        bench_host(make_runners(model, work / "host"), x, min(args.single, len(x)), args.repeats)
        if not args.no_qemu:
            bench_m4(model, x[: args.qemu_frames], work / "m4", max(2, args.count_frames))


if __name__ == "__main__":
    main()
