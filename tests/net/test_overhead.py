"""A protocol layer's overhead: bytes on air per message and device crypto per byte."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.net.overhead import ProtocolOverhead


def test_messages_grow_by_the_overhead_and_empty_payloads_send_nothing() -> None:
    ov = ProtocolOverhead(message_bytes=39, device_j_per_byte=2e-9, device_s_per_byte=1e-7)
    assert ov.wire_bytes([0, 1, 256]).tolist() == [0, 40, 295]
    np.testing.assert_allclose(ov.device_energy_j([0, 256]), [0.0, 295 * 2e-9])
    np.testing.assert_allclose(ov.device_time_s(256), 295e-7)
    assert ov.enabled and not ProtocolOverhead().enabled
    assert ProtocolOverhead().wire_bytes([5, 0]).tolist() == [5, 0]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("message_bytes", -1, "message_bytes must be a finite number >= 0"),
        ("message_bytes", 1.5, "message_bytes must be an integer"),
        ("device_j_per_byte", float("nan"), "device_j_per_byte must be a finite number"),
        ("session_up_bytes", True, "session_up_bytes must be a finite number"),
    ],
)
def test_bad_overheads_are_named(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProtocolOverhead(**{field: value})  # type: ignore[arg-type]


def test_negative_payloads_are_refused() -> None:
    with pytest.raises(ValueError, match="payload_bytes must be >= 0"):
        ProtocolOverhead(message_bytes=1).wire_bytes([-1])
