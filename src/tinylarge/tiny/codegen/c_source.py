"""Generate a self-contained C99 library for a `TinyModel`: `export_c`.

The library has no interpreter and no ``malloc``:

* ``<prefix>model.c``: the weights, int32 biases and the per-channel Q31 multipliers and
  shifts as ``const`` arrays (in flash on a microcontroller), each op's parameters as a
  ``const`` struct, ONE static int8 activation arena laid out by
  `tinylarge.tiny.memory_plan.plan_memory` (its offsets are used as they are), and the entry
  point ``int <prefix>invoke(const int8_t *in, int8_t *out)`` (copies the input frame into the
  arena, runs the ops in order, copies the output out; returns 0, or -1 for a NULL pointer);
* ``<prefix>model.h``: input/output shapes, sizes, scales and zero points, the arena size and
  the MACs per inference as macros, and the prototype;
* ``tl_kernels.c`` / ``tl_kernels.h``: the integer kernels (TensorFlow Lite Micro's reference
  arithmetic: ``SaturatingRoundingDoublingHighMul``, ``RoundingDivideByPOT``, per-channel
  multipliers), the same for every model;
* ``<prefix>main.c``: a test harness (frames in and outputs out through stdio, stack
  high-water mark by painting), not part of the library;
* ``<prefix>model.json``: shapes, sizes and prefix for the build helpers.

Every requantization constant comes from the runtime's own functions
(`tinylarge.tiny.requantize.conv_requantizer`, `tinylarge.tiny.fixed_point.quantize_multiplier`),
so the C computes what ``run(model, x, arithmetic="tflm")`` computes, bit for bit. Several
models can share one directory (and one compiled library) under different prefixes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tinylarge.tiny.codegen.c_text import c_comment, c_float
from tinylarge.tiny.codegen.ops import OpCode, op_code
from tinylarge.tiny.footprint import layer_row
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.memory_plan import MemoryPlan, plan_memory
from tinylarge.tiny.program import compile_model

KERNELS_C = "tl_kernels.c"
KERNELS_H = "tl_kernels.h"
#: Valid symbol prefixes: a C identifier start, ending in an underscore.
PREFIX_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*_$")


@dataclass(frozen=True)
class CExport:
    """Paths of an exported model (see the module docstring) and its sizes."""

    out_dir: Path
    prefix: str
    model_c: Path
    model_h: Path
    kernels_c: Path
    kernels_h: Path
    main_c: Path
    manifest: Path
    input_size: int
    output_size: int
    arena_bytes: int

    @property
    def library_sources(self) -> tuple[Path, ...]:
        """The library's C files (without the harness)."""
        return (self.model_c, self.kernels_c)


def template(name: str) -> str:
    """Text of a C template shipped in ``tinylarge/tiny/codegen/templates``."""
    return resources.files("tinylarge.tiny.codegen").joinpath("templates", name).read_text()


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a valid symbol prefix (e.g. ``"tl_"``), else ValueError."""
    if not PREFIX_PATTERN.match(prefix):
        raise ValueError(
            f"prefix must be a C identifier ending in '_' (e.g. 'tl_', 'm3_'), got {prefix!r}"
        )
    return prefix


def export_c(model: TinyModel, out_dir: str | Path, *, prefix: str = "tl_") -> CExport:
    """Write the C library, header, kernels and harness of ``model`` into ``out_dir``.

    Parameters
    ----------
    model : TinyModel
        The int8 model; its ops are checked as the runtime checks them (`compile_model`).
    out_dir : path
        Created if missing; files of other prefixes in it are left alone.
    prefix : str, default "tl_"
        Prefix of the generated symbols, files and macros (upper-cased for macros).

    Returns
    -------
    CExport
    """
    check_prefix(prefix)
    compile_model(model, "tflm", fuse=False)  # same shape and attribute checks as the runtime
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_memory(model)
    codes = [op_code(model, op, f"{prefix}op{i}") for i, op in enumerate(model.ops)]
    macs = sum(layer_row(model, op).macs for op in model.ops)
    paths = {
        "model_c": out / f"{prefix}model.c",
        "model_h": out / f"{prefix}model.h",
        "kernels_c": out / KERNELS_C,
        "kernels_h": out / KERNELS_H,
        "main_c": out / f"{prefix}main.c",
        "manifest": out / f"{prefix}model.json",
    }
    _write(paths["kernels_c"], template(KERNELS_C))
    _write(paths["kernels_h"], template(KERNELS_H))
    _write(paths["model_h"], _header(model, plan, prefix, macs))
    _write(paths["model_c"], _source(model, plan, prefix, codes))
    main = template("tl_main.c").replace("@prefix@", prefix).replace("@PREFIX@", prefix.upper())
    _write(paths["main_c"], main)
    manifest = {
        "prefix": prefix,
        "input_shape": list(model.input_spec.shape),
        "output_shape": list(model.output_spec.shape),
        "input_size": model.input_spec.size,
        "output_size": model.output_spec.size,
        "arena_bytes": plan.arena_bytes,
        "macs": macs,
    }
    _write(paths["manifest"], json.dumps(manifest, indent=2) + "\n")
    return CExport(
        out_dir=out,
        prefix=prefix,
        input_size=model.input_spec.size,
        output_size=model.output_spec.size,
        arena_bytes=plan.arena_bytes,
        **paths,
    )


def _write(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (keeps timestamps for build caches)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _shape_macros(name: str, shape: tuple[int, ...], scale: float, zero_point: int) -> list[str]:
    return [
        f"#define {name}_RANK {len(shape)}",
        f"#define {name}_SHAPE {{{', '.join(str(d) for d in shape)}}}",
        f"#define {name}_SIZE {math.prod(shape)}",
        f"#define {name}_SCALE {c_float(scale)}",
        f"#define {name}_ZERO_POINT {zero_point}",
    ]


def _header(model: TinyModel, plan: MemoryPlan, prefix: str, macs: int) -> str:
    upper = prefix.upper()
    guard = f"{upper}MODEL_H"
    x, y = model.input_spec, model.output_spec
    lines = [
        f"/* {prefix}model.h: generated by tinylarge.tiny.codegen; do not edit.",
        " * int8 tensors, channel-major per sample; real = (q - ZERO_POINT) * SCALE. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        *_shape_macros(f"{upper}INPUT", x.shape, x.scale, x.zero_point),
        *_shape_macros(f"{upper}OUTPUT", y.shape, y.scale, y.zero_point),
        f"#define {upper}ARENA_BYTES {plan.arena_bytes} /* static activation arena */",
        f"#define {upper}MACS {macs} /* multiply-accumulates per inference */",
        "",
        f"/* Run the model on one frame of {upper}INPUT_SIZE int8 values; writes",
        f" * {upper}OUTPUT_SIZE int8 values. Returns 0 (or -1 for a NULL pointer). */",
        f"int {prefix}invoke(const int8_t *in, int8_t *out);",
        "",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)


def _source(model: TinyModel, plan: MemoryPlan, prefix: str, codes: list[OpCode]) -> str:
    in_off, out_off = plan.offset_of(model.input), plan.offset_of(model.output)
    lines = [
        f"/* {prefix}model.c: generated by tinylarge.tiny.codegen from a TinyModel; do not edit.",
        f" * Ops: {len(model.ops)}; activation arena: {plan.arena_bytes} bytes "
        f"(tinylarge.tiny.memory_plan, {plan.alignment}-byte alignment). */",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        f'#include "{prefix}model.h"',
        f'#include "{KERNELS_H}"',
        "",
        f"static int8_t {prefix}arena[{max(plan.arena_bytes, 1)}]"
        f" __attribute__((aligned({plan.alignment})));",
        "",
    ]
    for code in codes:
        if code.data:
            lines += [f"/* {c_comment(code.title)} */", *code.data, ""]
    lines += [
        f"int {prefix}invoke(const int8_t *in, int8_t *out) {{",
        f"    int8_t *const arena = {prefix}arena;",
        "    int32_t i;",
        "    if (in == NULL || out == NULL) {",
        "        return -1;",
        "    }",
        f"    for (i = 0; i < {model.input_spec.size}; ++i) {{",
        f"        arena[{in_off} + i] = in[i];",
        "    }",
    ]
    for code in codes:
        lines.append(f"    /* {c_comment(code.title)} */")
        call = code.call(
            [plan.offset_of(name) for name in code.inputs], plan.offset_of(code.output)
        )
        lines += [f"    {line}" for line in call]
    lines += [
        f"    for (i = 0; i < {model.output_spec.size}; ++i) {{",
        f"        out[i] = arena[{out_off} + i];",
        "    }",
        "    return 0;",
        "}",
        "",
    ]
    return "\n".join(lines)


__all__ = ["CExport", "check_prefix", "export_c", "template"]
