"""C code generation for the int8 `TinyModel`, built for the host and for a Cortex-M4.

`export_c` writes a self-contained C99 library (no interpreter, no malloc) whose
``tl_invoke`` computes what ``tinylarge.tiny.runtime.run(..., arithmetic="tflm")`` computes,
bit for bit; `tinylarge.tiny.codegen.build` compiles it for the host (`HostModel`, via ctypes)
and for an emulated Cortex-M4 (`build_m4`, `run_qemu`, `count_instructions`); `c_check`
checks and measures the Cortex-M4 build in one call.
"""

from __future__ import annotations

from tinylarge.tiny.codegen.build import HostModel, build_host_library, build_m4
from tinylarge.tiny.codegen.c_source import CExport, export_c
from tinylarge.tiny.codegen.check import c_check
from tinylarge.tiny.codegen.qemu import count_instructions, run_qemu
from tinylarge.tiny.codegen.toolchain import ToolchainError
from tinylarge.tiny.measured import CCheck

__all__ = [
    "CCheck",
    "CExport",
    "HostModel",
    "ToolchainError",
    "build_host_library",
    "build_m4",
    "c_check",
    "count_instructions",
    "export_c",
    "run_qemu",
]
