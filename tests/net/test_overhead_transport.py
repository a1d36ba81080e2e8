"""A security layer carried by a transport: `combine`, framing per direction, per-byte costs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tinylarge.net.overhead import ProtocolOverhead, combine
from tinylarge.secure.transport import MqttFraming, publish_bytes, tls_record_bytes


@dataclass(frozen=True)
class _Plus:
    """A toy framing: +10 bytes up, +20 down, 1 ns and 2 nJ per stream byte."""

    device_s_per_byte: float = 1e-9
    device_j_per_byte: float = 2e-9

    def stream_bytes(self, message_bytes: np.ndarray, *, down: bool) -> np.ndarray:
        return np.asarray(message_bytes + (20 if down else 10), np.int64)


SECURITY = ProtocolOverhead(
    message_bytes=39,
    device_s_per_byte=1e-7,
    device_j_per_byte=1e-8,
    session_up_bytes=112,
    session_down_bytes=98,
    session_device_j=3e-3,
)
TRANSPORT = ProtocolOverhead(
    framing=_Plus(),
    connection_up_bytes=1200,
    connection_down_bytes=2400,
    connection_round_trips=3,
    connection_device_j=0.02,
)


def test_nothing_stays_nothing() -> None:
    none = ProtocolOverhead()
    assert not none.enabled and not none.transport_enabled and not none.secures
    assert none.wire_bytes([0, 5]).tolist() == [0, 5]
    assert none.device_energy_j(100) == 0.0


def test_combined_charges_both_layers_by_hand() -> None:
    both = combine(SECURITY, TRANSPORT)
    assert both.secures and both.transport_enabled and both.session_enabled
    assert both.sealed_bytes([0, 100]).tolist() == [0, 139]
    assert both.wire_bytes([0, 100]).tolist() == [0, 149]
    assert int(both.wire_bytes(100, down=True)) == 159
    # AEAD on the sealed message, record protection on the stream
    assert float(both.device_time_s(100)) == pytest.approx(139 * 1e-7 + 149 * 1e-9)
    assert float(both.device_energy_j(100, down=True)) == pytest.approx(139 * 1e-8 + 159 * 2e-9)
    assert both.connection_bytes == 3600 and both.connection_round_trips == 3
    assert (both.session_up_bytes, both.session_device_j) == (112, 3e-3)
    # the security layer alone is unchanged by the transport's existence
    assert SECURITY.wire_bytes(100).tolist() == 139


def test_combine_refuses_layers_in_the_wrong_place() -> None:
    with pytest.raises(ValueError, match="security must have no framing"):
        combine(TRANSPORT, TRANSPORT)
    with pytest.raises(ValueError, match="transport must have no message bytes"):
        combine(SECURITY, SECURITY)
    with pytest.raises(ValueError, match="framing must be a Framing"):
        ProtocolOverhead(framing=42)  # type: ignore[arg-type]


def test_mqtt_tls_framing_in_an_overhead() -> None:
    framing = MqttFraming(up_topic_bytes=25, down_topic_bytes=27, qos=1, tls=True)
    both = combine(SECURITY, ProtocolOverhead(framing=framing))
    sealed = np.array([295, 20_000])
    expected = tls_record_bytes(publish_bytes(25, sealed, qos=1))
    np.testing.assert_array_equal(both.wire_bytes(sealed - 39), expected)
    assert int(both.wire_bytes(8, down=True)) == int(tls_record_bytes(publish_bytes(27, 47, qos=1)))
