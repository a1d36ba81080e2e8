"""Latency of one message over the radio link, composed from its parts; vectorized.

A message that arrives at the transmitter at ``t`` waits in its queue, waits for the next slot
boundary, is sent (first transmission), is retransmitted under HARQ after each failure, travels
to the base station, crosses the backhaul and is processed::

    total = queue_wait + slot_wait + airtime + (transmissions - 1) x (airtime + harq_rtt)
            + propagation + backhaul + processing

``harq_rtt`` is the time from the end of one transmission to the start of its retransmission
(decoding, NACK, re-scheduling). Propagation is counted once, for the transmission that gets
through; the earlier ones' are inside ``harq_rtt``. All functions take arrays (or scalars) that
broadcast together, in seconds (metres for distances), and return float64 arrays.

Sources:

- speed of light in vacuum c = 299 792 458 m/s, exact by definition of the metre (BIPM, The
  International System of Units, 9th edition 2019, Table 1);
- LTE FDD HARQ: a retransmission follows its first transmission 8 subframes (8 ms) later, with
  8 HARQ processes (3GPP TS 36.213 clause 8 / 9.1.2 for the uplink: grant or PHICH in subframe
  n, PUSCH in n + 4, PHICH for it in n + 8; TS 36.321 clause 5.4.2);
- NR has no fixed HARQ timing: K1 (PDSCH to HARQ-ACK, TS 38.213 clause 9.2.3) and K2 (PDCCH to
  PUSCH, TS 38.214 clause 6.1.2.1) are configured in slots. **Assumption**: the default
  `DEFAULT_HARQ_RTT_SLOTS` = 8 slots carries the LTE figure over to every numerology (8 ms at
  15 kHz, 0.5 ms at 120 kHz); pass your own ``rtt_slots`` for a specific K1/K2 configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinylarge.net.queues import TICKS_PER_S, ns_to_seconds, seconds_to_ns

FloatArray = NDArray[np.float64]

#: Speed of light in vacuum, m/s (exact; SI Brochure, 9th edition 2019).
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0
#: Default HARQ round trip in slots (LTE FDD's 8 subframes; an assumption for NR, see above).
DEFAULT_HARQ_RTT_SLOTS = 8
#: How close slot_s x 1e9 must be to a whole number of nanoseconds.
_SLOT_NS_ATOL = 1e-3


def _nonnegative(value: ArrayLike, name: str) -> FloatArray:
    x = np.asarray(value, dtype=np.float64)
    if x.size:
        low, high = float(x.min()), float(x.max())
        if np.isnan(low) or np.isnan(high) or np.isinf(high) or low < 0.0:
            raise ValueError(f"{name} must be finite and >= 0, got values in [{low!r}, {high!r}]")
    return x


def _slot_ns(slot_s: ArrayLike) -> NDArray[np.int64]:
    slot = np.asarray(slot_s, dtype=np.float64)
    ticks = seconds_to_ns(slot, name="slot_s")
    if slot.size and (
        int(ticks.min()) < 1
        or not np.allclose(slot * TICKS_PER_S, ticks, rtol=0, atol=_SLOT_NS_ATOL)
    ):
        raise ValueError(
            "slot_s must be a positive whole number of nanoseconds (NR slots are 1 ms / 2**mu: "
            f"1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5 s, ...), got {slot_s!r}"
        )
    return ticks


def slot_alignment_s(arrival_s: ArrayLike, slot_s: ArrayLike) -> FloatArray:
    """Wait from each arrival to the next slot boundary, ``ceil(t / slot) x slot - t``; exact.

    Slot boundaries are at whole multiples of ``slot_s`` from time 0. A message arriving exactly
    on a boundary waits 0 (it is sent in the slot that starts then). Computed in integer ticks
    of 1 ns (`tinylarge.net.queues.seconds_to_ns`) as ``(-t) mod slot``, so it is exact up to
    the rounding of ``arrival_s`` to the nanosecond.

    Parameters
    ----------
    arrival_s : array_like of float, any shape
        Arrival times, s, >= 0.
    slot_s : array_like of float, broadcastable with ``arrival_s``
        Slot duration, s: a positive whole number of ns (every NR numerology's is).

    Returns
    -------
    ndarray of float64, broadcast shape
        Wait in [0, slot_s), s.
    """
    arrival = seconds_to_ns(arrival_s, name="arrival_s")
    slot = _slot_ns(slot_s)
    return ns_to_seconds(np.mod(np.negative(arrival), slot))


def propagation_delay_s(distance_m: ArrayLike) -> FloatArray:
    """One-way propagation delay ``distance / c``, s, at the speed of light in vacuum.

    Parameters
    ----------
    distance_m : array_like of float, any shape
        Path length (3-D distance device to antenna), m, >= 0.

    Returns
    -------
    ndarray of float64, shape of ``distance_m``
        Delay, s (3.34 us per km).
    """
    return _nonnegative(distance_m, "distance_m") / SPEED_OF_LIGHT_M_PER_S


def harq_rtt_s(slot_s: ArrayLike, *, rtt_slots: int = DEFAULT_HARQ_RTT_SLOTS) -> FloatArray:
    """HARQ round-trip time ``rtt_slots x slot_s``, s (default 8 slots: an assumption for NR).

    Parameters
    ----------
    slot_s : array_like of float, any shape
        Slot duration, s, >= 0.
    rtt_slots : int
        Slots from one transmission to its retransmission, >= 0.
    """
    if isinstance(rtt_slots, bool) or not isinstance(rtt_slots, int) or rtt_slots < 0:
        raise ValueError(f"rtt_slots must be an int >= 0, got {rtt_slots!r}")
    return rtt_slots * _nonnegative(slot_s, "slot_s")


@dataclass(frozen=True)
class LatencyBreakdown:
    """The parts of each message's latency, s; all arrays have one broadcast shape.

    The arrays may be read-only broadcast views of the inputs (a scalar ``backhaul_s`` is not
    copied a million times).

    Attributes
    ----------
    queue_wait_s : ndarray of float64
        Waiting in the transmit queue.
    slot_wait_s : ndarray of float64
        Waiting for the next slot boundary.
    airtime_s : ndarray of float64
        The first transmission.
    retransmission_s : ndarray of float64
        HARQ: ``(transmissions - 1) x (airtime + harq_rtt)``.
    propagation_s : ndarray of float64
        Over the air, once.
    backhaul_s : ndarray of float64
        Base station to the server.
    processing_s : ndarray of float64
        Receiver / server processing.
    """

    queue_wait_s: FloatArray
    slot_wait_s: FloatArray
    airtime_s: FloatArray
    retransmission_s: FloatArray
    propagation_s: FloatArray
    backhaul_s: FloatArray
    processing_s: FloatArray

    def as_dict(self) -> dict[str, FloatArray]:
        """The parts by name, in the order they happen (for reports)."""
        return {
            "queue_wait_s": self.queue_wait_s,
            "slot_wait_s": self.slot_wait_s,
            "airtime_s": self.airtime_s,
            "retransmission_s": self.retransmission_s,
            "propagation_s": self.propagation_s,
            "backhaul_s": self.backhaul_s,
            "processing_s": self.processing_s,
        }

    @property
    def total_s(self) -> FloatArray:
        """End-to-end latency, the sum of the parts (in `as_dict` order), s."""
        total = np.zeros(self.airtime_s.shape, dtype=np.float64)
        for part in self.as_dict().values():
            total += part
        return total


def _retries(tx: NDArray[Any]) -> FloatArray:
    """HARQ retransmissions ``transmissions - 1`` as float64, checked to be whole and >= 0."""
    if tx.dtype.kind not in "iuf":
        raise ValueError(f"transmissions must be whole numbers >= 1, got dtype {tx.dtype}")
    retries = tx.astype(np.float64) - 1.0
    if retries.size and not (
        float(retries.min()) >= 0.0
        and np.isfinite(retries.max())
        and np.array_equal(retries, np.floor(retries))
    ):
        raise ValueError(
            "transmissions must be finite whole numbers >= 1 (the first transmission counts), "
            f"got values in [{tx.min()!r}, {tx.max()!r}]"
        )
    return retries


def _broadcast_shape(tx: NDArray[Any], parts: dict[str, FloatArray]) -> tuple[int, ...]:
    """The shape that ``tx`` and every part broadcast to; a clear error if there is none."""
    try:
        return np.broadcast_shapes(tx.shape, *(p.shape for p in parts.values()))
    except ValueError:
        shapes = ", ".join(f"{n}={p.shape}" for n, p in parts.items())
        raise ValueError(
            f"latency parts must broadcast together, got transmissions={tx.shape}, {shapes}"
        ) from None


def message_latency_s(
    *,
    slot_wait_s: ArrayLike,
    airtime_s: ArrayLike,
    transmissions: ArrayLike,
    harq_rtt_s: ArrayLike,
    propagation_s: ArrayLike,
    backhaul_s: ArrayLike = 0.0,
    queue_wait_s: ArrayLike = 0.0,
    processing_s: ArrayLike = 0.0,
) -> LatencyBreakdown:
    """Compose each message's latency from its parts (module docstring), vectorized.

    Parameters
    ----------
    slot_wait_s : array_like of float
        Wait for the slot boundary, s (`slot_alignment_s`).
    airtime_s : array_like of float
        Duration of one transmission, s.
    transmissions : array_like of int
        HARQ transmissions the message used, >= 1 (whole numbers), e.g. from
        `tinylarge.net.link.harq_transmissions`.
    harq_rtt_s : array_like of float
        End of a transmission to the start of its retransmission, s (`harq_rtt_s`).
    propagation_s : array_like of float
        One-way propagation delay, s (`propagation_delay_s`).
    backhaul_s, queue_wait_s, processing_s : array_like of float
        Further delays, s; default 0.

    All inputs are >= 0, finite, and broadcast together.

    Returns
    -------
    LatencyBreakdown
        The parts, broadcast to one shape; ``.total_s`` is the latency.

    Raises
    ------
    ValueError
        On negative, NaN or infinite times, transmissions that are not whole numbers >= 1, or
        shapes that do not broadcast.
    """
    tx = np.asarray(transmissions)
    retries = _retries(tx)
    named = {
        "queue_wait_s": queue_wait_s,
        "slot_wait_s": slot_wait_s,
        "airtime_s": airtime_s,
        "harq_rtt_s": harq_rtt_s,
        "propagation_s": propagation_s,
        "backhaul_s": backhaul_s,
        "processing_s": processing_s,
    }
    parts = {name: _nonnegative(value, name) for name, value in named.items()}
    shape = _broadcast_shape(tx, parts)
    retransmission = retries * (parts["airtime_s"] + parts["harq_rtt_s"])
    b = {name: np.broadcast_to(p, shape) for name, p in parts.items()}
    return LatencyBreakdown(
        queue_wait_s=b["queue_wait_s"],
        slot_wait_s=b["slot_wait_s"],
        airtime_s=b["airtime_s"],
        retransmission_s=np.broadcast_to(retransmission, shape),
        propagation_s=b["propagation_s"],
        backhaul_s=b["backhaul_s"],
        processing_s=b["processing_s"],
    )
