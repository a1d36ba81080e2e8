"""The device's steps of a request: compute, sealing, the bytes on air, opening the reply."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.net.request_timeline import request_timeline

OVERHEAD = ProtocolOverhead(message_bytes=40, device_s_per_byte=1e-6, device_j_per_byte=1e-8)


def test_device_steps_by_hand() -> None:
    steps = request_timeline(
        [True, False], 100, [1000, 500], seconds_per_mac=1e-6, joules_per_mac=1e-9,
        reply_bytes=10, overhead=OVERHEAD,
    )  # fmt: skip
    assert steps.payload_up.tolist() == [100, 0]
    assert steps.wire_up.tolist() == [140, 0]  # header + tag on the offloaded one only
    # inference (1 ms) + sealing 140 B (0.14 ms); the local request only computes
    np.testing.assert_allclose(steps.compute_s, [1e-3 + 140e-6, 0.5e-3])
    np.testing.assert_allclose(steps.seal_j, [140e-8, 0.0])
    np.testing.assert_allclose(steps.compute_j, [1e-6 + 140e-8, 0.5e-6])
    assert steps.reply_wire_bytes == 50
    assert steps.open_s == pytest.approx(50e-6) and steps.open_j == pytest.approx(50e-8)
    np.testing.assert_allclose(steps.ready_s([2.0, 3.0]), [2.0 + 1.14e-3, 3.0 + 0.5e-3])
    assert steps.opened_s(0.01) == pytest.approx(0.01 + 50e-6)


def test_without_a_protocol_layer_nothing_is_added() -> None:
    steps = request_timeline(
        [True], np.array([256]), [0], seconds_per_mac=1e-6, joules_per_mac=1e-9, reply_bytes=8
    )
    assert steps.wire_up.tolist() == [256] and steps.reply_wire_bytes == 8
    assert steps.compute_s.tolist() == [0.0] and steps.open_s == 0.0 and steps.open_j == 0.0
