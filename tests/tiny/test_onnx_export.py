"""ONNX export: the graph is valid QLinear ONNX, and ONNX Runtime agrees with the runtime.

``run(..., arithmetic="onnx")`` must equal ONNX Runtime element for element on random models
(ties, saturation, int32 wrap-around included); ``arithmetic="tflm"`` may differ from it by at
most 1 LSB per op, checked on single-op models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import random_models

from tinylarge.tiny.examples import random_tiny_cnn
from tinylarge.tiny.graph import OP_KINDS, TinyModel
from tinylarge.tiny.model_file import from_bytes, to_bytes
from tinylarge.tiny.onnx_export import (
    export_onnx,
    make_session,
    run_onnxruntime,
    session_options,
    to_onnx,
)
from tinylarge.tiny.runtime import run

SEED_BLOCKS = 10
SEEDS_PER_BLOCK = 40  # 400 random models in all


def _inputs(rng: np.random.Generator, model: TinyModel) -> np.ndarray:
    x = random_models.random_input(rng, model, int(rng.integers(1, 24)))
    x[0] = rng.choice([-128, 127])  # one sample at an extreme of the int8 range
    return x


@pytest.mark.parametrize("block", range(SEED_BLOCKS))
def test_onnx_arithmetic_equals_onnxruntime_exactly(block: int) -> None:
    for seed in range(block * SEEDS_PER_BLOCK, (block + 1) * SEEDS_PER_BLOCK):
        rng = np.random.default_rng([seed, 2026])
        model = random_models.random_model(rng)
        x = _inputs(rng, model)
        expected = run_onnxruntime(model, x)
        got = run(model, x, arithmetic="onnx")
        assert got.dtype == expected.dtype == np.int8
        mismatch = np.flatnonzero(got.ravel() != expected.ravel())
        assert mismatch.size == 0, (
            f"seed {seed}: ops {[op.kind for op in model.ops]}; {mismatch.size} of {got.size} "
            f"elements differ, first at {mismatch[0]}: {got.ravel()[mismatch[0]]} vs "
            f"{expected.ravel()[mismatch[0]]}"
        )


SINGLE_OPS = OP_KINDS  # every op kind of the format, each alone in a model


@pytest.mark.parametrize("kind", SINGLE_OPS)
def test_single_op_models_tflm_within_one_lsb_of_onnxruntime(kind: str) -> None:
    differing = 0
    for seed in range(25):
        rng = np.random.default_rng([seed, 11])
        model = random_models.single_op_model(rng, kind)
        assert [op.kind for op in model.ops][-1] == kind
        x = _inputs(rng, model)
        expected = run_onnxruntime(model, x)
        np.testing.assert_array_equal(run(model, x, arithmetic="onnx"), expected)
        diff = np.abs(run(model, x, arithmetic="tflm").astype(np.int16) - expected)
        assert diff.max(initial=0) <= 1, f"{kind}, seed {seed}: {diff.max()} LSB"
        differing += int(np.count_nonzero(diff))
    if kind in ("max_pool", "flatten", "relu"):
        assert differing == 0  # no rounding: the two arithmetics agree exactly


def test_example_tiny_cnn_matches_onnxruntime() -> None:
    model = random_tiny_cnn(np.random.default_rng(0))
    x = np.random.default_rng(1).integers(-128, 128, (64, 2, 128)).astype(np.int8)
    expected = run_onnxruntime(model, x)
    np.testing.assert_array_equal(run(model, x, arithmetic="onnx"), expected)
    # ONNX Runtime's default graph optimizations (fusions, NHWC layout) keep the arithmetic.
    optimized = make_session(model, ort.SessionOptions())
    np.testing.assert_array_equal(run_onnxruntime(optimized, x), expected)


@pytest.fixture(scope="module")
def example() -> TinyModel:
    return random_models.random_model(np.random.default_rng(3))


def test_graph_is_valid_int8_qlinear_onnx_with_metadata(example: TinyModel) -> None:
    proto = to_onnx(example)
    onnx.checker.check_model(proto, full_check=True)
    (graph_input,) = proto.graph.input
    (graph_output,) = proto.graph.output
    for value in (graph_input, graph_output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT8
        assert value.type.tensor_type.shape.dim[0].dim_param == "N"
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]
    assert tuple(dims) == example.input_spec.shape
    assert {op.domain for op in proto.opset_import} == {""}
    assert {n.op_type for n in proto.graph.node} <= {
        "QLinearConv",
        "MaxPool",
        "Max",
        "Reshape",
        "DequantizeLinear",
        "Add",
        "QuantizeLinear",
    }
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["class_names"]) == list(example.class_names)
    assert json.loads(meta["tinylarge_manifest"]) == dict(example.manifest)


def test_export_writes_a_file_that_onnxruntime_runs(example: TinyModel, tmp_path: Path) -> None:
    path = export_onnx(example, tmp_path / "sub" / "model.onnx")
    assert path.is_file()
    x = random_models.random_input(np.random.default_rng(0), example, 5)
    np.testing.assert_array_equal(run_onnxruntime(path, x), run_onnxruntime(example, x))
    np.testing.assert_array_equal(run_onnxruntime(str(path), x), run(example, x, arithmetic="onnx"))


def test_export_is_deterministic_and_survives_the_model_file(example: TinyModel) -> None:
    reloaded = from_bytes(to_bytes(example))
    assert to_onnx(reloaded).SerializeToString() == to_onnx(example).SerializeToString()


def test_sessions_run_without_graph_optimizations() -> None:
    level = session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL


def test_run_onnxruntime_rejects_bad_inputs(example: TinyModel, tmp_path: Path) -> None:
    shape = example.input_spec.shape
    with pytest.raises(TypeError, match="int8"):
        run_onnxruntime(example, np.zeros((1, *shape), dtype=np.float32))
    with pytest.raises(ValueError, match=r"x_int8 must have shape \(N, "):
        run_onnxruntime(example, np.zeros(shape, dtype=np.int8))
    with pytest.raises(FileNotFoundError, match="no ONNX model file"):
        run_onnxruntime(tmp_path / "missing.onnx", np.zeros((1, *shape), dtype=np.int8))
    with pytest.raises(TypeError, match=r"TinyModel, an onnx\.ModelProto or a path"):
        run_onnxruntime(42, np.zeros((1, *shape), dtype=np.int8))  # type: ignore[arg-type]
