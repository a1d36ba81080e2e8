"""Deadline and energy-budget limits on hand-made decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinylarge.integrate.inference.contract import Decision
from tinylarge.integrate.inference.resource_limits import apply_resource_limits

INF = math.inf


def decision(offload: list[bool], fallback: list[int]) -> Decision:
    off = np.array(offload, dtype=np.bool_)
    fb = np.array(fallback, dtype=np.int64)
    return Decision(
        offload=off,
        prediction=np.where(off, 7, fb),
        bytes_up=np.where(off, 100, 0),
        device_macs=np.full(off.shape, 50),
        fallback_prediction=fb,
    )


def test_deadline_keeps_late_offloads_on_device() -> None:
    d = decision([True, True, True, True, False], [0, 1, -1, 2, 3])
    out = apply_resource_limits(d, latency_s=np.array([0.01, 0.2, 0.05, INF, 0.5]), deadline_s=0.1)
    np.testing.assert_array_equal(out.offload, [True, False, True, False, False])
    np.testing.assert_array_equal(out.prediction, [7, 1, 7, 2, 3])
    np.testing.assert_array_equal(out.bytes_up, [100, 0, 100, 0, 0])
    np.testing.assert_array_equal(out.device_macs, d.device_macs)
    np.testing.assert_array_equal(out.fallback_prediction, d.fallback_prediction)
    # Per-request deadlines; equality meets the deadline.
    per_request = apply_resource_limits(
        d, latency_s=np.full(5, 0.1), deadline_s=np.array([0.1, 0.05, INF, 0.0, 0.0])
    )
    np.testing.assert_array_equal(per_request.offload, [True, False, True, False, False])


def test_energy_budget_one_device_in_arrival_order() -> None:
    # Budget 1 J: request 0 alone exceeds it (kept, costs nothing); 1 fits (0.5 J); 2 would
    # overdraw (1.25 J), so it and every later one (3, although it would fit) stay local.
    d = decision([True] * 5, [-1, 0, 1, 2, 0])
    out = apply_resource_limits(
        d, energy_j=np.array([2.0, 0.5, 0.75, 0.25, INF]), energy_budget_j=1.0
    )
    np.testing.assert_array_equal(out.offload, [False, True, False, False, False])
    np.testing.assert_array_equal(out.prediction, [-1, 7, 1, 2, 0])  # -1: no answer


def test_energy_budget_per_device_interleaved() -> None:
    d = decision([True] * 6 + [False], [0] * 7)
    out = apply_resource_limits(
        d,
        energy_j=np.full(7, 0.5),
        energy_budget_j=np.array([1.0, 0.5]),
        device=np.array([0, 1, 0, 1, 0, 1, 0]),
    )
    np.testing.assert_array_equal(out.offload, [True, True, True, False, False, False, False])


def test_float_rounding_does_not_reject_an_exact_fit() -> None:
    d = decision([True, True], [0, 0])
    out = apply_resource_limits(d, energy_j=np.array([0.1, 0.2]), energy_budget_j=0.3)
    assert out.offload.all()


def test_deadline_then_energy_and_infinite_budget() -> None:
    d = decision([True, True, True], [0, 0, 0])
    # Request 0 misses its deadline, so it does not spend the 1 J budget: 1 and 2 fit.
    out = apply_resource_limits(
        d,
        latency_s=np.array([1.0, 0.0, 0.0]),
        deadline_s=0.5,
        energy_j=np.array([0.5, 0.5, 0.5]),
        energy_budget_j=1.0,
    )
    np.testing.assert_array_equal(out.offload, [False, True, True])
    unlimited = apply_resource_limits(d, energy_j=np.array([1e9, INF, 3.0]), energy_budget_j=INF)
    assert unlimited.offload.all()
    assert apply_resource_limits(d).offload.all()
    empty = decision([], [])
    assert apply_resource_limits(empty, energy_j=np.zeros(0), energy_budget_j=1.0).n_requests == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latency_s": np.zeros(2)}, "give both latency_s and deadline_s"),
        ({"energy_budget_j": 1.0}, "give both energy_j and energy_budget_j"),
        ({"latency_s": np.zeros(3), "deadline_s": 1.0}, r"latency_s must have shape \(2,\)"),
        ({"latency_s": np.zeros(2), "deadline_s": np.ones(3)}, "deadline_s must be a scalar"),
        ({"latency_s": np.array([0, np.nan]), "deadline_s": 1.0}, "not NaN"),
        ({"energy_j": np.array([-1.0, 0]), "energy_budget_j": 1.0}, ">= 0"),
        ({"energy_j": np.zeros(2), "energy_budget_j": np.ones(2)}, "scalar when device"),
        (
            {"energy_j": np.zeros(2), "energy_budget_j": np.ones(2), "device": np.array([0, 2])},
            r"device must be in \[0, 2\)",
        ),
        ({"device": np.array([0, 1])}, "device is only used with"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_resource_limits(decision([True, True], [0, 0]), **kwargs)  # type: ignore[arg-type]


def test_rejects_non_decision() -> None:
    with pytest.raises(TypeError, match="Decision"):
        apply_resource_limits(np.ones(3))  # type: ignore[arg-type]
