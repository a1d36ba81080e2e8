"""The early-exit policy: answers on a hand-made trace, threshold tuning, device accounting."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.integrate.inference.contract import NotFittedError, Trace
from tinylarge.integrate.inference.early_exit import (
    BOTTLENECK_LOGITS_KEY,
    EXIT_LOGITS_KEY,
    EarlyExit,
)


def hand_trace() -> Trace:
    # exit confidences (max softmax of 2 classes): high, low, high, low
    exit_logits = np.array([[4.0, 0.0], [0.1, 0.0], [0.0, 5.0], [0.0, 0.2]])
    edge_logits = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    return Trace(
        tiny_logits=np.zeros((4, 2)),
        large_logits=np.zeros((4, 2)),
        y=np.array([0, 1, 1, 0]),
        extra={EXIT_LOGITS_KEY: exit_logits, BOTTLENECK_LOGITS_KEY: edge_logits},
    )


def test_early_exit_on_a_hand_trace() -> None:
    policy = EarlyExit("max_softmax", exit_macs=1000, encoder_macs=50, code_bytes=72, threshold=0.9)
    d = policy.decide(hand_trace(), np.array([0, 1, 2, 3, 1]), np.random.default_rng(0))
    np.testing.assert_array_equal(d.offload, [False, True, False, True, True])
    # exits answer with the exit head (0, 1); offloads with the edge (1, 0, 1)
    np.testing.assert_array_equal(d.prediction, [0, 1, 1, 0, 1])
    # the fallback is the exit head's answer (sample 1: 0, sample 3: 1)
    np.testing.assert_array_equal(d.fallback_prediction, [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(d.bytes_up, [0, 72, 0, 72, 72])
    np.testing.assert_array_equal(d.device_macs, [1000, 1050, 1000, 1050, 1050])


@pytest.mark.parametrize("target", [0.0, 0.15, 0.4, 0.75, 1.0])
def test_tuned_threshold_hits_the_target_offload(target: float) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    trace = Trace(
        tiny_logits=np.zeros((n, 3)),
        large_logits=np.zeros((n, 3)),
        y=rng.integers(0, 3, n),
        extra={
            EXIT_LOGITS_KEY: rng.normal(size=(n, 3)),
            BOTTLENECK_LOGITS_KEY: rng.normal(size=(n, 3)),
        },
    )
    policy = EarlyExit(
        "entropy", exit_macs=1, encoder_macs=1, code_bytes=1, target_offload=target
    ).fit(trace)
    assert abs(policy.validation_offload_fraction_ - target) <= 0.01
    d = policy.decide(trace, np.arange(n), np.random.default_rng(0))
    assert abs(d.offload.mean() - target) <= 0.01


def test_early_exit_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        EarlyExit("margin", exit_macs=1, encoder_macs=1, code_bytes=1)
    with pytest.raises(ValueError, match="kind"):
        EarlyExit("vibes", exit_macs=1, encoder_macs=1, code_bytes=1, threshold=0.5)
    with pytest.raises(ValueError, match="code_bytes"):
        EarlyExit("margin", exit_macs=1, encoder_macs=1, code_bytes=0, threshold=0.5)
    tuned = EarlyExit("margin", exit_macs=1, encoder_macs=1, code_bytes=1, target_offload=0.3)
    with pytest.raises(NotFittedError):
        tuned.decide(hand_trace(), [0], np.random.default_rng(0))
    bare = Trace(tiny_logits=np.zeros((2, 2)), large_logits=np.zeros((2, 2)), y=[0, 1])
    with pytest.raises(KeyError, match="exit_logits"):
        EarlyExit("margin", exit_macs=1, encoder_macs=1, code_bytes=1, threshold=0.5).decide(
            bare, [0], np.random.default_rng(0)
        )
