"""Footprint: MAC counts against torch, hand-computed flash/SRAM, MLPerf Tiny sanity, budgets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tinylarge.tiny.footprint import (
    LAYER_TABLE_COLUMNS,
    cmsis_nn_scratch_bytes,
    comparison_rows,
    footprint,
    layer_table_rows,
)
from tinylarge.tiny.graph import Op, TensorSpec, TinyModel
from tinylarge.tiny.mcu import MCU_PROFILES, McuProfile, UnknownMcuError
from tinylarge.tiny.measured import CCheck, SectionSizes, applies_to


class Net:
    """Builds a `TinyModel` op by op, with arbitrary int8 weights and computed output shapes."""

    def __init__(self, *input_shape: int) -> None:
        self.rng = np.random.default_rng(0)
        self.ops: list[Op] = []
        self.tensors = {"x": TensorSpec(input_shape, 0.05, -128)}
        self.constants: dict[str, np.ndarray] = {}

    def _op(
        self, kind: str, inputs: tuple[str, ...], shape: tuple[int, ...], **attrs: object
    ) -> str:
        name = f"{kind}{len(self.ops)}"
        self.tensors[name] = TensorSpec(shape, self.tensors[inputs[0]].scale, -128)
        self.ops.append(Op(name, kind, inputs, name, attrs))
        return name

    def _weights(self, name: str, shape: tuple[int, ...]) -> None:
        self.constants[f"{name}.weight"] = self.rng.integers(-127, 128, shape, dtype=np.int8)
        self.constants[f"{name}.bias"] = self.rng.integers(-99, 99, shape[0], dtype=np.int32)
        self.constants[f"{name}.weight_scale"] = np.full(shape[0], 0.01, np.float32)

    def conv(
        self, x: str, c_out: int, k: int, stride: int = 1, pad: int = 0, groups: int = 1
    ) -> str:
        c_in, *spatial = self.tensors[x].shape
        out = tuple((s + 2 * pad - k) // stride + 1 for s in spatial)
        dims = len(spatial)
        name = self._op(
            "conv", (x,), (c_out, *out),
            stride=(stride,) * dims, padding=(pad,) * dims, groups=groups, relu=True,
        )  # fmt: skip
        self._weights(name, (c_out, c_in // groups, *(k,) * dims))
        return name

    def linear(self, x: str, n_out: int) -> str:
        name = self._op("linear", (x,), (n_out,), relu=False)
        self._weights(name, (n_out, self.tensors[x].shape[0]))
        return name

    def add(self, a: str, b: str) -> str:
        return self._op("add", (a, b), self.tensors[a].shape, relu=True)

    def relu(self, x: str) -> str:
        return self._op("relu", (x,), self.tensors[x].shape)

    def pool(self, x: str, kind: str, k: int) -> str:
        c, *spatial = self.tensors[x].shape
        shape = (c, *(s // k for s in spatial))
        return self._op(kind, (x,), shape, kernel=(k,) * len(spatial), stride=(k,) * len(spatial))

    def global_pool(self, x: str) -> str:
        c, *spatial = self.tensors[x].shape
        return self._op("global_avg_pool", (x,), (c, *(1 for _ in spatial)))

    def flatten(self, x: str) -> str:
        return self._op("flatten", (x,), (self.tensors[x].size,))

    def build(self, output: str) -> TinyModel:
        n = self.tensors[output].size
        names = tuple(f"c{i}" for i in range(n))
        return TinyModel(tuple(self.ops), self.tensors, self.constants, "x", output, names, {})


def resnet8() -> TinyModel:
    """MLPerf Tiny image classification ResNet-8 (32x32x3 input, 16/32/64 channels, 10 classes)."""
    net = Net(3, 32, 32)
    h = net.conv("x", 16, 3, pad=1)
    y = net.conv(net.conv(h, 16, 3, pad=1), 16, 3, pad=1)
    h = net.add(h, y)
    for c in (32, 64):
        y = net.conv(net.conv(h, c, 3, stride=2, pad=1), c, 3, pad=1)
        h = net.add(net.conv(h, c, 1, stride=2), y)
    h = net.flatten(net.pool(h, "avg_pool", 8))
    return net.build(net.linear(h, 10))


def torch_macs(module: torch.nn.Module, x: torch.Tensor) -> int:
    """MACs counted by torch's FLOP counter (which counts 2 FLOPs per MAC)."""
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "stride", "pad", "groups", "size"),
    [(3, 8, 3, 2, 1, 1, 15), (4, 6, 3, 1, 0, 2, 9), (8, 8, 3, 1, 1, 8, 10), (5, 7, 1, 1, 0, 1, 6)],
)
def test_conv2d_macs_match_torch(
    c_in: int, c_out: int, k: int, stride: int, pad: int, groups: int, size: int
) -> None:
    net = Net(c_in, size, size)
    model = net.build(net.conv("x", c_out, k, stride, pad, groups))
    conv = torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, groups=groups, bias=False)
    expected = torch_macs(conv, torch.zeros(1, c_in, size, size))
    assert footprint(model, "stm32l4r5").macs == expected


def test_conv_and_linear_macs_by_hand() -> None:
    # conv 3->8, 3x3, stride 2, pad 1 on 15x15: out 8 x 8 x 8 = 512 elements, each 3 x 9 MACs.
    net = Net(3, 15, 15)
    h = net.conv("x", 8, 3, stride=2, pad=1)
    out = net.linear(net.flatten(h), 10)  # 512 x 10 MACs
    fp = footprint(net.build(out), "stm32l4r5")
    assert [row.macs for row in fp.layers] == [512 * 27, 0, 5120]
    # 1-D conv: 4 -> 6 channels, kernel 5, on length 32, no padding: out 6 x 28, each 4 x 5 MACs
    net = Net(4, 32)
    model = net.build(net.flatten(net.conv("x", 6, 5)))
    conv1d = torch.nn.Conv1d(4, 6, 5, bias=False)
    assert (
        footprint(model, "stm32l4r5").macs
        == 6 * 28 * 20
        == torch_macs(conv1d, torch.zeros(1, 4, 32))
    )


def test_element_ops_and_param_bytes() -> None:
    net = Net(4, 8, 8)
    h = net.conv("x", 4, 3, pad=1)
    r = net.relu(h)
    s = net.add(h, r)
    p = net.pool(s, "max_pool", 2)
    g = net.global_pool(p)
    fp = footprint(net.build(net.flatten(g)), "stm32l4r5")
    rows = {row.kind: row for row in fp.layers}
    assert rows["conv"].param_bytes == 4 * 4 * 9 + 4 * 4  # int8 weights + int32 biases
    assert rows["relu"].element_ops == rows["add"].element_ops == 256
    assert rows["max_pool"].element_ops == 4 * 4 * 4 * 4  # 64 outputs x 2x2 window
    assert rows["global_avg_pool"].element_ops == 64  # one add per input element
    assert rows["flatten"].element_ops == rows["flatten"].macs == 0
    assert rows["max_pool"].output_shape == (4, 4, 4)
    assert fp.element_ops == 256 + 256 + 256 + 64


def wide_conv_model() -> TinyModel:
    """conv 3->16 (3x3, pad 1, fused ReLU) on 3x128x128 -> global avg pool -> flatten -> 16->4."""
    net = Net(3, 128, 128)
    h = net.flatten(net.global_pool(net.conv("x", 16, 3, pad=1)))
    return net.build(net.linear(h, 4))


def test_model_too_big_for_nrf52840() -> None:
    fp = footprint(wide_conv_model(), "nrf52840")
    # Arena by hand (16-byte alignment): conv out 16x128x128 = 262,144 B [0, 1]; input
    # 3x128x128 = 49,152 B [0, 0]; CMSIS-NN im2col scratch of the conv 2 x ceil4(27) x 2 = 112 B
    # [0, 0]; pool out + flatten alias 16 B [1, 3]; logits 4 -> 16 B [3, 3].
    # conv out -> 0; input -> 262,144; scratch -> 311,296; pool -> 262,144; logits -> 0.
    assert fp.memory_plan.arena_bytes == 311_296 + 112
    # Persistent: (5 activation tensors + 2 x 2 weight/bias tensors) x 76 B = 684 B;
    # requantization arrays (16 + 4 channels) x 8 B = 160 B.
    assert (fp.sram.persistent_bytes, fp.sram.requant_bytes) == (684, 160)
    assert fp.peak_sram_bytes == 311_408 + 684 + 160 == 312_252
    assert not fp.fits
    assert fp.violations == ("SRAM: needs 312,252 B, has 262,144 B (over by 50,108 B)",)
    # the same model fits the 640 KB STM32L4R5
    assert footprint(wide_conv_model(), "stm32l4r5").fits


def test_flash_breakdown_by_hand() -> None:
    fp = footprint(wide_conv_model(), "nrf52840")
    flash = fp.flash
    assert flash.weights_bytes == 16 * 3 * 9 + 4 * 16  # 432 + 64 = 496
    assert flash.biases_bytes == (16 + 4) * 4  # 80
    # 12 B per channel: 5 activation tensors x 1 + weight and bias tensors x (16 + 4) channels
    assert flash.quantization_bytes == (5 + 2 * 20) * 12  # 540
    # 640 B per model + 112 B x 9 tensors + 56 B x 4 ops
    assert flash.graph_bytes == 640 + 112 * 9 + 56 * 4  # 1,872
    # 16 KB core + 2 KB x 4 kernels (conv, global_avg_pool, flatten, linear)
    assert flash.runtime_code_bytes == 16 * 1024 + 4 * 2048  # 24,576
    assert fp.flash_bytes == 496 + 80 + 540 + 1872 + 24_576
    no_code = footprint(wide_conv_model(), "nrf52840", include_runtime_code=False)
    assert no_code.flash_bytes == fp.flash_bytes - 24_576


def test_flash_violation_message() -> None:
    nrf = MCU_PROFILES["nrf52840"].model_dump()
    big_sram = McuProfile.model_validate({**nrf, "flash_bytes": 2_000, "sram_bytes": 1 << 20})
    fp = footprint(wide_conv_model(), big_sram, include_runtime_code=False)
    # 496 + 80 + 540 + 1,872 = 2,988 B (see test_flash_breakdown_by_hand)
    assert fp.violations == ("Flash: needs 2,988 B, has 2,000 B (over by 988 B)",)
    both = McuProfile.model_validate({**nrf, "flash_bytes": 2_000})
    messages = footprint(wide_conv_model(), both, include_runtime_code=False).violations
    assert [m.split(":")[0] for m in messages] == ["Flash", "SRAM"]


def test_mlperf_tiny_resnet8_sanity() -> None:
    model = resnet8()
    fp = footprint(model, "stm32l4r5")
    # MACs by hand: stem 32*32*16*27 = 442,368; stage 1: 2 x 32*32*16*144 = 4,718,592;
    # stage 2: 16*16*32*144 + 16*16*32*288 + skip 16*16*32*16 = 3,670,016;
    # stage 3: 8*8*64*288 + 8*8*64*576 + skip 8*8*64*32 = 3,670,016; dense 64*10 = 640.
    assert fp.macs == 442_368 + 4_718_592 + 3_670_016 + 3_670_016 + 640 == 12_501_632
    # MLPerf Tiny results: v1.0 (OctoML, CMSIS-NN) 390 ms; v0.5 TFLM reference 704 ms.
    assert fp.latency_s == pytest.approx(0.390, rel=0.03)
    ref = footprint(model, "stm32l4r5_tflm_ref")
    assert ref.latency_s == pytest.approx(0.704, rel=0.03)
    # Measured energy of the reference run: 29,207 uJ; ours uses the 46 mW midpoint power.
    assert ref.energy_j == pytest.approx(29_207e-6, rel=0.15)
    assert ref.energy_j == pytest.approx(0.046 * ref.latency_s)
    assert fp.fits and footprint(model, "nrf52840").fits
    # int8 weights by hand: stem 432; stage 1: 2 x 2,304; stage 2: 4,608 + 9,216 + skip 512;
    # stage 3: 18,432 + 36,864 + skip 2,048; dense 640 -> 77,360 (MLPerf Tiny: ~78 k params).
    assert fp.flash.weights_bytes == 432 + 4_608 + 14_336 + 57_344 + 640 == 77_360


def test_latency_energy_formula_and_overhead() -> None:
    model = wide_conv_model()
    mcu = MCU_PROFILES["stm32u575"]
    fp = footprint(model, mcu)
    assert fp.latency_s == pytest.approx(fp.macs * mcu.cycles_per_mac / mcu.clock_hz)
    assert fp.energy_j == pytest.approx(mcu.active_power_w * fp.latency_s)
    slow = footprint(model, mcu, per_op_overhead_cycles=1000)
    assert slow.latency_s - fp.latency_s == pytest.approx(4 * 1000 / mcu.clock_hz)
    with pytest.raises(ValueError, match="per_op_overhead_cycles"):
        footprint(model, mcu, per_op_overhead_cycles=-1)
    with pytest.raises(UnknownMcuError, match="known: "):
        footprint(model, "arduino-uno")


def test_cmsis_nn_scratch_sizes() -> None:
    net = Net(8, 10, 10)
    dw = net.conv("x", 8, 3, pad=1, groups=8)  # depthwise: 8 x 9 int16
    pw = net.conv(dw, 16, 1)  # 1x1, stride 1, no padding: none
    full = net.conv(pw, 4, 3)  # im2col: 2 x ceil4(16 x 9 = 144) int16
    dw2 = net.conv(full, 8, 3, groups=4)  # depthwise, multiplier 2: generic kernel, none
    model = net.build(net.flatten(dw2))
    sizes = {op.output: cmsis_nn_scratch_bytes(model, op) for op in model.ops}
    assert sizes == {dw: 144, pw: 0, full: 576, dw2: 0, model.output: 0}
    without = footprint(model, "stm32h743", cmsis_nn_scratch=False)
    assert "scratch:" not in json.dumps(without.memory_plan.to_dict())


def test_table_rows_and_dict() -> None:
    fp = footprint(resnet8(), "stm32h7a3")
    rows = layer_table_rows(fp)
    assert len(rows) == len(fp.layers) + 1
    assert all(len(row) == len(LAYER_TABLE_COLUMNS) for row in rows)
    assert rows[0][:4] == ("conv0", "conv", "16x32x32", "442,368")
    assert rows[-1][0] == "total" and rows[-1][3] == f"{fp.macs:,}"
    data = json.loads(json.dumps(fp.to_dict()))
    assert data["macs"] == fp.macs and data["fits"] is True and data["violations"] == []
    assert data["peak_sram_bytes"] == fp.peak_sram_bytes
    assert data["flash"]["total_bytes"] == fp.flash_bytes
    assert data["mcu"]["part"] == "STM32H7A3"
    assert len(data["layers"]) == len(fp.layers)
    assert data["layers"][0]["output_shape"] == [16, 32, 32]
    assert math.isclose(data["latency_s"], fp.latency_s)


def _measurement(macs: int) -> CCheck:
    return CCheck(
        frames=10, mismatches=0, max_abs_lsb=0, flash_bytes=5_000, sram_bytes=1_500,
        stack_bytes=300, arena_bytes=1_100, instructions_per_inference=800_000.0,
        instructions_per_mac=800_000.0 / macs, macs=macs,
        library=SectionSizes(5_000, 0, 1_200), program=SectionSizes(40_000, 2_000, 1_700),
    )  # fmt: skip


def test_generated_c_footprint_estimated_and_measured() -> None:
    from tinylarge.tiny.examples import random_tiny_cnn

    model = random_tiny_cnn(np.random.default_rng(0))
    c_profile, interpreter = MCU_PROFILES["stm32l4r5_c"], MCU_PROFILES["stm32l4r5_tflm_ref"]
    estimate = footprint(model, c_profile)
    tflm = footprint(model, interpreter)
    # no interpreter and no flatbuffer in the generated C's estimate: its own kernels only
    assert estimate.flash.graph_bytes == 0 and estimate.flash.runtime_code_bytes == 5 * 350
    assert estimate.flash_bytes < tflm.flash_bytes
    assert estimate.latency_s == pytest.approx(estimate.macs * 16.5 / 120e6)
    measured = footprint(model, c_profile, measured=_measurement(estimate.macs))
    assert measured.flash_bytes == 5_000 and measured.peak_sram_bytes == 1_500
    assert measured.sram.arena_bytes == 1_100
    assert measured.latency_s == pytest.approx(800_000 / 120e6)  # one cycle per instruction
    with pytest.raises(ValueError, match="applies to a Cortex-M4 profile"):
        footprint(model, interpreter, measured=_measurement(estimate.macs))


def test_measured_beside_the_estimate() -> None:
    from tinylarge.tiny.examples import random_tiny_cnn

    model = random_tiny_cnn(np.random.default_rng(0))
    estimate = footprint(model, "stm32l4r5")
    rows = comparison_rows(estimate, _measurement(estimate.macs))
    assert rows[0] == ["flash (B)", f"{estimate.flash_bytes:,}", "5,000"]
    assert rows[1] == ["SRAM (B)", f"{estimate.peak_sram_bytes:,}", "1,500"]
    assert rows[2] == ["  of which stack (B)", "not modelled", "300"]
    # 800,000 instructions at >= 1 cycle each on 120 MHz: >= 6.667 ms
    assert (
        rows[3][0] == "latency at 120 MHz (ms)"
        and rows[3][2] == ">= 6.667 (>= 1 cycle per instruction)"
    )
    assert rows[3][1].endswith("(3.7 cycles/MAC, microTVM + CMSIS-NN)")
    assert [applies_to(MCU_PROFILES[n]) for n in ("nrf52840", "stm32h743", "rp2040")] == [
        True, False, False,
    ]  # fmt: skip
