"""Generated C on the host: bit-exact with ``run(..., arithmetic="tflm")``, warning-free.

Hundreds of random models per op kind (shapes, strides, padding, groups incl. depthwise,
fused ReLU, power-of-two scales with many rounding ties, biases that wrap int32) are exported
into one directory per kind under different prefixes and compiled into one shared library
each (one translation unit, -O1 to keep the suite fast; the -O2 build runs the tiny CNN and
the harness). Needs a host gcc; skipped with the install command without one.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import random_models

from tinylarge.tiny.codegen import HostModel, ToolchainError, build_host_library, export_c
from tinylarge.tiny.codegen.build import (
    HOST_CFLAGS,
    build_host_harness,
    build_m4,
    parse_size_output,
)
from tinylarge.tiny.codegen.toolchain import find_tool, install_hint
from tinylarge.tiny.examples import random_tiny_cnn
from tinylarge.tiny.graph import OP_KINDS, TinyModel
from tinylarge.tiny.runtime import run

KINDS = (*OP_KINDS, "chain")
MODELS_PER_KIND = 200
FRAMES_PER_MODEL = 12
FAST_CFLAGS = (*HOST_CFLAGS[:-1], "-O1")

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason=install_hint("gcc"))


def _model(rng: np.random.Generator, kind: str) -> TinyModel:
    if kind == "chain":
        return random_models.random_model(rng)
    return random_models.single_op_model(rng, kind)


@pytest.fixture(scope="module")
def kind_libraries(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, Path, list[TinyModel]]]:
    """Per kind: export directory, compiled library and the models (compiled in parallel)."""
    exported: dict[str, tuple[Path, list[TinyModel]]] = {}
    for k, kind in enumerate(KINDS):
        rng = np.random.default_rng(1600 + k)
        out = tmp_path_factory.mktemp(f"codegen-{kind}")
        models = [_model(rng, kind) for _ in range(MODELS_PER_KIND)]
        for i, model in enumerate(models):
            export_c(model, out, prefix=f"m{i}_")
        exported[kind] = (out, models)

    def build(kind: str) -> Path:
        return build_host_library(exported[kind][0], cflags=FAST_CFLAGS)

    with ThreadPoolExecutor(max_workers=2) as pool:
        libraries = dict(zip(KINDS, pool.map(build, KINDS), strict=True))
    return {kind: (exported[kind][0], libraries[kind], exported[kind][1]) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_random_models_match_the_tflm_runtime(
    kind: str, kind_libraries: dict[str, tuple[Path, Path, list[TinyModel]]]
) -> None:
    out, library, models = kind_libraries[kind]
    rng = np.random.default_rng(7)
    mismatches, elements = 0, 0
    failing: list[int] = []
    for i, model in enumerate(models):
        x = random_models.random_input(rng, model, FRAMES_PER_MODEL)
        got = HostModel(out, prefix=f"m{i}_", library=library).run(x)
        expected = run(model, x, arithmetic="tflm")
        bad = int(np.count_nonzero(got != expected))
        mismatches += bad
        elements += expected.size
        if bad:
            failing.append(i)
    assert elements > MODELS_PER_KIND * FRAMES_PER_MODEL
    assert mismatches == 0, f"{kind}: {mismatches} of {elements} elements differ, models {failing}"


def test_tiny_cnn_matches_the_runtime_on_many_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    model = random_tiny_cnn(rng)
    export_c(model, tmp_path)
    x = rng.integers(-128, 128, (4000, *model.input_spec.shape)).astype(np.int8)
    host = HostModel(tmp_path)
    np.testing.assert_array_equal(host.run(x), run(model, x, arithmetic="tflm"))
    np.testing.assert_array_equal(host.run(x[:1]), run(model, x[:1], arithmetic="tflm"))


def _compile(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


def test_library_and_harness_compile_without_any_warning(tmp_path: Path) -> None:
    """-Wall -Wextra -std=c99 (and -pedantic): not a single diagnostic, -Werror or not."""
    rng = np.random.default_rng(3)
    export_c(random_models.random_model(rng), tmp_path)
    sources = [str(tmp_path / n) for n in ("tl_model.c", "tl_kernels.c", "tl_main.c")]
    for extra in ([], ["-pedantic"]):
        done = _compile([find_tool("gcc"), *HOST_CFLAGS, *extra, *sources, "-o", "/dev/null"])
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", done.stderr


def test_harness_reads_frames_writes_outputs_and_measures_the_stack(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    model = random_tiny_cnn(rng, width=4)
    export_c(model, tmp_path)
    x = rng.integers(-128, 128, (50, *model.input_spec.shape)).astype(np.int8)
    x.tofile(tmp_path / "frames.bin")
    done = subprocess.run(
        [str(build_host_harness(tmp_path)), "frames.bin", "outputs.bin"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outputs = np.fromfile(tmp_path / "outputs.bin", dtype=np.int8).reshape(50, -1)
    np.testing.assert_array_equal(outputs, run(model, x).reshape(50, -1))
    frames, stack = (int(v.split("=")[1]) for v in done.stdout.split()[1:3])
    assert frames == 50
    assert 0 < stack < 4096
    missing = subprocess.run(
        [str(build_host_harness(tmp_path)), "nope.bin"], cwd=tmp_path, capture_output=True
    )
    assert missing.returncode == 2


def test_header_has_shapes_quantization_arena_and_macs(tmp_path: Path) -> None:
    model = random_tiny_cnn(np.random.default_rng(0))
    export = export_c(model, tmp_path, prefix="kws_")
    header = export.model_h.read_text()
    x, y = model.input_spec, model.output_spec
    assert "#define KWS_INPUT_SHAPE {2, 128}" in header
    assert f"#define KWS_INPUT_SIZE {x.size}" in header
    assert f"#define KWS_OUTPUT_ZERO_POINT {y.zero_point}" in header
    scale = header.split("#define KWS_INPUT_SCALE ")[1].split()[0]
    assert np.float32(float(scale.rstrip("f"))) == np.float32(x.scale)
    assert f"#define KWS_ARENA_BYTES {export.arena_bytes}" in header
    assert "int kws_invoke(const int8_t *in, int8_t *out);" in header
    source = export.model_c.read_text()
    assert "malloc" not in source
    assert source.count("static int8_t kws_arena[") == 1
    assert all(f"kws_op{i}" in source for i in (0, 2, 4, 8))  # weighted ops have const data


def test_host_model_checks_its_input(tmp_path: Path) -> None:
    model = random_tiny_cnn(np.random.default_rng(0))
    export_c(model, tmp_path)
    host = HostModel(tmp_path)
    with pytest.raises(TypeError, match="int8"):
        host.run(np.zeros((1, 2, 128), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        host.run(np.zeros((1, 128, 2), dtype=np.int8))
    assert host.run(np.zeros((0, 2, 128), dtype=np.int8)).shape == (0, 8)


@pytest.mark.parametrize("prefix", ["", "tl", "1x_", "a-b_"])
def test_bad_prefix_is_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        export_c(random_tiny_cnn(np.random.default_rng(0)), tmp_path, prefix=prefix)


def test_missing_cross_compiler_names_the_apt_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_c(random_tiny_cnn(np.random.default_rng(0)), tmp_path)
    real_which: Callable[[str], str | None] = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if "arm-none-eabi" in name else real_which(name)
    )
    with pytest.raises(ToolchainError, match="gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        build_m4(tmp_path)


def test_parse_size_output_sums_the_rows() -> None:
    text = (
        "   text\t   data\t    bss\t    dec\t    hex\tfilename\n"
        "   3820\t      0\t   1152\t   4972\t   136c\ttl_model.o\n"
        "    100\t      4\t      8\t    112\t     70\ttl_kernels.o\n"
    )
    sizes = parse_size_output(text)
    assert (sizes.text, sizes.data, sizes.bss) == (3920, 4, 1160)
    assert sizes.flash_bytes == 3924 and sizes.ram_bytes == 1164
    with pytest.raises(ValueError, match="unexpected"):
        parse_size_output("garbage")
