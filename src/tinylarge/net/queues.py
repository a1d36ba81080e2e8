"""Exact FIFO queues in vectorized form: single server and many independent queues (the
batching server of the edge is in `tinylarge.net.batching`).

A FIFO single-server queue obeys the Lindley recursion ``D_n = max(A_n, D_{n-1}) + S_n``
(arrival ``A``, service ``S``, departure ``D``, ``D_0 = -inf``). Unrolled, it has the closed form

    D_n = C_n + max_{k <= n} (A_k - C_{k-1}),    C_n = S_1 + ... + S_n,  C_0 = 0,

which is one cumulative sum and one running maximum (``np.maximum.accumulate``) - no Python
loop over customers. Floating-point addition is not associative, so in seconds the closed form
and the recursion would round differently. Everything here is therefore computed in integer
**ticks of 1 ns** (int64): seconds are rounded to the nearest nanosecond (ties to even) on the
way in and divided by 1e9 on the way out. In ticks the closed form equals the recursion exactly.

Limits of the tick arithmetic:

- resolution 1 ns (`TICK_S`);
- horizon `MAX_TICKS` = 2**62 ns (about 146 years): every arrival, and the latest arrival plus
  the sum of all service times, must stay below it, so no intermediate overflows int64;
- float seconds carry whole nanoseconds exactly only below 2**53 ns (about 104 days); later
  times still work, at the float64 resolution of the input.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Length of one tick, s.
TICK_S = 1e-9
#: Ticks per second.
TICKS_PER_S = 1_000_000_000
#: Largest time (and latest arrival + total service) the queues accept, ns (about 146 years).
MAX_TICKS = 2**62
#: Offsets of the grouped running maximum are kept below this per chunk (see `_segment_runmax`).
_OFFSET_BUDGET = 2**61
#: Elements per block of the conversions (bounds their temporaries to 512 KiB).
_BLOCK = 1 << 16


@dataclass(frozen=True)
class QueueResult:
    """Per-customer times of a FIFO queue, s; every array has the shape of the arrivals, (n,).

    Attributes
    ----------
    start_s : ndarray of float64, shape (n,)
        When service starts, ``max(arrival, previous departure)``.
    departure_s : ndarray of float64, shape (n,)
        When service ends, ``start_s + service``.
    wait_s : ndarray of float64, shape (n,)
        Time in the queue before service, ``start_s - arrival``; never negative.
    """

    start_s: FloatArray
    departure_s: FloatArray
    wait_s: FloatArray


@dataclass(frozen=True)
class QueueResultNs:
    """`QueueResult` in integer ticks of 1 ns: ``start_ns``, ``departure_ns``, ``wait_ns``."""

    start_ns: IntArray
    departure_ns: IntArray
    wait_ns: IntArray

    def to_seconds(self) -> QueueResult:
        """Return the same times in seconds (``ticks / 1e9``, float64)."""
        return QueueResult(
            start_s=ns_to_seconds(self.start_ns),
            departure_s=ns_to_seconds(self.departure_ns),
            wait_s=ns_to_seconds(self.wait_ns),
        )

    def _into_seconds(self) -> QueueResult:
        """`to_seconds` in the memory of these arrays (which must not be used afterwards)."""
        return QueueResult(
            start_s=_ns_to_seconds_inplace(self.start_ns),
            departure_s=_ns_to_seconds_inplace(self.departure_ns),
            wait_s=_ns_to_seconds_inplace(self.wait_ns),
        )


def seconds_to_ns(time_s: ArrayLike, *, name: str = "time_s") -> IntArray:
    """Round times in seconds to integer ticks of 1 ns (nearest, ties to even).

    Parameters
    ----------
    time_s : array_like of float, any shape
        Times or durations, s; finite, >= 0 and at most ``MAX_TICKS`` ns.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    ndarray of int64, shape of ``time_s``
        The times in ns.
    """
    x = np.asarray(time_s, dtype=np.float64)
    if x.size:
        low, high = float(x.min()), float(x.max())
        if np.isnan(low) or np.isnan(high):
            raise ValueError(f"{name} must not contain NaN")
        if low < 0.0:
            raise ValueError(f"{name} must be >= 0 s, got a minimum of {low!r} s")
        if high > MAX_TICKS / TICKS_PER_S:
            raise ValueError(
                f"{name} must be finite and at most {MAX_TICKS / TICKS_PER_S:.4g} s "
                f"(MAX_TICKS ns), got a maximum of {high!r} s"
            )
    ticks = np.empty(x.shape, dtype=np.int64)
    flat_x, flat_ticks = x.reshape(-1), ticks.reshape(-1)
    for i in range(0, flat_x.size, _BLOCK):  # blocks: no full-size float temporary
        block = flat_x[i : i + _BLOCK] * float(TICKS_PER_S)
        flat_ticks[i : i + _BLOCK] = np.rint(block, out=block)
    return ticks


def ns_to_seconds(time_ns: ArrayLike) -> FloatArray:
    """Convert integer ticks of 1 ns to float64 seconds (``ticks / 1e9``, correctly rounded)."""
    return np.divide(np.asarray(time_ns, dtype=np.int64), float(TICKS_PER_S))


def _ns_to_seconds_inplace(ticks: IntArray) -> FloatArray:
    """`ns_to_seconds` that reuses the memory of ``ticks`` (1-D, contiguous, then invalid)."""
    seconds = ticks.view(np.float64)
    for i in range(0, ticks.size, _BLOCK):
        seconds[i : i + _BLOCK] = ticks[i : i + _BLOCK] / float(TICKS_PER_S)
    return seconds


def _ticks(values: ArrayLike, name: str) -> IntArray:
    """Validate integer ticks: integer dtype, 0 <= value <= MAX_TICKS; return them as int64."""
    x = np.asarray(values)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer nanosecond ticks, got dtype {x.dtype}")
    if x.size:
        low, high = int(x.min()), int(x.max())
        if low < 0:
            raise ValueError(f"{name} must be >= 0 ns, got a minimum of {low} ns")
        if high > MAX_TICKS:
            raise ValueError(f"{name} must be at most MAX_TICKS = 2**62 ns, got {high} ns")
    return x.astype(np.int64, copy=False)


def _check_queue_inputs(arrival_ns: IntArray, service_ns: IntArray) -> IntArray:
    """Check shapes and the horizon; return the service ticks broadcast to the arrivals."""
    if arrival_ns.ndim != 1:
        raise ValueError(f"arrivals must be a 1-D array, got shape {arrival_ns.shape}")
    if service_ns.ndim == 0:
        service_ns = np.full(arrival_ns.shape, service_ns, dtype=np.int64)
    elif service_ns.shape != arrival_ns.shape:
        raise ValueError(
            f"service times must have the shape of the arrivals {arrival_ns.shape} (or be a "
            f"scalar), got {service_ns.shape}"
        )
    if arrival_ns.size:
        # Float sum: exact enough to guard int64 (the bound leaves a factor 2 of headroom).
        end = float(arrival_ns.max()) + float(np.sum(service_ns, dtype=np.float64))
        if end > MAX_TICKS:
            raise ValueError(
                f"latest arrival + total service time = {end / TICKS_PER_S:.4g} s exceeds the "
                f"horizon MAX_TICKS = 2**62 ns ({MAX_TICKS / TICKS_PER_S:.4g} s)"
            )
    return service_ns


def _check_sorted(arrival_ns: IntArray, name: str) -> None:
    decrease = np.flatnonzero(arrival_ns[1:] < arrival_ns[:-1])
    if decrease.size:
        i = int(decrease[0]) + 1
        raise ValueError(
            f"{name} must be sorted in non-decreasing order; element {i} "
            f"({arrival_ns[i] / TICKS_PER_S!r} s) comes before element {i - 1} "
            f"({arrival_ns[i - 1] / TICKS_PER_S!r} s). Sort the customers first "
            "(order = np.argsort(arrival, kind='stable')) or use fifo_queue_grouped, which sorts."
        )


def _lindley(arrival_ns: IntArray, service_ns: IntArray, *, reuse: bool) -> QueueResultNs:
    """Closed-form Lindley recursion on validated, sorted ticks.

    Allocates two int64 arrays, three unless ``reuse``, which writes the waits over
    ``arrival_ns``.
    """
    cumulative = np.cumsum(service_ns)  # C_n
    departure = np.subtract(cumulative, service_ns)  # C_{n-1}
    np.subtract(arrival_ns, departure, out=departure)  # A_n - C_{n-1}
    np.maximum.accumulate(departure, out=departure)
    departure += cumulative  # D_n
    start = np.subtract(departure, service_ns, out=cumulative)
    wait = np.subtract(start, arrival_ns, out=arrival_ns if reuse else None)
    return QueueResultNs(start_ns=start, departure_ns=departure, wait_ns=wait)


def fifo_queue_ns(arrival_ns: ArrayLike, service_ns: ArrayLike) -> QueueResultNs:
    """One FIFO single-server queue in integer ticks of 1 ns, exact.

    Equals the recursion ``D_n = max(A_n, D_{n-1}) + S_n`` element for element; computed in
    closed form (module docstring) in O(n) time.

    Parameters
    ----------
    arrival_ns : array_like of int, shape (n,)
        Arrival times, ns, sorted non-decreasing; customers are served in this order (ties in
        input order). 0 <= arrival <= ``MAX_TICKS``.
    service_ns : array_like of int, shape (n,) or scalar
        Service times, ns, >= 0.

    Returns
    -------
    QueueResultNs
        ``start_ns``, ``departure_ns``, ``wait_ns``, int64 arrays of shape (n,).

    Raises
    ------
    TypeError
        If the ticks are not integers.
    ValueError
        If the arrivals are not 1-D or not sorted, the shapes differ, a value is negative, or
        the latest arrival plus the total service exceeds ``MAX_TICKS``.
    """
    arrival = _ticks(arrival_ns, "arrival_ns")
    service = _check_queue_inputs(arrival, _ticks(service_ns, "service_ns"))
    _check_sorted(arrival, "arrival_ns")
    return _lindley(arrival, service, reuse=False)


def fifo_queue(arrival_s: ArrayLike, service_s: ArrayLike) -> QueueResult:
    """One FIFO single-server queue, exact in ticks of 1 ns (see `fifo_queue_ns`).

    Parameters
    ----------
    arrival_s : array_like of float, shape (n,)
        Arrival times, s, >= 0, sorted non-decreasing (after rounding to ns); served in this
        order, ties in input order. Unsorted arrivals raise ``ValueError``: sort them first or
        use `fifo_queue_grouped` with a single group, which sorts and returns input order.
    service_s : array_like of float, shape (n,) or scalar
        Service times, s, >= 0.

    Returns
    -------
    QueueResult
        ``start_s``, ``departure_s``, ``wait_s``, float64 arrays of shape (n,): the exact tick
        results divided by 1e9.

    Raises
    ------
    ValueError
        On NaN, negative or unsorted input, mismatched shapes, or a horizon over ``MAX_TICKS``.
    """
    arrival = seconds_to_ns(arrival_s, name="arrival_s")
    service = _check_queue_inputs(arrival, seconds_to_ns(service_s, name="service_s"))
    _check_sorted(arrival, "arrival_s")
    return _lindley(arrival, service, reuse=True)._into_seconds()


def _fill_segments(per_segment: IntArray, starts: IntArray, out: IntArray) -> IntArray:
    """Write ``per_segment[j]`` over segment ``j`` of ``out`` (like ``np.repeat``, in place).

    A cumulative sum of the steps between segments; int64 wrap-around in the steps cancels
    (the arithmetic is modulo 2**64 and every result fits).
    """
    out.fill(0)
    out[starts] = np.diff(per_segment, prepend=np.int64(0))
    return np.cumsum(out, out=out)


def _segment_runmax(values: IntArray, starts: IntArray, work: IntArray) -> IntArray:
    """Running maximum of ``values`` restarted at each of ``starts``; in place, returns values.

    ``starts`` are the sorted first indices of the segments (``starts[0] == 0``); ``work`` is
    scratch space of the shape of ``values``. Each segment is shifted to start at 0 and clipped
    below at 0, which leaves its running maximum unchanged, then lifted by an offset above
    every earlier segment's maximum, so that one ``np.maximum.accumulate`` never carries a value
    across a boundary. The offsets add up the segments' spreads; the segments are processed in
    chunks whose offsets stay below ``_OFFSET_BUDGET`` (one chunk unless the spreads add up to
    more than 2**61 ns). Requires ``values[k] - values[start]`` in [-2**62, 2**62] in a segment.
    """
    first = values[starts]
    values -= _fill_segments(first, starts, work)
    np.maximum(values, 0, out=values)
    spread = np.maximum.reduceat(values, starts)  # per segment, in [0, 2**62]
    before = np.cumsum(spread)  # may wrap; only differences within a chunk are used
    before -= spread
    approx = np.cumsum(spread, dtype=np.float64)
    approx -= spread
    chunk_first = np.flatnonzero(np.diff(approx // _OFFSET_BUDGET, prepend=-1.0))
    offset = before - np.repeat(before[chunk_first], np.diff(chunk_first, append=starts.size))
    values += _fill_segments(offset, starts, work)
    bounds = np.append(starts[chunk_first], values.size)
    for begin, end in itertools.pairwise(bounds):
        np.maximum.accumulate(values[begin:end], out=values[begin:end])
    values += _fill_segments(first - offset, starts, work)
    return values


def _grouped(
    labels: NDArray[Any], arrival: IntArray, service: IntArray, reuse: bool
) -> QueueResultNs:
    """Grouped closed form on validated ticks (`fifo_queue_grouped`); ``reuse`` as `_lindley`."""
    if arrival.size == 0:
        empty = [np.zeros(0, dtype=np.int64) for _ in range(3)]
        return QueueResultNs(start_ns=empty[0], departure_ns=empty[1], wait_ns=empty[2])
    order = np.lexsort((arrival, labels))  # by group, then arrival, then input position
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    del sorted_labels
    # D_n = C_n + max over the group's k <= n of (A_k - C_{k-1}). The cumulative sum C may run
    # across groups (its value at the group's start cancels); only the maximum must restart.
    x = arrival[order]
    cumulative = service[order]
    x += cumulative  # A_k + S_k
    np.cumsum(cumulative, out=cumulative)  # C_k
    x -= cumulative  # A_k - C_{k-1}
    departure = np.empty_like(x)
    x = _segment_runmax(x, starts, work=departure)
    x += cumulative
    del cumulative
    departure[order] = x
    del x, order
    start = np.subtract(departure, service, out=service if reuse else None)
    wait = np.subtract(start, arrival, out=arrival if reuse else None)
    return QueueResultNs(start_ns=start, departure_ns=departure, wait_ns=wait)


def _group_labels(group: ArrayLike, shape: tuple[int, ...]) -> NDArray[Any]:
    labels = np.asarray(group)
    if labels.shape != shape:
        raise ValueError(f"group must have the shape of the arrivals {shape}, got {labels.shape}")
    return labels


def fifo_queue_grouped_ns(
    group: ArrayLike, arrival_ns: ArrayLike, service_ns: ArrayLike
) -> QueueResultNs:
    """Many independent FIFO queues in integer ticks of 1 ns, exact (see `fifo_queue_grouped`)."""
    arrival = _ticks(arrival_ns, "arrival_ns")
    service = _check_queue_inputs(arrival, _ticks(service_ns, "service_ns"))
    return _grouped(_group_labels(group, arrival.shape), arrival, service, reuse=False)


def fifo_queue_grouped(group: ArrayLike, arrival_s: ArrayLike, service_s: ArrayLike) -> QueueResult:
    """Many independent FIFO single-server queues at once (one per cell, device, ...), exact.

    Customer ``i`` joins queue ``group[i]``. Within each queue customers are served in order of
    arrival (ticks of 1 ns), ties in input order; each queue is exactly `fifo_queue` run on its
    own customers. Arrivals need not be sorted. Cost: one ``np.lexsort`` (O(n log n)) plus O(n).

    Parameters
    ----------
    group : array_like, shape (n,)
        Queue label of each customer (integers such as a cell or device index; any sortable
        dtype works).
    arrival_s : array_like of float, shape (n,)
        Arrival times, s, >= 0, in any order.
    service_s : array_like of float, shape (n,) or scalar
        Service times, s, >= 0.

    Returns
    -------
    QueueResult
        ``start_s``, ``departure_s``, ``wait_s`` of shape (n,), in the input order.

    Raises
    ------
    ValueError
        On NaN or negative input, mismatched shapes, or when the latest arrival plus the total
        service time of *all* queues exceeds ``MAX_TICKS`` ns.
    """
    arrival = seconds_to_ns(arrival_s, name="arrival_s")
    service = _check_queue_inputs(arrival, seconds_to_ns(service_s, name="service_s"))
    labels = _group_labels(group, arrival.shape)
    return _grouped(labels, arrival, service, reuse=True)._into_seconds()
