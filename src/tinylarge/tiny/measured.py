"""Measured, not estimated: what the generated C of a model costs on a Cortex-M4.

`tinylarge.tiny.codegen` writes the model as a C99 library, builds it with
``arm-none-eabi-gcc -mcpu=cortex-m4`` and runs it under QEMU (``mps2-an386``); its `c_check`
returns the measurement as a `CCheck`: flash (text + rodata + data of the library's own
objects, from ``arm-none-eabi-size``), SRAM (the static activation arena + data + bss + the
stack's high-water mark, measured by painting the stack), and executed instructions per
inference (counted by a QEMU TCG plugin). `tinylarge.tiny.footprint` *estimates* the same
quantities for an interpreter runtime, takes a `CCheck` in place of its estimate for the
generated-C profile, and puts both side by side (`tinylarge.tiny.footprint.comparison_rows`).

Instructions are not cycles. On a Cortex-M4 every instruction takes at least one cycle (Arm
Cortex-M4 Processor Technical Reference Manual, DDI 0439, the instruction timing table: most
data-processing instructions, MUL and the DSP multiply-accumulates take 1 cycle, loads 2, taken
branches more; flash wait states add more), so ``instructions / clock`` is a *lower bound* on
the latency, reported as such.
The interpreter runtimes keep their MLPerf Tiny-measured cycles per MAC (`tinylarge.tiny.mcu`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tinylarge.tiny.mcu import McuProfile

#: Where the measurement applies: boards with this core run the same Thumb-2 binary.
MEASURED_CORE = "Cortex-M4"


@dataclass(frozen=True)
class SectionSizes:
    """``arm-none-eabi-size`` figures, bytes: text (code + const data), data, bss."""

    text: int
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        """text + data (initialized data is stored in flash and copied to RAM)."""
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        """data + bss (static RAM, without the stack)."""
        return self.data + self.bss


@dataclass(frozen=True)
class CCheck:
    """The generated C of one model checked and measured on an emulated Cortex-M4 (`c_check`).

    Attributes
    ----------
    frames : int
        Frames run under QEMU and compared with ``run(model, x, arithmetic="tflm")``.
    mismatches : int
        Output elements that differ from the Python runtime.
    max_abs_lsb : int
        Largest absolute difference, int8 LSB.
    flash_bytes : int
        text (code + const weights, biases, multipliers) + data of the model library's objects
        (``<prefix>model.o`` + ``tl_kernels.o``), from ``arm-none-eabi-size``; the harness,
        start-up and newlib are not counted.
    sram_bytes : int
        data + bss of those objects (bss holds the activation arena) + ``stack_bytes``.
    stack_bytes : int
        Stack high-water mark of one ``invoke``, measured by painting the stack.
    arena_bytes : int
        The static activation arena of the generated C.
    instructions_per_inference : float
        Executed instructions within the library's functions, ``(count(N) - count(1)) /
        (N - 1)`` under a QEMU TCG plugin. Instructions are not cycles (a Cortex-M4 load takes
        2 cycles, a taken branch 2-4): a latency derived from them needs a cycles-per-
        instruction figure, stated where it is used (`latency_lower_bound_s`).
    instructions_per_mac : float
        ``instructions_per_inference`` / ``macs`` (NaN for a model without MACs).
    macs : int
        Multiply-accumulates per inference, as counted by `tinylarge.tiny.footprint`.
    library, program : SectionSizes
        Sizes of the model library's objects and of the whole ELF program.
    """

    frames: int
    mismatches: int
    max_abs_lsb: int
    flash_bytes: int
    sram_bytes: int
    stack_bytes: int
    arena_bytes: int
    instructions_per_inference: float
    instructions_per_mac: float
    macs: int
    library: SectionSizes
    program: SectionSizes

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def latency_lower_bound_s(measured: CCheck, clock_hz: float) -> float:
    """At least this long at ``clock_hz``: one cycle per instruction (module doc), s."""
    return measured.instructions_per_inference / clock_hz


def applies_to(profile: McuProfile) -> bool:
    """Whether the Cortex-M4 measurement holds for ``profile``'s core (M4 / M4F)."""
    return profile.core.startswith(MEASURED_CORE)
