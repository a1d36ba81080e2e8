"""Generated C cross-compiled for a Cortex-M4 and run under QEMU mps2-an386.

0 mismatching output elements against ``run(..., arithmetic="tflm")`` on 1,200 frames of a
random tiny CNN (and on random op chains with 2-D convolutions, residual adds, pooling),
``arm-none-eabi-size`` figures, the stack high-water mark and a repeatable instruction count.

Skipped when ``arm-none-eabi-gcc`` or ``qemu-system-arm`` is missing, unless the environment
variable ``TINYLARGE_REQUIRE_QEMU`` is set (CI sets it: there these tests must run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import random_models

from tinylarge.tiny.codegen import c_check, count_instructions, export_c, run_qemu
from tinylarge.tiny.codegen.build import M4Build, build_m4
from tinylarge.tiny.examples import random_tiny_cnn
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.runtime import run

pytestmark = pytest.mark.slow
FRAMES = 1200


@pytest.fixture(scope="module", autouse=True)
def _m4_toolchain(m4_toolchain: None) -> None:
    """Skip without the cross toolchain or QEMU, or fail if TINYLARGE_REQUIRE_QEMU is set
    (the ``m4_toolchain`` fixture of tests/conftest.py)."""


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyModel, M4Build, np.ndarray]:
    rng = np.random.default_rng(2016)
    model = random_tiny_cnn(rng)
    out = tmp_path_factory.mktemp("codegen-m4")
    export_c(model, out)
    frames = rng.integers(-128, 128, (FRAMES, *model.input_spec.shape)).astype(np.int8)
    return model, build_m4(out), frames


def test_cortex_m4_outputs_match_the_runtime_on_1200_frames(
    cnn: tuple[TinyModel, M4Build, np.ndarray],
) -> None:
    model, build, frames = cnn
    result = run_qemu(build.elf, frames, timeout_s=120)
    expected = run(model, frames, arithmetic="tflm").reshape(FRAMES, -1)
    assert result.outputs.shape == expected.shape
    assert int(np.count_nonzero(result.outputs != expected)) == 0


def test_sizes_are_parsed_and_plausible(cnn: tuple[TinyModel, M4Build, np.ndarray]) -> None:
    model, build, _ = cnn
    weights = sum(a.nbytes for name, a in model.constants.items() if name.endswith(".weight"))
    lib, elf = build.library_sizes, build.elf_sizes
    assert weights < lib.text < 4 * weights + 8192  # const weights live in flash (.rodata)
    assert lib.data == 0  # nothing is copied to RAM at start-up
    assert lib.bss >= build.arena_bytes > 0  # the one static arena
    assert elf.text > lib.text and elf.bss >= lib.bss


def test_stack_high_water_mark_is_measured(cnn: tuple[TinyModel, M4Build, np.ndarray]) -> None:
    _, build, frames = cnn
    stack = run_qemu(build.elf, frames[:3]).stack_bytes
    assert 0 < stack < 2048
    assert run_qemu(build.elf, frames[:3]).stack_bytes == stack


def test_instruction_count_is_positive_and_repeatable(
    cnn: tuple[TinyModel, M4Build, np.ndarray],
) -> None:
    _, build, frames = cnn
    first = count_instructions(build.elf, frames[:20], build.library_range)
    second = count_instructions(build.elf, frames[:20], build.library_range)
    assert first == second
    assert first.per_inference > build.macs  # at least one instruction per MAC
    assert first.per_inference_program >= first.per_inference


def test_random_op_chains_match_on_the_cortex_m4(tmp_path: Path) -> None:
    """2-D convolutions, groups, residual adds, pooling and wrapping biases, compiled for M4."""
    rng = np.random.default_rng(61)
    checked = 0
    for i in range(8):
        model = random_models.random_model(rng, max_ops=7)
        out = tmp_path / f"m{i}"
        export_c(model, out)
        x = random_models.random_input(rng, model, 100)
        got = run_qemu(build_m4(out).elf, x, timeout_s=120).outputs
        np.testing.assert_array_equal(got, run(model, x).reshape(len(x), -1))
        checked += 1
    assert checked == 8


def test_c_check_reports_the_issue_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    model = random_tiny_cnn(rng, width=4)
    frames = rng.integers(-128, 128, (40, *model.input_spec.shape)).astype(np.int8)
    check = c_check(model, frames, tmp_path, count_frames=10)
    metrics = check.to_dict()
    for key in ("frames", "mismatches", "flash_bytes", "sram_bytes", "stack_bytes"):
        assert key in metrics
    assert check.frames == 40 and check.mismatches == 0 and check.max_abs_lsb == 0
    assert check.sram_bytes == check.library.data + check.library.bss + check.stack_bytes
    per_mac = check.instructions_per_inference / check.macs
    assert check.instructions_per_mac == pytest.approx(per_mac)
