"""Check and measure the generated C of a model on an emulated Cortex-M4: `c_check`.

Exports the model, builds the Cortex-M4 ELF, runs every frame under QEMU and compares with
``run(model, x, arithmetic="tflm")``, then counts instructions per inference. The result is a
`tinylarge.tiny.measured.CCheck`, whose docstring defines each figure (flash and SRAM of the
model library, stack high-water mark, instructions per inference and per MAC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinylarge.tiny.codegen.build import build_m4
from tinylarge.tiny.codegen.c_source import export_c
from tinylarge.tiny.codegen.qemu import QEMU_TIMEOUT_S, count_instructions, run_qemu
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.measured import CCheck
from tinylarge.tiny.runtime import run

#: Frames used for counting instructions (the count needs two runs, 1 and N frames).
COUNT_FRAMES = 64


def c_check(
    model: TinyModel,
    frames: np.ndarray,
    work_dir: str | Path,
    *,
    count_frames: int = COUNT_FRAMES,
    timeout_s: float = QEMU_TIMEOUT_S,
) -> CCheck:
    """Export, cross-compile, run under QEMU and measure ``model`` on int8 ``frames``.

    Parameters
    ----------
    model : TinyModel
        The int8 model.
    frames : int8 array, shape (N, *input_shape)
        Frames to compare on (N >= 2); the first ``count_frames`` are also used to count
        instructions.
    work_dir : path
        Where the C sources and the build go.
    count_frames : int
        Frames of the instruction-count run (at least 2).
    timeout_s : float
        Timeout of each QEMU run, seconds.
    """
    out = Path(work_dir)
    export_c(model, out)
    build = build_m4(out)
    result = run_qemu(build.elf, frames, timeout_s=timeout_s)
    expected = run(model, frames, arithmetic="tflm").reshape(len(frames), -1)
    diff = np.abs(result.outputs.astype(np.int16) - expected.astype(np.int16))
    count = count_instructions(
        build.elf, frames[: max(2, count_frames)], build.library_range, timeout_s=timeout_s
    )
    lib = build.library_sizes
    return CCheck(
        frames=len(frames),
        mismatches=int(np.count_nonzero(diff)),
        max_abs_lsb=int(diff.max(initial=0)),
        flash_bytes=lib.flash_bytes,
        sram_bytes=lib.ram_bytes + max(result.stack_bytes, 0),
        stack_bytes=result.stack_bytes,
        arena_bytes=build.arena_bytes,
        instructions_per_inference=count.per_inference,
        instructions_per_mac=count.per_inference / build.macs if build.macs else float("nan"),
        macs=build.macs,
        library=lib,
        program=build.elf_sizes,
    )
