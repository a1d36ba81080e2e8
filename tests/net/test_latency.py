"""Message latency parts: slot alignment, propagation, HARQ, composition and validation."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.net.latency import (
    DEFAULT_HARQ_RTT_SLOTS,
    SPEED_OF_LIGHT_M_PER_S,
    harq_rtt_s,
    message_latency_s,
    propagation_delay_s,
    slot_alignment_s,
)
from tinylarge.net.queues import fifo_queue, seconds_to_ns


def test_slot_alignment_hand_examples() -> None:
    arrival_s = [0.0, 0.0003, 0.001, 0.0015, 0.0029999, 1.0]
    wait = slot_alignment_s(arrival_s, 1e-3)
    assert wait.tolist() == [0.0, 0.0007, 0.0, 0.0005, 1e-7, 0.0]
    # 120 kHz numerology: 0.125 ms slots
    assert slot_alignment_s([0.0001, 0.000125, 0.00013], 1.25e-4).tolist() == [
        2.5e-5,
        0.0,
        1.2e-4,
    ]


def test_slot_alignment_is_exact_in_ticks_and_broadcasts_per_device() -> None:
    rng = np.random.default_rng(3)
    arrival_s = rng.uniform(0, 100, 10_000)
    slot_s = np.where(rng.random(10_000) < 0.5, 1e-3, 6.25e-5)  # two numerologies
    wait_ns = seconds_to_ns(slot_alignment_s(arrival_s, slot_s))
    arrival_ns = seconds_to_ns(arrival_s)
    slot_ns = seconds_to_ns(slot_s)
    assert ((arrival_ns + wait_ns) % slot_ns == 0).all()
    assert ((wait_ns >= 0) & (wait_ns < slot_ns)).all()
    assert slot_alignment_s(np.zeros((2, 3)), 5e-4).shape == (2, 3)


@pytest.mark.parametrize("slot_s", [0.0, 1.5e-9, -1e-3, np.nan])
def test_slot_must_be_a_whole_positive_number_of_ns(slot_s: float) -> None:
    with pytest.raises(ValueError, match="slot_s must"):
        slot_alignment_s([0.1], slot_s)


def test_propagation_delay() -> None:
    assert SPEED_OF_LIGHT_M_PER_S == 299_792_458
    assert propagation_delay_s(299_792.458) == pytest.approx(1e-3, rel=1e-15)
    np.testing.assert_allclose(propagation_delay_s([0.0, 1000.0]), [0.0, 3.3356409519815204e-6])
    with pytest.raises(ValueError, match="distance_m must be finite and >= 0"):
        propagation_delay_s([-1.0])


def test_harq_rtt_default_is_eight_slots() -> None:
    assert DEFAULT_HARQ_RTT_SLOTS == 8
    np.testing.assert_allclose(harq_rtt_s([1e-3, 1.25e-4]), [8e-3, 1e-3])
    assert float(harq_rtt_s(5e-4, rtt_slots=3)) == pytest.approx(1.5e-3)
    with pytest.raises(ValueError, match="rtt_slots must be an int >= 0"):
        harq_rtt_s(1e-3, rtt_slots=-1)


def test_message_latency_hand_example() -> None:
    # 1 ms slots, arrival 0.6 ms after a boundary, 0.5 ms airtime, 3 transmissions,
    # HARQ RTT 8 slots, 3 km to the antenna, 2 ms backhaul, 1 ms queueing, 5 ms processing.
    slot_wait = slot_alignment_s(0.0106, 1e-3)
    breakdown = message_latency_s(
        slot_wait_s=slot_wait,
        airtime_s=0.5e-3,
        transmissions=3,
        harq_rtt_s=harq_rtt_s(1e-3),
        propagation_s=propagation_delay_s(3000.0),
        backhaul_s=2e-3,
        queue_wait_s=1e-3,
        processing_s=5e-3,
    )
    parts = {k: float(v) for k, v in breakdown.as_dict().items()}
    assert parts["slot_wait_s"] == pytest.approx(0.4e-3)
    assert parts["retransmission_s"] == pytest.approx(2 * (0.5e-3 + 8e-3))  # 17 ms
    assert parts["propagation_s"] == pytest.approx(1.00069e-5, rel=1e-5)
    # 1 + 0.4 + 0.5 + 17 + 0.0100069 + 2 + 5 ms
    assert float(breakdown.total_s) == pytest.approx(25.9100069e-3, rel=1e-9)
    assert list(parts) == [
        "queue_wait_s",
        "slot_wait_s",
        "airtime_s",
        "retransmission_s",
        "propagation_s",
        "backhaul_s",
        "processing_s",
    ]


def test_message_latency_vectorized_with_queue_and_broadcasting() -> None:
    arrival_s = np.array([0.0002, 0.0002, 0.0031])
    slot_wait = slot_alignment_s(arrival_s, 1e-3)  # 0.8, 0.8, 0.9 ms
    queue = fifo_queue(arrival_s + slot_wait, 0.5e-3)  # one uplink queue in slot time
    breakdown = message_latency_s(
        slot_wait_s=slot_wait,
        airtime_s=0.5e-3,
        transmissions=np.array([1, 2, 1]),
        harq_rtt_s=4e-3,
        propagation_s=0.0,
        queue_wait_s=queue.wait_s,
    )
    np.testing.assert_allclose(breakdown.total_s, [1.3e-3, 1.8e-3 + 4.5e-3, 1.4e-3])
    assert breakdown.total_s.shape == (3,)
    assert all(v.shape == (3,) for v in breakdown.as_dict().values())
    assert breakdown.total_s.sum() == pytest.approx(
        sum(v.sum() for v in breakdown.as_dict().values())
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"transmissions": 0}, "transmissions must be finite whole numbers >= 1"),
        ({"transmissions": 1.5}, "transmissions must be finite whole numbers >= 1"),
        ({"transmissions": np.inf}, "transmissions must be finite whole numbers >= 1"),
        ({"transmissions": True}, "transmissions must be whole numbers >= 1, got dtype bool"),
        ({"airtime_s": -1e-3}, "airtime_s must be finite and >= 0"),
        ({"backhaul_s": np.nan}, "backhaul_s must be finite and >= 0"),
        ({"airtime_s": np.ones(3), "slot_wait_s": np.ones(2)}, "must broadcast together"),
    ],
)
def test_message_latency_validation(changes: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "slot_wait_s": 0.0,
        "airtime_s": 1e-3,
        "transmissions": 1,
        "harq_rtt_s": 8e-3,
        "propagation_s": 1e-6,
    }
    args.update(changes)
    with pytest.raises(ValueError, match=message):
        message_latency_s(**args)  # type: ignore[arg-type]
