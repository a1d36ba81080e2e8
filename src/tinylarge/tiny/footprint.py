"""Cost of a `TinyModel` on a microcontroller: MACs, flash, peak SRAM, latency and energy.

All counts are per inference of one sample (batch 1), int8 activations (one byte per element).

MACs: ``conv`` = output elements x (C_in / groups) x prod(kernel); ``linear`` = in x out; every
other op has 0 MACs and its arithmetic is listed as *element ops* (pooling: output elements x
window; global average pooling: input elements; ``add`` / ``relu``: output elements; ``flatten``:
0). Latency uses MACs only, because the cycles/MAC figures of `tinylarge.tiny.mcu` are measured
over whole networks and already contain pooling, requantization and interpreter overheads.

Flash (bytes), modelled on a TFLite Micro deployment (a ``.tflite`` flatbuffer + interpreter):

* int8 weights (1 B each) and int32 biases (4 B each);
* quantization parameters, `QUANT_BYTES_PER_CHANNEL` (12 B) per channel of every quantized
  tensor: a float32 scale (4 B) and an int64 zero point (8 B), as TFLite's ``schema.fbs``
  stores them (``QuantizationParameters { scale:[float]; zero_point:[long] }``). Activation
  tensors have one channel; weight and bias tensors one per output channel. (The int32
  multiplier and shift are *not* in flash: TFLite Micro computes them at ``Prepare`` and keeps
  them in the arena, see `REQUANT_BYTES_PER_CHANNEL`.)
* flatbuffer structure, ESTIMATES from the schema layout: `FLATBUFFER_BYTES_PER_TENSOR`,
  `FLATBUFFER_BYTES_PER_OP`, `FLATBUFFER_MODEL_BYTES`. Check: TFLite Micro's int8 hello_world
  model (3 fully-connected layers 1-16-16-1, 10 tensors, 3 ops, per-tensor quantization) is
  2,488 B (``g_model_len``); these constants give 2,468 B for it (-0.8 %): 288 B weights +
  132 B biases + 10 quantized tensors x 12 B + 10 x 112 + 3 x 56 + 640.
* interpreter code (optional): `TFLM_CORE_RUNTIME_BYTES` + `KERNEL_CODE_BYTES` per distinct
  kernel.

Peak SRAM (bytes) = the activation arena of `tinylarge.tiny.memory_plan` (greedy plan, 16-byte
alignment, CMSIS-NN convolution scratch buffers included by default) + persistent data:
`PERSISTENT_BYTES_PER_TENSOR` per graph tensor and `REQUANT_BYTES_PER_CHANNEL` per output
channel of every conv/linear. The application's own stack, heap and I/O buffers are not counted.

Latency (s) = (MACs x cycles_per_mac + ops x per_op_overhead_cycles) / clock_hz; energy (J) =
active_power_w x latency_s (in the MLPerf Tiny energy results a board's power is nearly constant
across tasks).

A generated-C profile can take a measurement (`tinylarge.tiny.measured.CCheck`) in place of the
estimate; `comparison_rows` puts estimate and measurement side by side.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from tinylarge.tiny.graph import WEIGHTED, Op, TinyModel
from tinylarge.tiny.mcu import GENERATED_C_RUNTIME, McuProfile, mcu_profile
from tinylarge.tiny.measured import MEASURED_CORE, CCheck, applies_to, latency_lower_bound_s
from tinylarge.tiny.memory_plan import (
    TFLM_ALIGNMENT_BYTES,
    MemoryPlan,
    plan_memory,
    tensor_lifetimes,
)

#: int32 bias, bytes per output channel.
BIAS_BYTES = 4
#: float32 scale + int64 zero point per quantized channel in a .tflite file (TFLite schema.fbs).
QUANT_BYTES_PER_CHANNEL = 4 + 8
#: ESTIMATE: flatbuffer bytes per tensor beyond its data and quantization vectors: Tensor table
#: and vtable (~28), shape vector (~16 for rank 3), name string (~36), QuantizationParameters
#: table with vector length prefixes (~20), Buffer table (~12).
FLATBUFFER_BYTES_PER_TENSOR = 112
#: ESTIMATE: flatbuffer bytes per operator: Operator table and vtable (~20), inputs vector
#: (~16), outputs vector (~8), builtin options table (~12).
FLATBUFFER_BYTES_PER_OP = 56
#: ESTIMATE: flatbuffer bytes per model: root table, version, operator codes, subgraph table,
#: description string, min_runtime_version metadata buffer, padding.
FLATBUFFER_MODEL_BYTES = 640
#: TFLite Micro core runtime, bytes: "The core runtime just fits in 16 KB on an Arm Cortex M3"
#: (TensorFlow Lite for Microcontrollers overview, tensorflow.org/lite/microcontrollers).
TFLM_CORE_RUNTIME_BYTES = 16 * 1024
#: Kernel code per distinct op kind, bytes. DERIVED from the same overview (2019 edition): 16 KB
#: core runtime, 22 KB with the ops of the speech keyword model, whose op resolver registers 3
#: kernels (DEPTHWISE_CONV_2D, FULLY_CONNECTED, SOFTMAX): (22 - 16) KB / 3 = 2 KB.
KERNEL_CODE_BYTES = 2 * 1024
#: Code per distinct op kind of this project's generated C (`tinylarge.tiny.codegen`), bytes.
#: MEASURED 2026-12-02 (arm-none-eabi-gcc 12.2, -mcpu=cortex-m4 -O2): the default tiny CNN's
#: library is 3,492 B of text + data, of which 1,744 B are weights, biases and quantization
#: parameters; the rest over its 5 op kinds is 350 B each.
GENERATED_C_KERNEL_CODE_BYTES = 350
#: Persistent arena bytes per graph tensor (activations, weights and biases all count). DERIVED
#: from TFLite Micro's memory_arena_threshold_test.cc (x86-64): the 54-tensor keyword model has
#: a 14,320 B persistent tail, of which 10,240 B are variable-tensor state of its SVDF layers
#: (no such op here): (14,320 - 10,240) / 54 = 75.6 -> 76 B per tensor. This amortizes the eval
#: tensor, node/registration and op-data structs; 64-bit pointers make it conservative on
#: 32-bit MCUs.
PERSISTENT_BYTES_PER_TENSOR = 76
#: Per output channel of conv/linear: int32 multiplier + int32 shift kept in the persistent
#: arena (TFLite Micro ``OpDataConv::per_channel_output_multiplier`` / ``_shift``).
REQUANT_BYTES_PER_CHANNEL = 4 + 4

LAYER_TABLE_COLUMNS = (
    "op", "kind", "output shape", "MACs", "element ops", "params (B)", "activations (B)",
)  # fmt: skip


@dataclass(frozen=True)
class LayerRow:
    """One op: output shape (no batch), MACs, element ops, parameter and activation bytes.

    ``param_bytes`` = int8 weights + int32 biases; ``activation_bytes`` = output tensor bytes.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    macs: int
    element_ops: int
    param_bytes: int
    activation_bytes: int


@dataclass(frozen=True)
class FlashBreakdown:
    """Flash bytes by component (see the module docstring)."""

    weights_bytes: int
    biases_bytes: int
    quantization_bytes: int
    graph_bytes: int
    runtime_code_bytes: int

    @property
    def total_bytes(self) -> int:
        """Sum of the components, bytes."""
        return (
            self.weights_bytes
            + self.biases_bytes
            + self.quantization_bytes
            + self.graph_bytes
            + self.runtime_code_bytes
        )


@dataclass(frozen=True)
class SramBreakdown:
    """SRAM bytes: planned activation arena + persistent tensor data + requantization arrays."""

    arena_bytes: int
    persistent_bytes: int
    requant_bytes: int

    @property
    def total_bytes(self) -> int:
        """Peak SRAM, bytes."""
        return self.arena_bytes + self.persistent_bytes + self.requant_bytes


def _bytes_message(budget: str, need: int, have: int) -> str:
    return f"{budget}: needs {need:,} B, has {have:,} B (over by {need - have:,} B)"


@dataclass(frozen=True)
class Footprint:
    """A model's cost on one MCU. Build it with `footprint`."""

    layers: tuple[LayerRow, ...]
    mcu: McuProfile
    flash: FlashBreakdown
    sram: SramBreakdown
    memory_plan: MemoryPlan
    latency_s: float
    energy_j: float

    @property
    def macs(self) -> int:
        """Total multiply-accumulates per inference."""
        return sum(row.macs for row in self.layers)

    @property
    def element_ops(self) -> int:
        """Total non-MAC element operations per inference."""
        return sum(row.element_ops for row in self.layers)

    @property
    def param_bytes(self) -> int:
        """int8 weights + int32 biases, bytes."""
        return self.flash.weights_bytes + self.flash.biases_bytes

    @property
    def flash_bytes(self) -> int:
        """Total flash (model + interpreter code unless excluded), bytes."""
        return self.flash.total_bytes

    @property
    def peak_sram_bytes(self) -> int:
        """Activation arena + persistent interpreter data, bytes."""
        return self.sram.total_bytes

    @property
    def violations(self) -> tuple[str, ...]:
        """One message per exceeded budget, e.g. ``"SRAM: needs 300,000 B, has 262,144 B ..."``."""
        out = []
        if self.flash_bytes > self.mcu.flash_bytes:
            out.append(_bytes_message("Flash", self.flash_bytes, self.mcu.flash_bytes))
        if self.peak_sram_bytes > self.mcu.sram_bytes:
            out.append(_bytes_message("SRAM", self.peak_sram_bytes, self.mcu.sram_bytes))
        return tuple(out)

    @property
    def fits(self) -> bool:
        """Whether both flash and SRAM budgets hold."""
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (numbers, strings, lists and dicts only)."""
        return {
            "mcu": self.mcu.model_dump(),
            "macs": self.macs,
            "element_ops": self.element_ops,
            "param_bytes": self.param_bytes,
            "flash_bytes": self.flash_bytes,
            "flash": {**asdict(self.flash), "total_bytes": self.flash_bytes},
            "peak_sram_bytes": self.peak_sram_bytes,
            "sram": {**asdict(self.sram), "total_bytes": self.peak_sram_bytes},
            "latency_s": self.latency_s,
            "energy_j": self.energy_j,
            "fits": self.fits,
            "violations": list(self.violations),
            "layers": [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.layers],
            "memory_plan": self.memory_plan.to_dict(),
        }


def _kernel(model: TinyModel, op: Op) -> tuple[int, ...]:
    """Spatial kernel of a conv (from its weight) or pooling op (from attrs)."""
    if op.kind == "conv":
        return tuple(int(d) for d in op.constant(model, "weight").shape[2:])
    return tuple(int(d) for d in op.attrs["kernel"])


def _is_depthwise(model: TinyModel, op: Op) -> bool:
    """A conv with one input channel per group and as many groups as input channels."""
    groups = int(op.attrs.get("groups", 1))
    c_in = model.tensors[op.inputs[0]].shape[0]
    return groups > 1 and groups == c_in and op.constant(model, "weight").shape[1] == 1


def layer_row(model: TinyModel, op: Op) -> LayerRow:
    """MACs, element ops and bytes of one op (per sample)."""
    out = model.tensors[op.output]
    macs = element_ops = param_bytes = 0
    if op.kind in WEIGHTED:
        weight = op.constant(model, "weight")
        param_bytes = weight.size + BIAS_BYTES * weight.shape[0]
        # conv: out elements x (C_in/groups) x prod(kernel); weight is (C_out, C_in/groups, *k)
        # and out elements = C_out x prod(out spatial). linear: weight (out, in) -> in x out.
        per_output = math.prod(weight.shape[1:])
        macs = out.size * per_output if op.kind == "conv" else weight.size
    elif op.kind in ("max_pool", "avg_pool"):
        element_ops = out.size * math.prod(_kernel(model, op))
    elif op.kind == "global_avg_pool":
        element_ops = model.tensors[op.inputs[0]].size
    elif op.kind in ("add", "relu"):
        element_ops = out.size
    return LayerRow(op.name, op.kind, out.shape, macs, element_ops, param_bytes, out.size)


def cmsis_nn_scratch_bytes(model: TinyModel, op: Op) -> int:
    """Scratch buffer of the CMSIS-NN kernel for ``op`` (DSP build: Cortex-M4/M7/M33), bytes.

    From CMSIS-NN's ``*_get_buffer_size`` functions: ``arm_convolve_s8`` needs an im2col buffer
    of 2 columns x ``C_in/groups x prod(kernel)`` (rounded up to 4) int16 values;
    ``arm_convolve_1x1_s8_fast`` (1x1, stride 1, no padding) and fully connected need none;
    ``arm_depthwise_conv_s8_opt`` (channel multiplier 1) needs ``C_in x prod(kernel)`` int16
    values. Other ops: 0.
    """
    if op.kind != "conv":
        return 0
    kernel = _kernel(model, op)
    if _is_depthwise(model, op):
        c_out = op.constant(model, "weight").shape[0]
        c_in = model.tensors[op.inputs[0]].shape[0]
        return c_in * math.prod(kernel) * 2 if c_out == c_in else 0
    stride = tuple(int(s) for s in op.attrs.get("stride", (1,) * len(kernel)))
    padding = tuple(int(p) for p in op.attrs.get("padding", (0,) * len(kernel)))
    pointwise = all(k == 1 for k in kernel) and all(s == 1 for s in stride) and not any(padding)
    if pointwise and int(op.attrs.get("groups", 1)) == 1:
        return 0
    cols = math.prod(op.constant(model, "weight").shape[1:])
    return 2 * (-(-cols // 4) * 4) * 2


def _kernel_kinds(model: TinyModel) -> set[str]:
    """Distinct kernels the model needs (a depthwise conv is its own kernel)."""
    return {("depthwise_conv" if _is_depthwise(model, op) else op.kind) for op in model.ops}


def _flash(model: TinyModel, n_activations: int, include_runtime_code: bool) -> FlashBreakdown:
    """Flash of a TFLite Micro deployment: weights, biases, quantization, flatbuffer, code."""
    weighted = [op for op in model.ops if op.kind in WEIGHTED]
    channels = sum(op.constant(model, "weight").shape[0] for op in weighted)
    n_tensors = n_activations + 2 * len(weighted)  # weight and bias tensors of each op
    code = TFLM_CORE_RUNTIME_BYTES + KERNEL_CODE_BYTES * len(_kernel_kinds(model))
    return FlashBreakdown(
        weights_bytes=sum(op.constant(model, "weight").size for op in weighted),
        biases_bytes=BIAS_BYTES * channels,
        # one channel per activation tensor; C_out channels for each weight and bias tensor
        quantization_bytes=QUANT_BYTES_PER_CHANNEL * (n_activations + 2 * channels),
        graph_bytes=FLATBUFFER_MODEL_BYTES
        + FLATBUFFER_BYTES_PER_TENSOR * n_tensors
        + FLATBUFFER_BYTES_PER_OP * len(model.ops),
        runtime_code_bytes=code if include_runtime_code else 0,
    )


def _sram(model: TinyModel, plan: MemoryPlan, n_activations: int) -> SramBreakdown:
    """Arena of ``plan`` + persistent per-tensor data + requantization arrays."""
    n_weighted = sum(op.kind in WEIGHTED for op in model.ops)
    out_channels = sum(
        op.constant(model, "weight").shape[0] for op in model.ops if op.kind in WEIGHTED
    )
    return SramBreakdown(
        arena_bytes=plan.arena_bytes,
        persistent_bytes=PERSISTENT_BYTES_PER_TENSOR * (n_activations + 2 * n_weighted),
        requant_bytes=REQUANT_BYTES_PER_CHANNEL * out_channels,
    )


def _generated_c_flash(
    model: TinyModel, flash: FlashBreakdown, include_runtime_code: bool
) -> FlashBreakdown:
    """``flash`` for the generated C: no interpreter and no flatbuffer, its own kernels."""
    kinds = _kernel_kinds(model)
    code = GENERATED_C_KERNEL_CODE_BYTES * len(kinds) if include_runtime_code else 0
    return replace(flash, graph_bytes=0, runtime_code_bytes=code)


def _measured_memory(
    profile: McuProfile, flash: FlashBreakdown, measured: CCheck
) -> tuple[FlashBreakdown, SramBreakdown]:
    """Flash and SRAM of a generated-C measurement (see `footprint`'s ``measured``)."""
    if profile.runtime != GENERATED_C_RUNTIME or not applies_to(profile):
        raise ValueError(
            f"a generated-C measurement applies to a {MEASURED_CORE} profile with the runtime "
            f"{GENERATED_C_RUNTIME!r}, not {profile.core} with {profile.runtime!r}"
        )
    params = flash.weights_bytes + flash.biases_bytes
    measured_flash = FlashBreakdown(flash.weights_bytes, flash.biases_bytes, 0, 0,
                                    max(measured.flash_bytes - params, 0))  # fmt: skip
    sram = SramBreakdown(measured.arena_bytes, measured.sram_bytes - measured.arena_bytes, 0)
    return measured_flash, sram


def footprint(
    model: TinyModel,
    mcu: McuProfile | str,
    *,
    alignment: int = TFLM_ALIGNMENT_BYTES,
    in_place: bool = True,
    cmsis_nn_scratch: bool = True,
    include_runtime_code: bool = True,
    per_op_overhead_cycles: float = 0.0,
    measured: CCheck | None = None,
) -> Footprint:
    """Per-layer table, flash, peak SRAM, latency and energy of ``model`` on ``mcu``.

    Parameters
    ----------
    model : TinyModel
        The int8 model.
    mcu : McuProfile or str
        A profile, or the name of a built-in one (see `tinylarge.tiny.mcu.MCU_PROFILES`).
    alignment : int, default 16
        Arena buffer alignment, bytes (TFLite Micro: 16).
    in_place : bool, default True
        Let ``relu`` / ``add`` reuse an input's buffer (see `tinylarge.tiny.memory_plan`).
    cmsis_nn_scratch : bool, default True
        Plan CMSIS-NN convolution scratch buffers in the arena (`cmsis_nn_scratch_bytes`).
    include_runtime_code : bool, default True
        Count interpreter and kernel code in flash.
    per_op_overhead_cycles : float, default 0
        Fixed cycles added per op. 0 by default: the measured cycles/MAC figures already
        include per-op dispatch, so adding more would count it twice for networks like those
        they were measured on; use it for very small models dominated by dispatch.
    measured : CCheck, optional
        This model's generated C measured on a Cortex-M4 (`tinylarge.tiny.codegen.c_check`).
        Only for a profile whose runtime is the generated C (``GENERATED_C_RUNTIME``) on a
        Cortex-M4 core: flash and SRAM are then the measured ones (flash: ``weights`` and
        ``biases`` as counted, the rest of the library as ``runtime_code_bytes``; SRAM: the
        arena, and data + bss + stack as ``persistent_bytes``) and the latency is the counted
        instructions at one cycle each, a lower bound (`tinylarge.tiny.measured`).

    Returns
    -------
    Footprint
    """
    profile = mcu_profile(mcu) if isinstance(mcu, str) else mcu
    if not (per_op_overhead_cycles >= 0 and math.isfinite(per_op_overhead_cycles)):
        raise ValueError(f"per_op_overhead_cycles must be >= 0, got {per_op_overhead_cycles}")
    layers = tuple(layer_row(model, op) for op in model.ops)
    scratch = (
        {op.name: cmsis_nn_scratch_bytes(model, op) for op in model.ops}
        if cmsis_nn_scratch
        else None
    )
    plan = plan_memory(model, alignment=alignment, in_place=in_place, scratch_bytes=scratch)
    n_activations = len(tensor_lifetimes(model))
    flash = _flash(model, n_activations, include_runtime_code)
    sram = _sram(model, plan, n_activations)
    macs = sum(row.macs for row in layers)
    cycles = macs * profile.cycles_per_mac + len(model.ops) * per_op_overhead_cycles
    latency_s = cycles / profile.clock_hz
    if profile.runtime == GENERATED_C_RUNTIME:
        flash = _generated_c_flash(model, flash, include_runtime_code)
    if measured is not None:
        flash, sram = _measured_memory(profile, flash, measured)
        latency_s = latency_lower_bound_s(measured, profile.clock_hz)
    return Footprint(
        layers=layers,
        mcu=profile,
        flash=flash,
        sram=sram,
        memory_plan=plan,
        latency_s=latency_s,
        energy_j=profile.active_power_w * latency_s,
    )


def layer_table_rows(fp: Footprint, *, totals: bool = True) -> list[tuple[str, ...]]:
    """Rows of strings for a table with `LAYER_TABLE_COLUMNS` (e.g. a ``rich.table.Table``).

    With ``totals``, a last row sums MACs, element ops and parameter bytes (activations are not
    summed: buffers are reused, see ``Footprint.peak_sram_bytes``).
    """
    rows: list[tuple[str, ...]] = [
        (
            r.name,
            r.kind,
            "x".join(str(d) for d in r.output_shape),
            f"{r.macs:,}",
            f"{r.element_ops:,}",
            f"{r.param_bytes:,}",
            f"{r.activation_bytes:,}",
        )
        for r in fp.layers
    ]
    if totals:
        rows.append(
            (
                "total",
                "",
                "",
                f"{fp.macs:,}",
                f"{fp.element_ops:,}",
                f"{fp.param_bytes:,}",
                "",
            )
        )
    return rows


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
