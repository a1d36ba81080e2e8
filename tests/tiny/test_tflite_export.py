"""The `.tflite` export against TensorFlow Lite Micro's own interpreter (the `tflite-micro`
package): the integer runtime's ``tflm`` arithmetic must equal it to the last bit."""

from __future__ import annotations

import numpy as np
import pytest
import random_models
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from tinylarge.tiny.examples import random_tiny_cnn
from tinylarge.tiny.graph import OP_KINDS, TinyModel
from tinylarge.tiny.runtime import run
from tinylarge.tiny.tflite_export import from_nhwc, to_nhwc, to_tflite
from tinylarge.tiny.tflm_check import TflmInterpreter, tflm_check, tflm_run


@pytest.mark.parametrize("kind", OP_KINDS)
def test_every_op_kind_equals_tflm_on_hundreds_of_random_models(kind: str) -> None:
    """200 random one-op models per kind (strides, padding, groups and depthwise, fused ReLU,
    power-of-two scales full of rounding ties, biases that wrap int32), 8 frames each."""
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    for _ in range(200):
        model = random_models.single_op_model(rng, kind)
        check = tflm_check(model, random_models.random_input(rng, model, 8))
        assert check.mismatches == 0, (kind, check, model.ops)


def test_random_chains_of_ops_equal_tflm() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        model = random_models.random_model(rng)
        check = tflm_check(model, random_models.random_input(rng, model, 8))
        assert check.mismatches == 0, (check, [op.kind for op in model.ops])


def test_the_check_sees_a_model_that_differs() -> None:
    """The comparison can fail: a .tflite of another model's weights is caught."""
    rng = np.random.default_rng(0)
    model, other = random_tiny_cnn(rng), random_tiny_cnn(rng)
    x = rng.integers(-128, 128, (20, *model.input_spec.shape)).astype(np.int8)
    theirs = TflmInterpreter(to_tflite(other), other.output_spec.shape).run(x)
    assert np.count_nonzero(theirs != run(model, x, arithmetic="tflm")) > 0


def test_the_file_is_a_standard_int8_tflite() -> None:
    model = random_tiny_cnn(np.random.default_rng(2))
    data = to_tflite(model)
    assert data[4:8] == b"TFL3" and data == to_tflite(model)  # identifier; deterministic
    parsed = fb.ModelT.InitFromPackedBuf(data, 0)
    assert parsed.version == 3 and parsed.buffers[0].data is None  # buffer 0 is the empty one
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    graph = parsed.subgraphs[0]
    ops = [names[parsed.operatorCodes[o.opcodeIndex].builtinCode] for o in graph.operators]
    assert ops == ["CONV_2D", "MAX_POOL_2D"] * 3 + ["AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    x, y = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    assert list(x.shape) == [1, 1, 128, 2] and x.type == fb.TensorType.INT8
    assert list(y.shape) == [1, 8]
    spec = model.input_spec
    assert x.quantization.scale[0] == pytest.approx(spec.scale)
    assert list(x.quantization.zeroPoint) == [spec.zero_point]
    conv = graph.tensors[graph.operators[0].inputs[1]]  # per-output-channel int8 filter, OHWI
    assert list(conv.shape) == [6, 1, 7, 2] and len(conv.quantization.scale) == 6


def test_layouts_round_trip() -> None:
    rng = np.random.default_rng(3)
    for shape in ((3, 10), (2, 4, 5), (7,)):
        x = rng.integers(-128, 128, (4, *shape)).astype(np.int8)
        assert np.array_equal(from_nhwc(to_nhwc(x), shape), x)
    assert to_nhwc(np.zeros((2, 3, 10), np.int8)).shape == (2, 1, 10, 3)


def test_tflm_refusing_a_file_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="TFLM refused the model"):
        TflmInterpreter(b"TFL3 but not a model" * 4, (8,))


def test_flatten_of_a_feature_map_keeps_the_channel_major_order() -> None:
    """TFLite reshapes NHWC row by row; the export transposes first, so the classifier sees
    the features in the order the model was trained with."""
    rng = np.random.default_rng(4)
    builder = random_models.ModelBuilder(rng, (3, 6))
    builder.simple("flatten")
    builder.linear(5)
    model: TinyModel = builder.build()
    x = random_models.random_input(rng, model, 16)
    np.testing.assert_array_equal(tflm_run(model, x), run(model, x, arithmetic="tflm"))
