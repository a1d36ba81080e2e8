"""Per-message outcomes and what a run's messages add up to, in a form that merges across shards
of cells.

`MessageResult` is what `tinylarge.net.uplink.send_messages` returns for every message.
`MessageStats` keeps counts and sums (equal up to float64 rounding when merged) and the sorted
latencies of delivered messages of each part: merging keeps the sorted runs side by side, and a
percentile is found by exact selection across them (`percentile`), so no process ever holds all
latencies in one array. `MessageResult.summary` is ``MessageStats.of(result).summary()``: one
implementation for one process and for shards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The percentiles every latency summary reports (``p50``, ``p95``, ``p99``).
SUMMARY_PERCENTILES: tuple[int, ...] = (50, 95, 99)


def percentile_summary(
    values: npt.ArrayLike, percentiles: Sequence[int] = SUMMARY_PERCENTILES
) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` of ``values`` (NumPy's linear percentile), each
    None when there are no values.

    Parameters
    ----------
    values : array_like of float, shape (n,)
        The sample, e.g. latencies in s; filter out what must not count (NaN, inf) first.
    percentiles : sequence of int
        Which percentiles, in [0, 100]; keys ``f"p{q}"`` in this order.
    """
    arr = np.asarray(values)
    return {f"p{q}": float(np.percentile(arr, q)) if arr.size else None for q in percentiles}


@dataclass(frozen=True)
class MessageResult:
    """Per-message outcome (arrays of shape (n_messages,), in the input order)."""

    device: IntArray
    arrival_s: FloatArray
    snr_db: FloatArray
    outage: BoolArray
    delivered: BoolArray
    share: FloatArray
    rate_bps: FloatArray
    airtime_s: FloatArray
    transmissions: IntArray
    uplink_queue_wait_s: FloatArray
    edge_wait_s: FloatArray
    latency_s: FloatArray  # NaN when not delivered
    energy_j: FloatArray
    bytes_up: IntArray
    bytes_down: IntArray

    def summary(self) -> dict[str, Any]:
        """Delivery, latency percentiles (delivered messages), energy and bytes per message
        (`MessageStats`)."""
        return MessageStats.of(self).summary()


@dataclass(frozen=True)
class MessageStats:
    """Counts, sums and delivered latencies of a set of messages.

    Sums over delivered messages: ``uplink_wait_sum_s``; over messages not in outage (sent):
    ``energy_sum_j`` and ``transmissions_sum``; over all: the byte counts.
    """

    messages: int
    delivered: int
    outage: int
    latency_runs: tuple[FloatArray, ...]  # of delivered messages, each run sorted
    uplink_wait_sum_s: float
    energy_sum_j: float
    transmissions_sum: int
    bytes_up: int
    bytes_down: int

    @classmethod
    def of(cls, result: MessageResult) -> MessageStats:
        """The statistics of one result's messages."""
        ok, sent = result.delivered, ~result.outage
        return cls(
            messages=int(result.device.size),
            delivered=int(ok.sum()),
            outage=int(result.outage.sum()),
            latency_runs=(np.sort(result.latency_s[ok]),),
            uplink_wait_sum_s=float(result.uplink_queue_wait_s[ok].sum()),
            energy_sum_j=float(result.energy_j[sent].sum()),
            transmissions_sum=int(result.transmissions[sent].sum()),
            bytes_up=int(result.bytes_up.sum()),
            bytes_down=int(result.bytes_down.sum()),
        )

    @classmethod
    def merge(cls, parts: Sequence[MessageStats]) -> MessageStats:
        """The statistics of the union of disjoint sets of messages."""
        if not parts:
            raise ValueError("merge needs at least one MessageStats")
        return cls(
            messages=sum(p.messages for p in parts),
            delivered=sum(p.delivered for p in parts),
            outage=sum(p.outage for p in parts),
            latency_runs=tuple(run for p in parts for run in p.latency_runs if run.size),
            uplink_wait_sum_s=float(sum(p.uplink_wait_sum_s for p in parts)),
            energy_sum_j=float(sum(p.energy_sum_j for p in parts)),
            transmissions_sum=sum(p.transmissions_sum for p in parts),
            bytes_up=sum(p.bytes_up for p in parts),
            bytes_down=sum(p.bytes_down for p in parts),
        )

    def compact(self) -> MessageStats:
        """The same statistics with the latency runs merged into one sorted run (a shard does
        this before returning, so the driver selects over one run per shard)."""
        if len(self.latency_runs) <= 1:
            return self
        merged = np.sort(np.concatenate(self.latency_runs))
        return dataclasses.replace(self, latency_runs=(merged,))

    @property
    def latency_count(self) -> int:
        """Number of delivered messages."""
        return sum(run.size for run in self.latency_runs)

    def summary(self) -> dict[str, Any]:
        """Delivery, latency percentiles (delivered messages), energy and bytes per message."""
        n, sent, runs = self.messages, self.messages - self.outage, self.latency_runs
        delivered = self.latency_count
        # exact selection across the sorted runs (no process holds all latencies in one array)
        pct = {f"p{q}": percentile(runs, q) if delivered else None for q in SUMMARY_PERCENTILES}
        total = sum(float(run.sum()) for run in runs)
        return {
            "messages": n,
            "delivered_fraction": self.delivered / n if n else 0.0,
            "outage_fraction": self.outage / n if n else 0.0,
            "latency_s": {**pct, "mean": total / delivered if delivered else None},
            "uplink_queue_wait_s_mean": self.uplink_wait_sum_s / delivered if delivered else None,
            "energy_j_per_message": self.energy_sum_j / sent if sent else None,
            "mean_transmissions": self.transmissions_sum / sent if sent else None,
            "bytes_up_per_message": self.bytes_up / n if n else 0.0,
            "bytes_down_per_message": self.bytes_down / n if n else 0.0,
        }


#: Bit patterns of +0.0 and +inf: non-negative float64 values order as these integers do.
_ZERO_BITS, _INF_BITS = 0, 0x7FF0000000000000


def kth_smallest(runs: Sequence[FloatArray], k: int) -> float:
    """The k-th smallest value (0-based) of the union of sorted runs of non-negative floats.

    Bisection over float64 bit patterns (which order like the values for x >= 0): at most 63
    steps, each one binary search per run; nothing is copied or merged.
    """
    n = sum(run.size for run in runs)
    if not 0 <= k < n:
        raise ValueError(f"k must be in [0, {n}), got {k}")
    if any(run.size and not run[0] >= 0 for run in runs):
        raise ValueError("kth_smallest needs non-negative values (latencies)")
    lo, hi = _ZERO_BITS, _INF_BITS
    while lo < hi:
        mid = (lo + hi) // 2
        x = np.int64(mid).view(np.float64)
        if sum(int(np.searchsorted(run, x, side="right")) for run in runs) > k:
            hi = mid
        else:
            lo = mid + 1
    return float(np.int64(lo).view(np.float64))


def percentile(runs: Sequence[FloatArray], q: float) -> float:
    """The q-th percentile (0-100) of the union of sorted runs, linearly interpolated between
    order statistics (Hyndman & Fan type 7, NumPy's default ``method="linear"``)."""
    n = sum(run.size for run in runs)
    h = (n - 1) * (q / 100.0)  # the virtual index, rounded as NumPy rounds it
    below = int(np.floor(h))
    low = kth_smallest(runs, below)
    high = kth_smallest(runs, min(below + 1, n - 1))
    t, gap = h - below, high - low
    # NumPy's lerp: from the nearer end, so that t = 1 gives high exactly
    return high - gap * (1.0 - t) if t >= 0.5 else low + gap * t
