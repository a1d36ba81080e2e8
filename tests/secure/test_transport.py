"""The transport's costs: MQTT 5 framing and TLS 1.3 records against hand-computed RFC values
and against OpenSSL, the measured handshake against an estimate from the certificates."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tinylarge.config.deploy_config import DeployConfig
from tinylarge.deploy.protocol import Topics, publish_packet_bytes
from tinylarge.secure.transport import (
    CONNACK_BYTES,
    MqttFraming,
    connect_bytes,
    device_topic_bytes,
    mqtt_tls_bytes,
    publish_bytes,
    stream_bytes,
    throwaway_pki,
    tls_handshake_bytes,
    tls_record_bytes,
    transport_overhead,
)
from tinylarge.tiny.mcu import McuProfile, mcu_profile


def _mcu() -> McuProfile:
    return mcu_profile("stm32l4r5")


def test_publish_packet_bytes_by_hand() -> None:
    # MQTT 5.0 3.3: 1 type byte, remaining-length varint, topic 2 + len, packet id 2, props 1
    assert int(publish_bytes(3, 100, qos=1)) == 1 + 1 + (2 + 3 + 2 + 1 + 100)
    assert int(publish_bytes(3, 100, qos=0)) == 1 + 1 + (2 + 3 + 1 + 100)
    assert int(publish_bytes(1, 200, qos=1)) == 1 + 2 + (2 + 1 + 2 + 1 + 200)  # 206: 2-byte varint
    assert int(publish_bytes(1, 20_000, qos=1)) == 1 + 3 + (2 + 1 + 2 + 1 + 20_000)
    assert publish_packet_bytes("a/b", 100) == int(publish_bytes(3, 100, qos=1))
    with pytest.raises(ValueError, match="qos must be 0, 1 or 2"):
        publish_bytes(3, 1, qos=3)


def test_tls_records_by_hand_and_against_openssl(tmp_path: Path) -> None:
    # RFC 8446 5.2: 5-byte header + 1 content type + 16-byte tag per record of <= 2^14 bytes
    assert tls_record_bytes([0, 1, 100, 16_384, 16_385, 40_000]).tolist() == [
        0, 23, 122, 16_406, 16_385 + 44, 40_000 + 66,
    ]  # fmt: skip
    assert int(mqtt_tls_bytes(4)) == 26  # a PUBACK in its own record
    throwaway_pki(tmp_path, "device-00001", "127.0.0.1")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client_ctx.load_verify_locations(tmp_path / "ca.crt")
    server_ctx.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(6):
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert client.version() == "TLSv1.3"
    for size in (1, 300, 16_384, 16_385, 50_000):
        client.write(bytes(size))
        assert len(c_out.read()) == int(tls_record_bytes(size)), size


def test_framing_per_direction_and_transport() -> None:
    up, down, client = device_topic_bytes("t1", "device-00042")
    topics = Topics("t1")
    assert (up, down) == (len(topics.up("device-00042")), len(topics.down("device-00042")))
    assert client == len("t1-device-00042")
    framing = MqttFraming(up, down, qos=1, tls=True)
    sizes = np.array([295, 47, 20_000])
    np.testing.assert_array_equal(
        framing.stream_bytes(sizes, down=False),
        [tls_record_bytes(publish_packet_bytes(topics.up("device-00042"), int(n))) for n in sizes],
    )
    np.testing.assert_array_equal(
        framing.stream_bytes(sizes, down=True),
        [
            tls_record_bytes(publish_packet_bytes(topics.down("device-00042"), int(n)))
            for n in sizes
        ],
    )
    assert int(stream_bytes("mqtt", 300)) == 300 and int(stream_bytes("mqtt-tls", 300)) == 322


def test_handshake_measurement_matches_an_estimate_from_the_certificates(tmp_path: Path) -> None:
    der = throwaway_pki(tmp_path, "d" * 12, "127.0.0.1")
    up, down = tls_handshake_bytes(12)
    assert tls_handshake_bytes(12) == (up, down)  # cached per process
    record, ccs = 22, 6
    # device: ClientHello (P-256 key share: ~240 B), ChangeCipherSpec, then one record with
    # Certificate (leaf + CA: OpenSSL completes the chain), CertificateVerify (ECDSA <= 72 B)
    # and Finished (SHA-384: 48 B) (RFC 8446 4.4.2-4.4.4)
    certificate = 4 + 1 + 3 + (3 + der["device"] + 2) + (3 + der["ca"] + 2)
    up_estimate = 240 + ccs + record + certificate + (4 + 4 + 71) + (4 + 48)
    # broker: ServerHello (~160 B) + CCS, then EncryptedExtensions, CertificateRequest, its
    # Certificate (leaf + CA), CertificateVerify, Finished, then two session tickets (each
    # carries the session, with the device's certificate chain)
    server_certificate = 4 + 1 + 3 + (3 + der["server"] + 2) + (3 + der["ca"] + 2)
    down_estimate = 160 + ccs + record + 6 + 40 + server_certificate + 79 + 52
    tickets = 2 * (record + 4 + 13 + der["device"] + der["ca"])
    assert up == pytest.approx(up_estimate, rel=0.1)
    assert down == pytest.approx(down_estimate + tickets, rel=0.15)
    with pytest.raises(ValueError, match="device_id_bytes must be >= 1"):
        tls_handshake_bytes(0)


def test_plain_mqtt_charges_framing_and_connect_only() -> None:
    plain = transport_overhead("mqtt", topic_bytes=30, qos=1, mcu=_mcu(), client_id_bytes=33)
    tls = transport_overhead("mqtt-tls", topic_bytes=30, qos=1, mcu=_mcu(), client_id_bytes=33)
    assert connect_bytes(33) == 53  # the CONNECT paho sends (checked on a socket)
    assert (plain.connection_up_bytes, plain.connection_down_bytes) == (53, CONNACK_BYTES)
    assert plain.connection_round_trips == 2 and plain.connection_device_j == 0.0
    assert int(plain.wire_bytes(300)) == int(publish_bytes(30, 300, qos=1))
    assert int(tls.wire_bytes(300)) == int(publish_bytes(30, 300, qos=1)) + 22
    hs_up, hs_down = tls_handshake_bytes(12)
    assert tls.connection_up_bytes == hs_up + 53 + 22
    assert tls.connection_down_bytes == hs_down + CONNACK_BYTES + 22
    assert tls.connection_round_trips == 3 and tls.connection_device_j > 0
    assert float(tls.device_energy_j(300)) > 0 == float(plain.device_energy_j(300))
    assert int(tls.wire_bytes(0)) == 0  # no message, nothing framed


def test_bad_transport_names_the_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"transport must be one of \('mqtt-tls', 'mqtt'\)"):
        transport_overhead("tls", topic_bytes=3, qos=1, mcu=_mcu())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="mqtt-tls"):
        DeployConfig(transport="quic")  # type: ignore[arg-type]
