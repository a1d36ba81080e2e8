"""Run a Cortex-M4 ELF of the generated harness under QEMU, and count its instructions.

`run_qemu` starts ``qemu-system-arm -M mps2-an386`` with semihosting (``target=native``; the
harness's ``fopen``/``fread``/``fwrite`` reach host files in a temporary working directory),
always under a timeout, and returns the outputs and the stack high-water mark the harness
printed. `count_instructions` loads a small TCG plugin (``templates/insncount.c``, plugin API
version 1, built with the host gcc at first use into the cache) that counts every executed
guest instruction, in all and within an address range (the model library's functions), and
derives instructions per inference as ``(count(N frames) - count(1 frame)) / (N - 1)``, which
removes start-up, stdio set-up and the one-off stack painting. Counts are exact and
repeatable; they are instructions, not cycles (Arm Cortex-M4 Technical Reference Manual,
DDI 0439, instruction timing: loads take 2 cycles and taken branches 2-4).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tinylarge.tiny.codegen.toolchain import (
    ToolchainError,
    cache_dir,
    content_key,
    find_tool,
    install_hint,
    run_tool,
)

QEMU = "qemu-system-arm"
MACHINE = "mps2-an386"
#: Default timeout of one QEMU run, seconds.
QEMU_TIMEOUT_S = 300.0
#: Exit code of the start-up file's fault handler (``tl_startup_m4.c``).
FAULT_EXIT_CODE = 250
_SUMMARY = re.compile(r"tl_main: frames=(\d+) stack_bytes=(-?\d+)")

Int8Array = npt.NDArray[np.int8]


@dataclass(frozen=True)
class QemuRun:
    """One QEMU run of the harness.

    ``outputs`` are ``(N, output_size)`` int8; ``stack_bytes`` the stack high-water mark of one
    ``invoke`` (bytes); ``instructions_all`` / ``instructions_in_range`` the plugin's counts
    (None without the plugin).
    """

    outputs: Int8Array
    stack_bytes: int
    stdout: str
    instructions_all: int | None = None
    instructions_in_range: int | None = None


def insncount_plugin() -> Path:
    """The instruction-counting plugin, built with the host gcc at first use (cached)."""
    from tinylarge.tiny.codegen.c_source import template

    source = template("insncount.c")
    flags = ["-O2", "-shared", "-fPIC", "-std=gnu99"]
    target = cache_dir() / f"libinsncount-{content_key(source, ' '.join(flags))}.so"
    if not target.exists():
        src = target.with_suffix(".c")
        src.write_text(source)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so")
        os.close(fd)
        try:
            run_tool(["gcc", *flags, src, "-o", tmp])
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


def run_qemu(
    elf: str | Path,
    frames: np.ndarray,
    *,
    count_range: tuple[int, int] | None = None,
    count: bool = False,
    timeout_s: float = QEMU_TIMEOUT_S,
) -> QemuRun:
    """Run the harness ELF on int8 ``frames`` ``(N, ...)`` under QEMU ``mps2-an386``.

    Parameters
    ----------
    elf : path
        From `tinylarge.tiny.codegen.build.build_m4`.
    frames : int8 array, shape (N, *input_shape)
        N >= 1 frames, written to a file the harness reads through semihosting.
    count_range : (int, int), optional
        Also count instructions with addresses in ``[lo, hi)`` (implies ``count``).
    count : bool
        Load the instruction-counting plugin.
    timeout_s : float
        QEMU is killed after this many seconds (an endless loop would hang it).
    """
    if not isinstance(frames, np.ndarray) or frames.dtype != np.int8 or len(frames) < 1:
        raise ValueError("frames must be a non-empty numpy int8 array (N, *input_shape)")
    elf = Path(elf).resolve()
    qemu = find_tool(QEMU)
    with tempfile.TemporaryDirectory(prefix="tl-qemu-") as work_dir:
        work = Path(work_dir)
        np.ascontiguousarray(frames).tofile(work / "frames.bin")
        semihosting = "enable=on,target=native,arg=model.elf,arg=frames.bin,arg=outputs.bin"
        command = [qemu, "-M", MACHINE, "-display", "none", "-monitor", "none", "-serial", "none"]
        command += ["-semihosting-config", semihosting, "-kernel", str(elf)]
        if count or count_range is not None:
            plugin = str(insncount_plugin())
            if "," in plugin:
                raise ToolchainError(f"the plugin path must not contain a comma: {plugin}")
            plugin += ",out=counts.txt"
            if count_range is not None:
                plugin += f",lo={count_range[0]:#x},hi={count_range[1]:#x}"
            command += ["-plugin", plugin]
        try:
            done = subprocess.run(
                command,
                cwd=work,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ToolchainError(f"QEMU ran longer than {timeout_s:g} s on {elf}") from exc
        if done.returncode != 0:
            what = " (a CPU fault)" if done.returncode == FAULT_EXIT_CODE else ""
            raise ToolchainError(
                f"{elf.name} under QEMU exited with {done.returncode}{what}\n"
                f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
            )
        summary = _SUMMARY.search(done.stdout)
        if summary is None or int(summary.group(1)) != len(frames):
            raise ToolchainError(f"unexpected harness output: {done.stdout[-2000:]!r}")
        raw = np.fromfile(work / "outputs.bin", dtype=np.int8)
        counts = _read_counts(work / "counts.txt") if "-plugin" in command else (None, None)
    return QemuRun(
        outputs=raw.reshape(len(frames), -1),
        stack_bytes=int(summary.group(2)),
        stdout=done.stdout,
        instructions_all=counts[0],
        instructions_in_range=counts[1] if count_range is not None else None,
    )


def _read_counts(path: Path) -> tuple[int, int]:
    if not path.exists():
        raise ToolchainError(f"the instruction-counting plugin wrote no {path.name}")
    values = dict(line.split() for line in path.read_text().splitlines() if line.strip())
    return int(values["all"]), int(values["range"])


@dataclass(frozen=True)
class InstructionCount:
    """Instructions per inference from two plugin runs (N frames and 1 frame).

    ``per_inference`` counts instructions in the counted address range (the model library);
    ``per_inference_program`` counts every instruction, harness I/O per frame included.
    """

    frames: int
    per_inference: float
    per_inference_program: float
    range_counts: tuple[int, int]
    all_counts: tuple[int, int]


def count_instructions(
    elf: str | Path,
    frames: np.ndarray,
    address_range: tuple[int, int],
    *,
    timeout_s: float = QEMU_TIMEOUT_S,
) -> InstructionCount:
    """Instructions per inference of ``elf`` on ``frames`` (N >= 2), counted under QEMU.

    ``address_range`` is ``[lo, hi)`` of the code to count (e.g. `M4Build.library_range`).
    """
    if len(frames) < 2:
        raise ValueError("count_instructions needs at least 2 frames")
    one = run_qemu(elf, frames[:1], count_range=address_range, timeout_s=timeout_s)
    many = run_qemu(elf, frames, count_range=address_range, timeout_s=timeout_s)
    assert one.instructions_in_range is not None and many.instructions_in_range is not None
    assert one.instructions_all is not None and many.instructions_all is not None
    n = len(frames)
    return InstructionCount(
        frames=n,
        per_inference=(many.instructions_in_range - one.instructions_in_range) / (n - 1),
        per_inference_program=(many.instructions_all - one.instructions_all) / (n - 1),
        range_counts=(one.instructions_in_range, many.instructions_in_range),
        all_counts=(one.instructions_all, many.instructions_all),
    )


__all__ = [
    "InstructionCount",
    "QemuRun",
    "count_instructions",
    "insncount_plugin",
    "install_hint",
    "run_qemu",
]
