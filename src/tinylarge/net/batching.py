"""The edge's batching server: requests served in batches, FIFO, exactly (1 ns ticks).

See `batch_queue` for the policy; the tick arithmetic is that of `tinylarge.net.queues`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinylarge.net.queues import (
    MAX_TICKS,
    TICKS_PER_S,
    _check_queue_inputs,
    _check_sorted,
    _lindley,
    ns_to_seconds,
    seconds_to_ns,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
#: Returns the service time in seconds, shape (n_batches,), of batches of the given sizes.
BatchServiceFn = Callable[[IntArray], ArrayLike]


@dataclass(frozen=True)
class BatchQueueResult:
    """Outcome of `batch_queue`: per-request arrays of shape (n,), per-batch of shape (m,).

    Attributes
    ----------
    batch_index : ndarray of int64, shape (n,)
        Batch of each request, 0..m-1 in service order.
    start_s, departure_s : ndarray of float64, shape (n,)
        Start and end of the service of the request's batch, s.
    wait_s : ndarray of float64, shape (n,)
        ``start_s - arrival``: batch forming plus queueing, s.
    batch_size : ndarray of int64, shape (m,)
        Requests per batch, 1..max_batch.
    batch_ready_s, batch_start_s, batch_departure_s, batch_service_s : ndarray of float64, (m,)
        When each batch closes, starts service, ends service, and its service time, s.
    """

    batch_index: IntArray
    start_s: FloatArray
    departure_s: FloatArray
    wait_s: FloatArray
    batch_size: IntArray
    batch_ready_s: FloatArray
    batch_start_s: FloatArray
    batch_departure_s: FloatArray
    batch_service_s: FloatArray


def linear_batch_service(setup_s: float, per_item_s: float) -> BatchServiceFn:
    """Return ``sizes -> setup_s + per_item_s * sizes``, a batch service time in s.

    Parameters
    ----------
    setup_s : float
        Fixed cost of running one batch (kernel launch, weight loading), s, >= 0.
    per_item_s : float
        Extra time per request in the batch, s, >= 0.
    """
    if not (np.isfinite(setup_s) and setup_s >= 0 and np.isfinite(per_item_s) and per_item_s >= 0):
        raise ValueError(
            f"setup_s and per_item_s must be finite and >= 0 s, got {setup_s!r}, {per_item_s!r}"
        )

    def service_s(sizes: IntArray) -> FloatArray:
        return setup_s + per_item_s * sizes.astype(np.float64)

    return service_s


def _batch_starts(arrival_ns: IntArray, max_batch: int, max_wait_ns: int | None) -> IntArray:
    """Index of the first request of each batch (the greedy policy of `batch_queue`)."""
    n = arrival_ns.size
    if max_wait_ns is None or n == 0:
        return np.arange(0, n, max_batch, dtype=np.int64)
    # Request i opening a batch makes request nxt[i] open the next one. The batch starts are
    # the orbit 0, nxt[0], nxt[nxt[0]], ...; found by pointer doubling: with jump = nxt^(2^k)
    # and found = {nxt^j(0): j < 2^k}, jump[found] are the next 2^k starts.
    window_end = np.searchsorted(arrival_ns, arrival_ns + max_wait_ns, side="right")
    jump = np.minimum(np.arange(max_batch, n + max_batch, dtype=np.int64), window_end)
    jump = np.append(jump, n)  # n: past the end, maps to itself
    found = np.zeros(1, dtype=np.int64)
    while True:
        more = jump[found]
        more = more[more < n]
        if more.size == 0:
            return found
        found = np.concatenate((found, more))
        jump = jump[jump]


def _checked_inputs(
    arrival_s: ArrayLike, max_batch: int, max_wait_s: float | None
) -> tuple[IntArray, int | None]:
    """Validate `batch_queue`'s inputs; return the arrivals and the longest wait in ns ticks."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, int | np.integer):
        raise TypeError(f"max_batch must be an int, got {type(max_batch).__name__}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    arrival = seconds_to_ns(arrival_s, name="arrival_s")
    if arrival.ndim != 1:
        raise ValueError(f"arrival_s must be a 1-D array, got shape {arrival.shape}")
    _check_sorted(arrival, "arrival_s")
    wait_ns = None
    if max_wait_s is not None:
        wait_ns = int(seconds_to_ns(max_wait_s, name="max_wait_s"))
        if arrival.size and int(arrival[-1]) + wait_ns > MAX_TICKS:
            raise ValueError(
                f"latest arrival + max_wait_s exceeds the horizon MAX_TICKS = 2**62 ns "
                f"({MAX_TICKS / TICKS_PER_S:.4g} s); use max_wait_s=None for no time-out"
            )
    return arrival, wait_ns


def _service_ns(batch_service_s: BatchServiceFn, sizes: IntArray) -> IntArray:
    """Service time of each batch in ns ticks, checked for shape (one per batch)."""
    service_s = np.asarray(batch_service_s(sizes.copy()), dtype=np.float64)
    if service_s.shape != sizes.shape:
        raise ValueError(
            f"batch_service_s must return one service time per batch, shape {sizes.shape}, "
            f"got shape {service_s.shape}"
        )
    return seconds_to_ns(service_s, name="batch_service_s")


def batch_queue(
    arrival_s: ArrayLike,
    *,
    max_batch: int,
    batch_service_s: BatchServiceFn,
    max_wait_s: float | None = None,
) -> BatchQueueResult:
    """A batching server (the edge's large model): requests are served in batches, FIFO.

    Policy, exact in ticks of 1 ns (arrival ``A``, sorted; ``B = max_batch``; ``W = max_wait_s``):

    1. Batches are formed greedily in arrival order (ties in input order). The first request
       not yet in a batch, ``i``, opens a batch.
    2. Without ``W`` the batch takes the next ``B`` requests and closes when its last member
       arrives; the last batch of the trace may be smaller and closes at its last arrival.
    3. With ``W`` the batch closes at ``min(A[i] + W, A[i + B - 1])``: when it is full or when
       its first request has waited ``W``, whichever is first. Its members are the requests
       ``i, i+1, ...`` that arrived by then (arrival <= close), at most ``B``.
    4. Batches are ready when they close and go through one FIFO server in order
       (`fifo_queue_ns`) with service time ``batch_service_s(size)``, rounded to ns. Every
       request starts and departs with its batch.

    Batch forming does not look at the server: a batch that closes while the server is busy
    does not take in later arrivals (a simplification of dynamic batching, which would; that
    variant depends on the server state and has no closed form).

    Parameters
    ----------
    arrival_s : array_like of float, shape (n,)
        Request arrival times, s, >= 0, sorted non-decreasing.
    max_batch : int
        Largest batch, >= 1.
    batch_service_s : callable
        Maps batch sizes (int64 array, shape (m,)) to service times in s (shape (m,), >= 0),
        e.g. `linear_batch_service`. Called once, with all batches.
    max_wait_s : float or None
        Longest time the first request of a batch waits for the batch to fill, s, >= 0; None
        for fixed-size batches.

    Returns
    -------
    BatchQueueResult
        Per-request and per-batch times; O(n) without ``max_wait_s``, O(n log m) with it.

    Raises
    ------
    ValueError
        On invalid arrivals (see `fifo_queue`), ``max_batch < 1``, a negative or too large
        ``max_wait_s``, or service times of the wrong shape, negative or NaN.
    """
    arrival, wait_ns = _checked_inputs(arrival_s, max_batch, max_wait_s)
    starts = _batch_starts(arrival, int(max_batch), wait_ns)
    sizes = np.diff(starts, append=arrival.size)
    last = arrival[starts + sizes - 1]
    if wait_ns is None:
        ready = last
    else:
        ready = np.where(sizes == max_batch, last, arrival[starts] + wait_ns)
    service = _check_queue_inputs(ready, _service_ns(batch_service_s, sizes))
    batches = _lindley(ready, service, reuse=False)
    index = np.repeat(np.arange(starts.size, dtype=np.int64), sizes)
    start_ns = batches.start_ns[index]
    return BatchQueueResult(
        batch_index=index,
        start_s=ns_to_seconds(start_ns),
        departure_s=ns_to_seconds(batches.departure_ns[index]),
        wait_s=ns_to_seconds(start_ns - arrival),
        batch_size=sizes,
        batch_ready_s=ns_to_seconds(ready),
        batch_start_s=ns_to_seconds(batches.start_ns),
        batch_departure_s=ns_to_seconds(batches.departure_ns),
        batch_service_s=ns_to_seconds(service),
    )
