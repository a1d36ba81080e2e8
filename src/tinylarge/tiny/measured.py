"""Measured, not estimated: what the generated C of a model costs on a Cortex-M4.

`tinylarge.tiny.codegen` writes the model as a C99 library, builds it with
``arm-none-eabi-gcc -mcpu=cortex-m4`` and runs it under QEMU (``mps2-an386``). From that build
and run come: flash (text + rodata + data of the library's own objects, from
``arm-none-eabi-size``), SRAM (the static activation arena + data + bss + the stack's high-water
mark, measured by painting the stack), and executed instructions per inference (counted by a
QEMU TCG plugin). `tinylarge.tiny.footprint` *estimates* the same quantities for an interpreter
runtime; `comparison_rows` puts both side by side, labelled.

Instructions are not cycles. On a Cortex-M4 every instruction takes at least one cycle (Arm
Cortex-M4 Processor Technical Reference Manual, DDI 0439, the instruction timing table: most
data-processing instructions, MUL and the DSP multiply-accumulates take 1 cycle, loads 2, taken
branches more; flash wait states add more), so ``instructions / clock`` is a *lower bound* on
the latency, reported as such.
The interpreter runtimes keep their MLPerf Tiny-measured cycles per MAC (`tinylarge.tiny.mcu`).
"""

from __future__ import annotations

from tinylarge.tiny.codegen.check import CCheck
from tinylarge.tiny.footprint import Footprint
from tinylarge.tiny.mcu import McuProfile

#: Where the measurement applies: boards with this core run the same Thumb-2 binary.
MEASURED_CORE = "Cortex-M4"


def latency_lower_bound_s(measured: CCheck, clock_hz: float) -> float:
    """At least this long at ``clock_hz``: one cycle per instruction (module doc), s."""
    return measured.instructions_per_inference / clock_hz


def applies_to(profile: McuProfile) -> bool:
    """Whether the Cortex-M4 measurement holds for ``profile``'s core (M4 / M4F)."""
    return profile.core.startswith(MEASURED_CORE)


def comparison_rows(estimate: Footprint, measured: CCheck) -> list[list[str]]:
    """Rows ``[quantity, estimate (interpreter runtime), measured (generated C)]``."""
    mcu = estimate.mcu
    lower = latency_lower_bound_s(measured, mcu.clock_hz)
    return [
        ["flash (B)", f"{estimate.flash_bytes:,}", f"{measured.flash_bytes:,}"],
        ["SRAM (B)", f"{estimate.peak_sram_bytes:,}", f"{measured.sram_bytes:,}"],
        ["  of which stack (B)", "not modelled", f"{measured.stack_bytes:,}"],
        [
            f"latency at {mcu.clock_hz / 1e6:g} MHz (ms)",
            f"{1e3 * estimate.latency_s:.3f} ({mcu.cycles_per_mac:g} cycles/MAC, {mcu.runtime})",
            f">= {1e3 * lower:.3f} (>= 1 cycle per instruction)",
        ],
        [
            "instructions per MAC",
            "n/a",
            f"{measured.instructions_per_mac:.2f} ({measured.instructions_per_inference:,.0f}"
            " per inference)",
        ],
    ]
