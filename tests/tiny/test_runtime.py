"""The integer runtime: TFLite Micro fixed-point helpers, both arithmetics, input checks.

Expected fixed-point values come from TensorFlow Lite's own unit tests
(``tensorflow/lite/kernels/internal/quantization_util_test.cc``) or are worked out by hand from
the C definitions (gemmlowp ``SaturatingRoundingDoublingHighMul`` / ``RoundingDivideByPOT``,
TFLite ``AveragePool``); the working is in the comments.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import random_models

from tinylarge.tiny.fixed_point import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)
from tinylarge.tiny.graph import Op, TensorSpec, TinyModel, TinyModelError
from tinylarge.tiny.program import compile_model
from tinylarge.tiny.requantize import add, average
from tinylarge.tiny.runtime import execute, run


# -- fixed point: TFLite's published test vectors -------------------------------------------
@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.25, (1073741824, -1)),
        (0.50 - 5e-9, (2147483627, -1)),
        (0.50 - 1e-10, (1073741824, 0)),  # rounds to 2**31: halved, shift + 1
        (0.50, (1073741824, 0)),
        (0.75, (1610612736, 0)),
        (1 - 1e-9, (2147483646, 0)),
        (1 + 1e-11, (1073741824, 1)),
        (1.25, (1342177280, 1)),
        (1.75, (1879048192, 1)),
        (2 - 1e-9, (2147483647, 1)),
        (2 - 1e-11, (1073741824, 2)),
        (2.0**-31, (1073741824, -30)),
        (2.0**-32, (1073741824, -31)),
        (float(np.ldexp(np.float32(0.99), -32)), (0, 0)),  # shift < -31: multiplier 0
        (2.0**-33, (0, 0)),
        (0.0, (0, 0)),
    ],
)
def test_quantize_multiplier_matches_tflite_test_vectors(
    real: float, expected: tuple[int, int]
) -> None:
    assert quantize_multiplier(real) == expected


def test_quantize_multiplier_of_one_third_is_round_two_thirds_times_2_31() -> None:
    # frexp(1/3) = (2/3, -1); 2/3 * 2**31 = 1431655765.33 -> 1431655765.
    assert quantize_multiplier(1 / 3) == (1431655765, -1)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_quantize_multiplier_rejects_negative_and_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite and >= 0"):
        quantize_multiplier(bad)


def _quant_and_multiply(x: int, real: float) -> int:
    q, shift = quantize_multiplier(abs(real))
    return int(multiply_by_quantized_multiplier(np.int64(x), q if real >= 0 else -q, shift))


@pytest.mark.parametrize(
    ("x", "real", "expected"),
    [
        (0, 0.1, 0),
        (1, 0.0, 0),
        (10000, 0.00097656, 10),
        (10000, -0.00097656, -10),
        (-10000, 0.00097656, -10),
        (-10000, -0.00097656, 10),
        (INT32_MIN, 0.00001, -21475),
        (INT32_MIN, -0.00001, 21475),
        (INT32_MAX, 0.00001, 21475),
        (INT32_MAX, -0.00001, -21475),
    ],
)
def test_multiply_by_quantized_multiplier_matches_tflite_test_vectors(
    x: int, real: float, expected: int
) -> None:
    assert _quant_and_multiply(x, real) == expected


def test_multiply_by_quantized_multiplier_at_the_int32_extremes() -> None:
    # TFLite's test: x = q = INT32_MAX, shift -3 gives round(x * q / 2**34), half away from 0.
    exact = INT32_MAX * INT32_MAX
    expected = (exact + 2**33) // 2**34
    assert int(multiply_by_quantized_multiplier(np.int64(INT32_MAX), INT32_MAX, -3)) == expected
    assert int(multiply_by_quantized_multiplier(np.int64(-INT32_MAX), INT32_MAX, -3)) == -expected


# -- fixed point: hand-computed values ------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 2**30, 1),  # 2 * 2**30 / 2**32 = 0.5: positive tie rounds up
        (-1, 2**30, 0),  # -0.5: (-2**30 + 1 - 2**30) / 2**31 truncates to 0
        (3, 2**30, 2),  # 1.5 -> 2
        (-3, 2**30, -1),  # -1.5: (-3 * 2**30 + 1 - 2**30) / 2**31 = -1.99.. -> -1
        (5, 2**30, 3),  # 2.5 -> 3
        (100, 1431655765, 67),  # 100 * (2/3) = 66.67 -> 67
        (INT32_MIN, INT32_MIN, INT32_MAX),  # the one overflow saturates
        (INT32_MIN, INT32_MAX, -INT32_MAX),  # -(2**31 - 1) exactly
    ],
)
def test_saturating_rounding_doubling_high_mul_hand_values(a: int, b: int, expected: int) -> None:
    assert int(saturating_rounding_doubling_high_mul(np.int64(a), b)) == expected


@pytest.mark.parametrize(
    ("x", "exponent", "expected"),
    [
        (5, 1, 3),  # 2.5 -> 3 (half away from zero)
        (-5, 1, -3),
        (3, 1, 2),  # 1.5 -> 2
        (-3, 1, -2),
        (-2, 2, -1),  # -0.5 -> -1
        (6, 2, 2),  # 1.5 -> 2
        (-6, 2, -2),
        (7, 2, 2),  # 1.75 -> 2
        (-7, 2, -2),
        (5, 2, 1),  # 1.25 -> 1
        (-5, 2, -1),
        (4, 0, 4),  # exponent 0 is the identity
        (-4, 0, -4),
        (INT32_MAX, 31, 1),
        (INT32_MIN, 31, -1),
    ],
)
def test_rounding_divide_by_pot_hand_values(x: int, exponent: int, expected: int) -> None:
    assert int(rounding_divide_by_pot(np.int64(x), exponent)) == expected


def test_rounding_divide_by_pot_vectorized_with_per_channel_exponents() -> None:
    x = np.array([[5, -5, 7], [6, -6, -2]], dtype=np.int64)
    exponent = np.array([[1], [2]])
    np.testing.assert_array_equal(rounding_divide_by_pot(x, exponent), [[3, -3, 4], [2, -2, -1]])
    with pytest.raises(ValueError, match=r"\[0, 31\]"):
        rounding_divide_by_pot(x, 32)


@pytest.mark.parametrize(
    ("x", "real", "expected"),
    [
        (3, 1 / 3, 1),  # high mul: (3 * 1431655765 + 2**30) >> 31 = 2; 2 / 2 = 1
        (9, 1 / 3, 3),  # high mul 6; 6 / 2 = 3
        (3, 0.5, 2),  # 1.5 -> 2
        (-3, 0.5, -1),  # -1.5 -> -1: the high multiply's tie goes toward +infinity
        (6, 0.25, 2),  # high mul 3 (1.5 -> 2 after the shift): 6 * 0.25 = 1.5 -> 2
        (5, 0.25, 2),  # double rounding: 5 * 0.5 = 2.5 -> 3, then 3 / 2 = 1.5 -> 2 (not 1)
        (-5, 0.25, -1),  # -2.5 -> -2, then -2 / 2 = -1
    ],
)
def test_double_rounding_hand_values(x: int, real: float, expected: int) -> None:
    assert _quant_and_multiply(x, real) == expected


def test_left_shift_wraps_like_int32() -> None:
    # M = 2: q = 2**30, shift 2; x = 2**29 shifted left by 2 wraps to INT32_MIN in int32.
    assert int(wrap_int32(np.int64(2**31))) == INT32_MIN
    assert int(multiply_by_quantized_multiplier(np.int64(2**29), 2**30, 2)) == -(2**30)
    assert int(multiply_by_quantized_multiplier(np.int64(1000), 2**30, 2)) == 2000


# -- pooling and add kernels ----------------------------------------------------------------
def test_tflm_average_divides_the_raw_sum_rounding_half_away_from_zero() -> None:
    sums = np.array([5, -5, 4, 5, -5, 7, -7, 0], dtype=np.int64)
    counts = [2, 2, 3, 3, 3, 4, 4, 9]
    expected = [3, -3, 1, 2, -2, 2, -2, 0]  # 2.5, -2.5, 1.33, 1.67, -1.67, 1.75, -1.75, 0
    got = [
        int(average("tflm", sums[i : i + 1], c, zero_point=0, scale=0.1)[0])
        for i, c in enumerate(counts)
    ]
    assert got == expected


def test_onnx_average_rounds_ties_to_even() -> None:
    # Offset sums 5 and 7 over 2 (multiplier exactly 0.5): 2.5 -> 2 and 3.5 -> 4, plus zp.
    got = average("onnx", np.array([5, 7, -5]), 2, zero_point=3, scale=0.25)
    np.testing.assert_array_equal(got, [5, 7, 1])


def test_tflm_add_with_equal_scales_is_integer_addition_with_saturation() -> None:
    a = np.array([3, -50, 100, -100, 0], dtype=np.int8)
    b = np.array([4, 20, 100, -100, -1], dtype=np.int8)
    q = (0.5, 0)
    for arithmetic in ("tflm", "onnx"):
        got = add(arithmetic, a, b, a_qparams=q, b_qparams=q, out_qparams=q, relu=False)
        np.testing.assert_array_equal(got, [7, -30, 127, -128, -1])
        with_relu = add(arithmetic, a, b, a_qparams=q, b_qparams=q, out_qparams=q, relu=True)
        np.testing.assert_array_equal(with_relu, [7, 0, 127, 0, 0])


def test_add_rescales_both_inputs() -> None:
    # a at scale 1 (zp 10), b at scale 0.5 (zp -4), output scale 2 (zp 1):
    # (30 - 10) * 1 + (8 + 4) * 0.5 = 26 -> 26 / 2 = 13 -> q = 14.
    args = {"a_qparams": (1.0, 10), "b_qparams": (0.5, -4), "out_qparams": (2.0, 1), "relu": False}
    a, b = np.array([30], dtype=np.int8), np.array([8], dtype=np.int8)
    assert int(add("tflm", a, b, **args)[0]) == 14
    assert int(add("onnx", a, b, **args)[0]) == 14


def test_add_modes_differ_by_at_most_one_lsb() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = (rng.integers(-128, 128, 500).astype(np.int8) for _ in range(2))
        scales = 2.0 ** rng.uniform(-8, 0, 3)
        zps = rng.integers(-128, 128, 3)
        args = {
            "a_qparams": (float(scales[0]), int(zps[0])),
            "b_qparams": (float(scales[1]), int(zps[1])),
            "out_qparams": (float(scales[2]), int(zps[2])),
            "relu": bool(rng.random() < 0.5),
        }
        diff = add("tflm", a, b, **args).astype(int) - add("onnx", a, b, **args)
        assert np.abs(diff).max() <= 1


# -- a hand-computed model ------------------------------------------------------------------
def _sum_pairs_model(relu: bool) -> TinyModel:
    """conv1d, one channel, kernel [1, 1], multiplier exactly 0.5: y = (x0 + x1) / 2."""
    return TinyModel(
        ops=(Op("c", "conv", ("x",), "y", {"stride": (1,), "padding": (0,), "relu": relu}),),
        tensors={"x": TensorSpec((1, 3), 1.0, 0), "y": TensorSpec((1, 2), 2.0, 0)},
        constants={
            "c.weight": np.ones((1, 1, 2), dtype=np.int8),
            "c.bias": np.zeros(1, dtype=np.int32),
            "c.weight_scale": np.ones(1, dtype=np.float32),
        },
        input="x",
        output="y",
        class_names=("a", "b"),
        manifest={},
    )


def test_conv_tie_rules_of_both_arithmetics_by_hand() -> None:
    x = np.array([[[1, 2, 5]], [[-1, -2, -5]]], dtype=np.int8)  # pair sums 3, 7 / -3, -7
    # TFLM: 1.5 -> 2, 3.5 -> 4, -1.5 -> -1 and -3.5 -> -3 (the high multiply's ties go up).
    np.testing.assert_array_equal(run(_sum_pairs_model(False), x), [[[2, 4]], [[-1, -3]]])
    # ONNX Runtime: half to even.
    np.testing.assert_array_equal(
        run(_sum_pairs_model(False), x, arithmetic="onnx"), [[[2, 4]], [[-2, -4]]]
    )
    # A fused ReLU clamps at the zero point (0 here).
    np.testing.assert_array_equal(run(_sum_pairs_model(True), x), [[[2, 4]], [[0, 0]]])


# -- whole models ---------------------------------------------------------------------------
def test_output_does_not_depend_on_batch_size_or_fusion() -> None:
    for seed in range(40):
        rng = np.random.default_rng(seed)
        model = random_models.random_model(rng)
        x = random_models.random_input(rng, model, 13)
        for arithmetic in ("tflm", "onnx"):
            whole = run(model, x, arithmetic=arithmetic)
            assert whole.dtype == np.int8
            assert whole.shape == (13, *model.output_spec.shape)
            np.testing.assert_array_equal(run(model, x, arithmetic=arithmetic, batch_size=4), whole)
            unfused = execute(model, compile_model(model, arithmetic, fuse=False), x)
            np.testing.assert_array_equal(unfused, whole)


def test_empty_batch_gives_empty_output() -> None:
    model = random_models.random_model(np.random.default_rng(1))
    out = run(model, np.zeros((0, *model.input_spec.shape), dtype=np.int8))
    assert out.shape == (0, *model.output_spec.shape) and out.dtype == np.int8


# -- errors ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> TinyModel:
    return _sum_pairs_model(False)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_wrong_dtype_is_rejected_with_a_hint(model: TinyModel, dtype: type) -> None:
    with pytest.raises(TypeError, match=rf"x must be int8 .*got dtype {np.dtype(dtype).name}"):
        run(model, np.zeros((2, 1, 3), dtype=dtype))


@pytest.mark.parametrize("shape", [(1, 3), (2, 1, 4), (2, 3, 1), (2, 1, 3, 1)])
def test_wrong_shape_names_expected_and_given(model: TinyModel, shape: tuple[int, ...]) -> None:
    with pytest.raises(
        ValueError, match=re.escape("shape (N, 1, 3)") + f".*got {re.escape(str(shape))}"
    ):
        run(model, np.zeros(shape, dtype=np.int8))


def test_non_array_input_is_rejected(model: TinyModel) -> None:
    with pytest.raises(TypeError, match="numpy int8 array"):
        run(model, [[[1, 2, 3]]])  # type: ignore[arg-type]


def test_bad_arithmetic_and_batch_size_are_rejected(model: TinyModel) -> None:
    x = np.zeros((1, 1, 3), dtype=np.int8)
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        run(model, x, arithmetic="tflite")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        run(model, x, batch_size=0)


def test_inconsistent_tensor_shape_names_the_op(model: TinyModel) -> None:
    tensors = dict(model.tensors)
    tensors["y"] = TensorSpec((2, 1), 2.0, 0)
    broken = replace(model, tensors=tensors)
    with pytest.raises(TinyModelError, match=r"\(c, conv\): computes shape \(1, 2\).*\(2, 1\)"):
        run(broken, np.zeros((1, 1, 3), dtype=np.int8))


def test_unknown_attribute_is_rejected(model: TinyModel) -> None:
    op = replace(model.ops[0], attrs={**model.ops[0].attrs, "dilation": (2,)})
    with pytest.raises(TinyModelError, match=r"unknown attribute\(s\) \['dilation'\]"):
        run(replace(model, ops=(op,)), np.zeros((1, 1, 3), dtype=np.int8))
