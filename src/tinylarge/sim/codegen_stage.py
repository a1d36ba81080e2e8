"""The ``tiny_c`` stage: the int8 model as generated C, run on an emulated Cortex-M4 and
measured (`tinylarge.tiny.codegen.c_check`): ``models.tiny_int8.c_check`` in metrics.json."""

from __future__ import annotations

import tempfile

from tinylarge.sim.stages import StageContext
from tinylarge.sim.state import RunState
from tinylarge.tiny.codegen import ToolchainError, c_check
from tinylarge.tiny.footprint import footprint
from tinylarge.tiny.mcu import GENERATED_C_RUNTIME
from tinylarge.tiny.measured import applies_to

#: Metrics path of the check (skipped, with the install command, without the toolchain).
C_CHECK_PATH = "models.tiny_int8.c_check"


def tiny_c_stage(state: RunState, ctx: StageContext) -> str:
    """Export the int8 model as C, build it for a Cortex-M4, run every test frame under QEMU
    against the integer runtime, and measure flash, SRAM, stack and instructions; the MCU
    profiles whose runtime is the generated C then cost the model with the measurement."""
    task, model = state.require_task(), state.require_tiny_int8()
    frames = model.quantize_input(task.x_test)
    try:
        with tempfile.TemporaryDirectory(prefix="tinylarge-c-") as work:
            check = c_check(model, frames, work)
    except ToolchainError as error:
        state.skip(C_CHECK_PATH, f"no Cortex-M4 toolchain or QEMU here: {error}")
        return f"skipped: {error}"
    state.c_check = check
    for name, estimate in list(state.footprints.items()):  # the measured figures win
        if estimate.mcu.runtime == GENERATED_C_RUNTIME and applies_to(estimate.mcu):
            state.footprints[name] = footprint(model, estimate.mcu, measured=check)
    return (
        f"Cortex-M4 (QEMU): {check.mismatches:,} of {check.frames * model.output_spec.size:,} "
        f"outputs differ from the runtime; flash {check.flash_bytes:,} B, SRAM "
        f"{check.sram_bytes:,} B (stack {check.stack_bytes:,} B), "
        f"{check.instructions_per_inference:,.0f} instructions per inference "
        f"({check.instructions_per_mac:.1f} per MAC)"
    )
