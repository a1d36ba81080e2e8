"""Exact FIFO queues: closed forms against plain event loops, queueing theory, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from tinylarge.net import queues
from tinylarge.net.batching import BatchServiceFn, batch_queue, linear_batch_service
from tinylarge.net.queues import (
    MAX_TICKS,
    fifo_queue,
    fifo_queue_grouped,
    fifo_queue_grouped_ns,
    fifo_queue_ns,
    ns_to_seconds,
    seconds_to_ns,
)

# ---------------------------------------------------------------- reference loops (Python ints)


def ref_fifo_ns(arrival: list[int], service: list[int]) -> tuple[list[int], list[int]]:
    """D_n = max(A_n, D_{n-1}) + S_n, one customer at a time; returns (start, departure)."""
    start, departure = [], []
    previous: int | None = None
    for a, s in zip(arrival, service, strict=True):
        begin = a if previous is None else max(a, previous)
        previous = begin + s
        start.append(begin)
        departure.append(previous)
    return start, departure


def ref_grouped_ns(group: list[int], arrival: list[int], service: list[int]) -> list[int]:
    """One reference loop per group, customers in (arrival, input position) order."""
    departure = [0] * len(arrival)
    for label in set(group):
        members = sorted((i for i, g in enumerate(group) if g == label), key=lambda i: arrival[i])
        _, dep = ref_fifo_ns([arrival[i] for i in members], [service[i] for i in members])
        for i, d in zip(members, dep, strict=True):
            departure[i] = d
    return departure


def ref_batches_ns(
    arrival: list[int], max_batch: int, max_wait: int | None
) -> list[tuple[int, int, int]]:
    """Greedy batch forming, one request at a time: (first, end, ready) per batch."""
    batches, i, n = [], 0, len(arrival)
    while i < n:
        j = i
        deadline = None if max_wait is None else arrival[i] + max_wait
        while j < n and j - i < max_batch and (deadline is None or arrival[j] <= deadline):
            j += 1
        full = j - i == max_batch
        ready = arrival[j - 1] if (full or deadline is None) else deadline
        batches.append((i, j, ready))
        i = j
    return batches


# ------------------------------------------------------------------------------- strategies

gaps = st.one_of(st.just(0), st.integers(0, 30), st.integers(200, 10_000))  # ties, busy, idle
services = st.one_of(st.just(0), st.integers(0, 60))


@st.composite
def sorted_trace(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    steps = draw(st.lists(st.tuples(gaps, services), max_size=120))
    arrival = np.cumsum([g for g, _ in steps], dtype=np.int64).tolist()
    return arrival, [s for _, s in steps]


# ------------------------------------------------------------------------ single FIFO queue


@settings(max_examples=300, deadline=None)
@given(sorted_trace())
def test_fifo_ns_equals_reference_loop(trace: tuple[list[int], list[int]]) -> None:
    arrival, service = trace
    result = fifo_queue_ns(np.array(arrival, dtype=np.int64), np.array(service, dtype=np.int64))
    start, departure = ref_fifo_ns(arrival, service)
    assert np.array_equal(result.start_ns, start)
    assert np.array_equal(result.departure_ns, departure)
    assert np.array_equal(result.wait_ns, np.subtract(start, arrival))
    assert result.departure_ns.dtype == np.int64


@pytest.mark.parametrize("seed", range(40))
def test_fifo_seconds_equals_tick_loop_on_poisson_arrivals(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    load = rng.uniform(0.2, 1.1)  # light load (idle periods) to overload
    arrival_s = np.cumsum(rng.exponential(1e-3, n))
    arrival_s = np.round(arrival_s, 4)  # a 0.1 ms grid: many ties
    service_s = rng.exponential(load * 1e-3, n)
    service_s[rng.random(n) < 0.2] = 0.0
    result = fifo_queue(arrival_s, service_s)

    a, s = seconds_to_ns(arrival_s).tolist(), seconds_to_ns(service_s).tolist()
    start, departure = ref_fifo_ns(a, s)
    assert np.array_equal(result.start_s, ns_to_seconds(start))
    assert np.array_equal(result.departure_s, ns_to_seconds(departure))
    assert np.array_equal(result.wait_s, ns_to_seconds(np.subtract(start, a)))
    assert (result.wait_s >= 0).all()
    # and within the input rounding (<= 0.5 ns per value) of a float recursion in seconds
    previous, float_dep = -np.inf, []
    for x, y in zip(arrival_s.tolist(), service_s.tolist(), strict=True):
        previous = max(x, previous) + y
        float_dep.append(previous)
    np.testing.assert_allclose(result.departure_s, float_dep, rtol=0, atol=(n + 1) * 1e-9)


def test_fifo_hand_example_with_tie_idle_and_zero_service() -> None:
    result = fifo_queue([0.0, 0.0, 1.0, 10.0, 10.0], [2.0, 0.5, 0.0, 1.0, 0.0])
    assert result.start_s.tolist() == [0.0, 2.0, 2.5, 10.0, 11.0]
    assert result.departure_s.tolist() == [2.0, 2.5, 2.5, 11.0, 11.0]
    assert result.wait_s.tolist() == [0.0, 2.0, 1.5, 0.0, 1.0]


def test_scalar_service_and_empty_input() -> None:
    result = fifo_queue([0.0, 0.1, 0.2], 0.25)
    np.testing.assert_array_equal(result.departure_s, [0.25, 0.5, 0.75])
    empty = fifo_queue(np.zeros(0), np.zeros(0))
    assert empty.departure_s.shape == (0,)
    assert fifo_queue_grouped([], [], []).wait_s.shape == (0,)


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(5)
    arrival = np.sort(rng.integers(0, 10**6, 500))
    service = rng.integers(0, 10**4, 500)
    group = rng.integers(0, 7, 500)
    copies = arrival.copy(), service.copy(), group.copy()
    fifo_queue_ns(arrival, service)
    fifo_queue_grouped_ns(group, arrival, service)
    arrival_s, service_s = ns_to_seconds(arrival), ns_to_seconds(service)
    copies_s = arrival_s.copy(), service_s.copy()
    fifo_queue(arrival_s, service_s)
    fifo_queue_grouped(group, arrival_s, service_s)
    after = (arrival, service, group, arrival_s, service_s)
    for original, now in zip(copies + copies_s, after, strict=True):
        assert np.array_equal(original, now)


def test_tick_conversion_rounds_to_nearest_ns() -> None:
    assert seconds_to_ns([1.4e-9, 1.6e-9, 2.5e-9, 1.0]).tolist() == [1, 2, 2, 10**9]
    assert ns_to_seconds([1_500_000]).tolist() == [0.0015]


# ------------------------------------------------------------------------- grouped queues


@st.composite
def grouped_trace(draw: st.DrawFn) -> tuple[list[int], list[int], list[int]]:
    n = draw(st.integers(0, 120))
    group = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    arrival = draw(st.lists(st.integers(0, 400), min_size=n, max_size=n))  # unsorted, ties
    service = draw(st.lists(services, min_size=n, max_size=n))
    return group, arrival, service


@settings(max_examples=200, deadline=None)
@given(grouped_trace())
def test_grouped_equals_one_loop_per_group(trace: tuple[list[int], list[int], list[int]]) -> None:
    group, arrival, service = trace
    result = fifo_queue_grouped_ns(
        np.array(group), np.array(arrival, dtype=np.int64), np.array(service, dtype=np.int64)
    )
    departure = ref_grouped_ns(group, arrival, service)
    assert np.array_equal(result.departure_ns, departure)
    assert np.array_equal(result.start_ns, np.subtract(departure, service))
    assert np.array_equal(result.wait_ns, result.start_ns - np.array(arrival, dtype=np.int64))


@settings(max_examples=100, deadline=None)
@given(grouped_trace())
def test_grouped_chunked_offsets_equal_reference(
    trace: tuple[list[int], list[int], list[int]],
) -> None:
    group, arrival, service = trace
    original = queues._OFFSET_BUDGET
    queues._OFFSET_BUDGET = 1  # every group with a spread gets its own chunk
    try:
        result = fifo_queue_grouped_ns(
            np.array(group), np.array(arrival, dtype=np.int64), np.array(service, dtype=np.int64)
        )
    finally:
        queues._OFFSET_BUDGET = original
    assert np.array_equal(result.departure_ns, ref_grouped_ns(group, arrival, service))


def test_grouped_near_the_horizon_needs_several_chunks() -> None:
    # Eight groups spanning 2**61 ns each: one chain of offsets (7 x 2**61) would overflow int64.
    rng = np.random.default_rng(7)
    group = np.repeat(np.arange(8), 50)
    arrival = np.concatenate([np.sort(rng.integers(0, 2**61, 50)) for _ in range(8)])
    arrival[::50] = 0
    arrival[49::50] = 2**61
    service = rng.integers(0, 10**12, group.size)
    perm = rng.permutation(group.size)
    result = fifo_queue_grouped_ns(group[perm], arrival[perm], service[perm])
    expected = ref_grouped_ns(group[perm].tolist(), arrival[perm].tolist(), service[perm].tolist())
    assert np.array_equal(result.departure_ns, expected)


@pytest.mark.parametrize("seed", range(10))
def test_grouped_seconds_single_group_equals_fifo_queue(seed: int) -> None:
    rng = np.random.default_rng(seed)
    arrival_s = np.round(rng.uniform(0, 5, 2000), 3)  # unsorted, with ties
    service_s = rng.exponential(2e-3, 2000)
    grouped = fifo_queue_grouped(np.zeros(2000, dtype=int), arrival_s, service_s)
    order = np.argsort(arrival_s, kind="stable")
    single = fifo_queue(arrival_s[order], service_s[order])
    assert np.array_equal(grouped.departure_s[order], single.departure_s)
    assert np.array_equal(grouped.wait_s[order], single.wait_s)


def test_grouped_accepts_string_labels() -> None:
    result = fifo_queue_grouped(["b", "a", "b", "a"], [0.0, 0.0, 0.5, 0.5], [1.0, 2.0, 1.0, 2.0])
    assert result.departure_s.tolist() == [1.0, 2.0, 2.0, 4.0]


# ---------------------------------------------------------------------------- batch queue


def ref_batch_queue(
    arrival: list[int],
    max_batch: int,
    max_wait: int | None,
    service_fn: BatchServiceFn,
) -> dict[str, list[int]]:
    batches = ref_batches_ns(arrival, max_batch, max_wait)
    out: dict[str, list[int]] = {"index": [], "start": [], "departure": [], "ready": []}
    out["size"] = [j - i for i, j, _ in batches]
    previous: int | None = None
    for b, (i, j, ready) in enumerate(batches):
        service = int(seconds_to_ns(service_fn(np.array([j - i], dtype=np.int64)))[0])
        begin = ready if previous is None else max(ready, previous)
        previous = begin + service
        out["ready"].append(ready)
        for _ in range(i, j):
            out["index"].append(b)
            out["start"].append(begin)
            out["departure"].append(previous)
    return out


def sqrt_service(sizes: NDArray[np.int64]) -> NDArray[np.float64]:
    return 3e-9 * np.sqrt(sizes.astype(np.float64))


@settings(max_examples=300, deadline=None)
@given(
    sorted_trace(),
    st.integers(1, 6),
    st.one_of(st.none(), st.integers(0, 60)),
    st.sampled_from(["linear", "sqrt"]),
)
def test_batch_queue_equals_reference_loop(
    trace: tuple[list[int], list[int]], max_batch: int, max_wait: int | None, kind: str
) -> None:
    arrival, _ = trace
    service_fn = linear_batch_service(4e-9, 2e-9) if kind == "linear" else sqrt_service
    result = batch_queue(
        ns_to_seconds(arrival),
        max_batch=max_batch,
        batch_service_s=service_fn,
        max_wait_s=None if max_wait is None else max_wait * 1e-9,
    )
    expected = ref_batch_queue(arrival, max_batch, max_wait, service_fn)
    assert result.batch_index.tolist() == expected["index"]
    assert result.batch_size.tolist() == expected["size"]
    assert np.array_equal(result.batch_ready_s, ns_to_seconds(expected["ready"]))
    assert np.array_equal(result.start_s, ns_to_seconds(expected["start"]))
    assert np.array_equal(result.departure_s, ns_to_seconds(expected["departure"]))
    expected_wait = np.array(expected["start"], dtype=np.int64) - np.array(arrival, dtype=np.int64)
    assert np.array_equal(result.wait_s, ns_to_seconds(expected_wait))
    assert np.array_equal(result.batch_start_s[result.batch_index], result.start_s)
    assert np.array_equal(result.batch_departure_s[result.batch_index], result.departure_s)
    service_ns = seconds_to_ns(result.batch_departure_s) - seconds_to_ns(result.batch_start_s)
    assert np.array_equal(service_ns, seconds_to_ns(result.batch_service_s))


def test_batch_queue_hand_example() -> None:
    # max 3 per batch, 10 ms time-out, service 5 ms + 1 ms per request.
    arrival_s = [0.000, 0.001, 0.002, 0.003, 0.020, 0.040, 0.041]
    result = batch_queue(
        arrival_s,
        max_batch=3,
        batch_service_s=linear_batch_service(0.005, 0.001),
        max_wait_s=0.010,
    )
    # batches: {0,1,2} full at 2 ms; {3} times out at 13 ms; {4} at 30 ms; {5,6} at 50 ms
    assert result.batch_size.tolist() == [3, 1, 1, 2]
    np.testing.assert_allclose(result.batch_ready_s, [0.002, 0.013, 0.030, 0.050])
    np.testing.assert_allclose(result.batch_start_s, [0.002, 0.013, 0.030, 0.050])
    np.testing.assert_allclose(result.batch_departure_s, [0.010, 0.019, 0.036, 0.057])
    np.testing.assert_allclose(result.wait_s, [0.002, 0.001, 0.0, 0.010, 0.010, 0.010, 0.009])
    fixed = batch_queue(arrival_s, max_batch=3, batch_service_s=linear_batch_service(0.005, 0.001))
    assert fixed.batch_size.tolist() == [3, 3, 1]
    np.testing.assert_allclose(fixed.batch_ready_s, [0.002, 0.040, 0.041])
    np.testing.assert_allclose(fixed.batch_departure_s, [0.010, 0.048, 0.054])


# ------------------------------------------------------------------------ queueing theory


def _batch_means_se(values: np.ndarray, batches: int = 50) -> float:
    """Standard error of the mean of correlated waits by batch means.

    Batches of 4,000 customers are far longer than the queue's relaxation time at rho = 0.5
    (about 1 / (mu (1 - sqrt(rho))**2) = 12 service times), so their means are close to
    independent; the tests allow 4 standard errors.
    """
    means = values[: values.size // batches * batches].reshape(batches, -1).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(batches))


def test_mm1_mean_wait_matches_theory() -> None:
    lam, mu, n = 0.5, 1.0, 200_000
    rng = np.random.default_rng(2024)
    wait = fifo_queue(np.cumsum(rng.exponential(1 / lam, n)), rng.exponential(1 / mu, n)).wait_s
    theory = (lam / mu) / (mu - lam)  # rho / (mu - lambda)
    se = _batch_means_se(wait)
    assert se < 0.05 * theory
    assert abs(wait.mean() - theory) < 4 * se


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    lam, d, n = 0.5, 1.0, 200_000
    rng = np.random.default_rng(2025)
    wait = fifo_queue(np.cumsum(rng.exponential(1 / lam, n)), d).wait_s
    rho = lam * d
    theory = lam * d**2 / (2 * (1 - rho))  # P-K: lambda E[S^2] / (2 (1 - rho))
    se = _batch_means_se(wait)
    assert se < 0.05 * theory
    assert abs(wait.mean() - theory) < 4 * se


# ----------------------------------------------------------------------------- validation


def test_unsorted_arrivals_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"sorted in non-decreasing order; element 2"):
        fifo_queue([0.0, 2.0, 1.0], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="sorted"):
        fifo_queue_ns(np.array([5, 4]), np.array([1, 1]))
    with pytest.raises(ValueError, match="sorted"):
        batch_queue([1.0, 0.0], max_batch=2, batch_service_s=linear_batch_service(0, 0))


@pytest.mark.parametrize(
    ("arrival", "service", "message"),
    [
        ([0.0, 1.0], [0.1, -0.1], r"service_s must be >= 0 s"),
        ([-1.0, 1.0], [0.1, 0.1], r"arrival_s must be >= 0 s"),
        ([0.0, np.nan], [0.1, 0.1], r"arrival_s must not contain NaN"),
        ([0.0, 1.0], [0.1, np.inf], r"service_s must be finite"),
        ([0.0, 1.0], [0.1, 0.1, 0.1], r"shape of the arrivals \(2,\) .*got \(3,\)"),
        ([[0.0, 1.0]], [[0.1, 0.1]], r"1-D"),
        ([0.0, 4.5e9], [3e8, 3e8], r"exceeds the horizon"),
    ],
)
def test_bad_queue_input_messages(arrival: object, service: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fifo_queue(arrival, service)  # type: ignore[arg-type]


def test_bad_tick_and_group_input() -> None:
    with pytest.raises(TypeError, match="integer nanosecond ticks"):
        fifo_queue_ns(np.array([0.5]), np.array([1]))
    with pytest.raises(ValueError, match="at most MAX_TICKS"):
        fifo_queue_ns(np.array([MAX_TICKS + 1]), np.array([0]))
    with pytest.raises(ValueError, match=r"group must have the shape of the arrivals \(2,\)"):
        fifo_queue_grouped([0], [0.0, 1.0], [0.1, 0.1])


def test_bad_batch_input() -> None:
    svc = linear_batch_service(0.001, 0.0)
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        batch_queue([0.0], max_batch=0, batch_service_s=svc)
    with pytest.raises(TypeError, match="max_batch must be an int"):
        batch_queue([0.0], max_batch=2.0, batch_service_s=svc)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_wait_s must be >= 0"):
        batch_queue([0.0], max_batch=2, batch_service_s=svc, max_wait_s=-1.0)
    with pytest.raises(ValueError, match=r"one service time per batch, shape \(1,\)"):
        batch_queue([0.0], max_batch=2, batch_service_s=lambda sizes: np.zeros(3))
    with pytest.raises(ValueError, match="batch_service_s must be >= 0"):
        batch_queue([0.0], max_batch=2, batch_service_s=lambda sizes: -1.0 * sizes)
    with pytest.raises(ValueError, match="setup_s and per_item_s must be finite"):
        linear_batch_service(-1.0, 0.0)
