"""Every policy on a hand-made 6-sample, 3-class trace with known answers; contract checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import zstandard

from tinylarge.integrate.inference import baselines as policies_module
from tinylarge.integrate.inference.baselines import (
    Cascade,
    LargeCompressed,
    LargeOnly,
    Oracle,
    TinyOnly,
)
from tinylarge.integrate.inference.contract import (
    FRAMES_KEY,
    Decision,
    NotFittedError,
    Policy,
    Trace,
    large_logits_key,
)
from tinylarge.integrate.inference.frame_codec import (
    compressed_sizes,
    dequantize_frames,
    dequantize_input,
    requantize_frames,
)

# Samples: 0, 1 sure and right; 2 unsure, wrong; 3 unsure, right; 4 unsure, wrong; 5 sure, wrong.
TINY = [[5, 0, 0], [0, 4, 0], [1, 0.9, 0], [0, 0, 0.2], [0.5, 0.4, 0.45], [0, 0, 3]]
LARGE = [[3, 0, 0], [0, 3, 0], [0, 3, 0], [3, 0, 0], [0, 0, 3], [0, 3, 0]]
Y = [0, 1, 1, 2, 2, 0]
# Tiny predicts [0, 1, 0, 2, 0, 2]; large [0, 1, 1, 0, 2, 1]; max-softmax < 0.6 on 2, 3, 4 only.
TINY_PRED = np.array([0, 1, 0, 2, 0, 2])
LARGE_PRED = np.array([0, 1, 1, 0, 2, 1])
FRAME_SHAPE = (2, 16)
MACS = 1000
RNG = np.random.default_rng(0)


def make_trace() -> Trace:
    frames = np.random.default_rng(1).integers(-128, 128, size=(6, *FRAME_SHAPE), dtype=np.int8)
    degraded = np.roll(np.asarray(LARGE), 1, axis=1)  # 4-bit answers: [1, 2, 2, 1, 0, 2]
    extra = {FRAMES_KEY: frames, large_logits_key(4): degraded}
    return Trace(np.array(TINY), np.array(LARGE), np.array(Y), np.linspace(-10, 15, 6), extra)


ALL = np.arange(6)


def test_trace_hand_values() -> None:
    trace = make_trace()
    assert trace.tiny_logits.dtype == np.float32 and trace.y.dtype == np.int64
    assert (trace.n_samples, trace.n_classes) == (6, 3)
    np.testing.assert_array_equal(trace.tiny_prediction, TINY_PRED)
    np.testing.assert_array_equal(trace.large_prediction, LARGE_PRED)
    with pytest.raises(TypeError):
        trace.extra["new"] = np.zeros(6)  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        trace.tiny_logits[0, 0] = 1.0
    conf = trace.tiny_confidence("max_softmax")
    assert conf is trace.tiny_confidence("max_softmax")  # computed once
    np.testing.assert_array_equal(conf < 0.6, [False, False, True, True, True, False])


def test_tiny_only() -> None:
    d = TinyOnly(tiny_macs=MACS).decide(make_trace(), ALL, RNG)
    assert not d.offload.any() and (d.bytes_up == 0).all() and (d.device_macs == MACS).all()
    np.testing.assert_array_equal(d.prediction, TINY_PRED)
    np.testing.assert_array_equal(d.fallback_prediction, TINY_PRED)


def test_large_only() -> None:
    d = LargeOnly(frame_bytes=256).decide(make_trace(), ALL, RNG)
    assert d.offload.all() and (d.bytes_up == 256).all() and (d.device_macs == 0).all()
    np.testing.assert_array_equal(d.prediction, LARGE_PRED)
    assert (d.fallback_prediction == -1).all()


@pytest.mark.parametrize("kind", ["max_softmax", "margin", "entropy"])
def test_cascade_fixed_threshold(kind: str) -> None:
    threshold = {"max_softmax": 0.6, "margin": 0.3, "entropy": -0.9}[kind]
    policy = Cascade(kind, threshold=threshold, frame_bytes=256, tiny_macs=MACS)
    d = policy.decide(make_trace(), ALL, RNG)  # no fit needed
    np.testing.assert_array_equal(d.offload, [False, False, True, True, True, False])
    np.testing.assert_array_equal(d.prediction, [0, 1, 1, 0, 2, 2])
    np.testing.assert_array_equal(d.bytes_up, [0, 0, 256, 256, 256, 0])
    np.testing.assert_array_equal(d.fallback_prediction, TINY_PRED)
    assert (d.device_macs == MACS).all()


def test_cascade_tuned_on_validation() -> None:
    trace = make_trace()
    half = Cascade("max_softmax", target_offload=0.5, frame_bytes=256, tiny_macs=MACS)
    with pytest.raises(NotFittedError, match="fit"):
        half.decide(trace, ALL, RNG)
    assert half.fit(trace) is half
    assert half.validation_offload_fraction_ == 0.5
    assert half.validation_accuracy_ == pytest.approx(4 / 6)
    np.testing.assert_array_equal(half.decide(trace, ALL, RNG).offload, [0, 0, 1, 1, 1, 0])
    # Offloading only sample 4 (least confident, fixed by the large model) reaches 4/6.
    acc = Cascade("max_softmax", target_accuracy=4 / 6, frame_bytes=256, tiny_macs=MACS)
    np.testing.assert_array_equal(
        acc.fit(trace).decide(trace, ALL, RNG).offload, [0, 0, 0, 0, 1, 0]
    )
    # 5/6 is unreachable by any threshold: the most accurate one (4/6) with the fewest offloads,
    # offloading sample 4 only (offloading everything is 4/6 too, with six frames on air)
    top = Cascade("max_softmax", target_accuracy=5 / 6, frame_bytes=256, tiny_macs=MACS)
    np.testing.assert_array_equal(
        top.fit(trace).decide(trace, ALL, RNG).offload, [0, 0, 0, 0, 1, 0]
    )
    assert top.validation_accuracy_ == pytest.approx(4 / 6)


def test_oracle_offloads_exactly_the_fixed_frames() -> None:
    d = Oracle(frame_bytes=256, tiny_macs=MACS).decide(make_trace(), ALL, RNG)
    np.testing.assert_array_equal(d.offload, [False, False, True, False, True, False])
    assert (d.prediction == np.array(Y)).mean() == pytest.approx(5 / 6)


def test_large_compressed_sizes_predictions_and_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = make_trace()
    compressed_rows: list[int] = []

    def counting(frames: np.ndarray, level: int) -> np.ndarray:
        compressed_rows.append(len(frames))
        return compressed_sizes(frames, level)

    monkeypatch.setattr(policies_module, "compressed_sizes", counting)
    policy = LargeCompressed(bits_per_sample=4, frame_shape=FRAME_SHAPE, level=5)
    index = np.array([3, 3, 0, 5, 3])
    d = policy.decide(trace, index, RNG)
    codec = zstandard.ZstdCompressor(
        level=5, write_checksum=False, write_content_size=False, write_dict_id=False
    )
    codes = requantize_frames(trace.extra[FRAMES_KEY], 4)
    direct = [len(codec.compress(codes[i].tobytes())) for i in index]
    np.testing.assert_array_equal(d.bytes_up, direct)
    np.testing.assert_array_equal(d.prediction, [1, 1, 1, 2, 1])  # from large_logits_4b
    assert d.offload.all() and (d.device_macs == 0).all() and (d.fallback_prediction == -1).all()
    policy.decide(trace, ALL, RNG)
    assert compressed_rows == [3, 3]  # samples 0, 3, 5, then only 1, 2, 4


def test_large_compressed_needs_its_trace_keys() -> None:
    trace = make_trace()
    with pytest.raises(KeyError, match="large_logits_2b"):
        LargeCompressed(2, FRAME_SHAPE).decide(trace, ALL, RNG)
    with pytest.raises(ValueError, match="frame_shape"):
        LargeCompressed(4, (2, 8)).decide(trace, ALL, RNG)


def test_requantize_roundtrip_and_levels() -> None:
    x = np.arange(-128, 128, dtype=np.int8)
    np.testing.assert_array_equal(dequantize_frames(requantize_frames(x, 8), 8), x)
    np.testing.assert_array_equal(requantize_frames(x, 1), (x >= 0).astype(np.uint8))
    np.testing.assert_array_equal(
        np.unique(dequantize_frames(requantize_frames(x, 1), 1)), [-64.5, 63.5]
    )
    for bits in range(1, 9):
        error = dequantize_frames(requantize_frames(x, bits), bits) - x
        assert np.abs(error).max() == (2 ** (8 - bits) - 1) / 2  # half a cell
    np.testing.assert_array_equal(
        requantize_frames(np.array([-0.4, 1.6, 300.0, -200.0]), 8), [128, 130, 255, 0]
    )


def test_compressed_size_is_monotone_in_bits() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(128)
    frames = 60 * np.stack([np.cos(0.3 * t), np.sin(0.3 * t)]) + rng.normal(0, 8, (200, 2, 128))
    totals = [compressed_sizes(requantize_frames(frames, b)).sum() for b in range(1, 9)]
    assert all(a < b for a, b in itertools.pairwise(totals))
    raw = compressed_sizes(np.clip(np.rint(frames), -128, 127).astype(np.int8))
    assert raw.shape == (200,) and raw.dtype == np.int64


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: requantize_frames(np.array([200]), 4), ValueError, r"\[-128, 127\]"),
        (lambda: requantize_frames(np.array([np.nan]), 4), ValueError, "finite"),
        (
            lambda: requantize_frames(np.zeros(2), 0),
            ValueError,
            r"bits must be an integer in \[1, 8\]",
        ),
        (lambda: requantize_frames(np.zeros(2), True), ValueError, "bits"),
        (lambda: dequantize_frames(np.array([16]), 4), ValueError, r"\[0, 16\)"),
        (lambda: compressed_sizes(np.zeros((2, 3))), TypeError, "uint8 or int8"),
        (lambda: compressed_sizes(np.zeros((2, 3), np.uint8), 0), ValueError, "level"),
        (lambda: Cascade("max_softmax", frame_bytes=1, tiny_macs=0), ValueError, "exactly one"),
        (
            lambda: Cascade("max_softmax", 0.5, 0.1, frame_bytes=1, tiny_macs=0),
            ValueError,
            "exactly one",
        ),
        (lambda: Cascade("ent", 0.5, frame_bytes=1, tiny_macs=0), ValueError, "kind must be one"),
        (lambda: Cascade("margin", float("nan"), frame_bytes=1, tiny_macs=0), ValueError, "NaN"),
        (
            lambda: Cascade("margin", target_offload=2, frame_bytes=1, tiny_macs=0),
            ValueError,
            "target_offload",
        ),
        (lambda: LargeOnly(0), ValueError, "frame_bytes must be an integer >= 1"),
        (lambda: TinyOnly(-1), ValueError, "tiny_macs"),
        (lambda: Oracle(256.0, 0), ValueError, "frame_bytes"),  # type: ignore[arg-type]
        (lambda: LargeCompressed(9, (2, 128)), ValueError, "bits_per_sample"),
        (lambda: LargeCompressed(4, (2, 0)), ValueError, "frame_shape"),
        (lambda: LargeCompressed(4, (2, 128), codec="gzip"), ValueError, "zstd"),
    ],
)
def test_bad_arguments(call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]


def every_policy() -> list[Policy]:
    return [
        TinyOnly(MACS),
        LargeOnly(256),
        Cascade("margin", target_offload=0.5, frame_bytes=256, tiny_macs=MACS),
        Oracle(256, MACS),
        LargeCompressed(4, FRAME_SHAPE),
    ]


@pytest.mark.parametrize("policy", every_policy(), ids=lambda p: p.name)
def test_contract(policy: Policy) -> None:
    trace = make_trace()
    policy.fit(trace)
    index = np.random.default_rng(4).integers(0, 6, size=50)
    d = policy.decide(trace, index, np.random.default_rng(5))
    assert isinstance(d, Decision) and d.n_requests == 50
    again = policy.decide(trace, index[::-1], np.random.default_rng(6))
    for name in ("offload", "prediction", "bytes_up", "device_macs", "fallback_prediction"):
        np.testing.assert_array_equal(getattr(again, name), getattr(d, name)[::-1])
    assert policy.decide(trace, np.zeros(0, np.int64), RNG).n_requests == 0
    with pytest.raises(ValueError, match=r"index must be in \[0, 6\)"):
        policy.decide(trace, np.array([6]), RNG)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        policy.decide(trace, ALL, 0)  # type: ignore[arg-type]


def test_trace_and_decision_validation() -> None:
    tiny, y = np.array(TINY), np.array(Y)
    with pytest.raises(ValueError, match="must equal tiny_logits shape"):
        Trace(tiny, tiny[:, :2], y)
    with pytest.raises(ValueError, match=r"y must be in \[0, 3\)"):
        Trace(tiny, tiny, y + 1)
    with pytest.raises(TypeError, match="y must hold integers"):
        Trace(tiny, tiny, y.astype(float))
    with pytest.raises(ValueError, match="finite"):
        Trace(np.full((6, 3), np.nan), tiny, y)
    with pytest.raises(ValueError, match="n = 6 rows"):
        Trace(tiny, tiny, y, extra={"x": np.zeros(5)})
    with pytest.raises(ValueError, match="snr_db"):
        Trace(tiny, tiny, y, snr_db=np.zeros(5))
    ok = dict(offload=np.array([True, False]), prediction=[1, 0], bytes_up=[9, 0],
              device_macs=[0, 5], fallback_prediction=[-1, 0])  # fmt: skip
    Decision(**ok)  # type: ignore[arg-type]
    changes: list[tuple[dict[str, object], str]] = [
        ({"bytes_up": [9, 1]}, "bytes_up must be 0"),
        ({"prediction": [1, 2]}, "prediction must equal fallback_prediction"),
        ({"offload": np.array([1, 0])}, "bool"),
        ({"device_macs": [0]}, r"shape \(2,\)"),
        ({"fallback_prediction": [-2, 0]}, ">= -1"),
    ]
    for change, message in changes:
        with pytest.raises(ValueError, match=message):
            Decision(**{**ok, **change})  # type: ignore[arg-type]


def test_decision_constructors_fill_the_per_request_arrays() -> None:
    local = Decision.device_or_edge(
        np.array([True, False, True]), [0, 1, 2], [5, 6, 7], bytes_per_offload=9, device_macs=4
    )
    assert local.prediction.tolist() == [5, 1, 7]
    assert local.fallback_prediction.tolist() == [0, 1, 2]
    assert local.bytes_up.tolist() == [9, 0, 9] and local.device_macs.tolist() == [4, 4, 4]
    sent = Decision.all_offloaded([3, 1], bytes_up=[7, 8], device_macs=2)
    assert sent.offload.tolist() == [True, True] and sent.fallback_prediction.tolist() == [-1, -1]
    assert sent.bytes_up.tolist() == [7, 8] and sent.device_macs.tolist() == [2, 2]
    assert Decision.all_offloaded([3], bytes_up=5).device_macs.tolist() == [0]


def test_the_edge_dequantizes_frames_as_the_device_quantized_them() -> None:
    q = np.array([[-128, -3, 0, 127]], dtype=np.int8)
    x = dequantize_input(q, scale=0.5, zero_point=-3)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[-62.5, 0.0, 1.5, 65.0]])  # 0.5 x (q + 3)
    # the b-bit reconstruction maps the same way (floats on the int8 scale)
    approx = dequantize_frames(requantize_frames(q, 8), 8)
    np.testing.assert_array_equal(dequantize_input(approx, scale=0.5, zero_point=-3), x)
