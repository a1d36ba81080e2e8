"""What the deployment's message transport costs: MQTT 5 over TLS 1.3 (``mqtt-tls``) or plain
MQTT 5 (``mqtt``), per message and per connection.

Per message (device -> broker uplink, broker -> device downlink):

- the MQTT 5 PUBLISH packet around the message (OASIS MQTT Version 5.0, section 3.3): fixed
  header (1 byte + the remaining length as a variable byte integer, section 1.5.5), topic name
  (2 + its UTF-8 bytes), packet identifier (2, QoS > 0 only), property length (1: no
  properties), payload (`publish_packet_bytes`);
- with TLS, the TLS 1.3 records around that packet (RFC 8446 section 5.2): every record has a
  5-byte header, the inner content type (1) and the AEAD's 16-byte tag; a record holds at most
  2^14 plaintext bytes (section 5.1), so a packet over 16 KiB takes several records. The
  clients write each MQTT packet with one write (paho-mqtt), which OpenSSL sends as
  ceil(packet / 2^14) records without padding (`tls_record_bytes`; the tests check it against
  OpenSSL through `ssl.MemoryBIO`).

QoS 1 acknowledgements (PUBACK: 4 bytes in MQTT 5 with reason 0, section 3.4, 26 in a TLS
record) are not charged: the deployment's accounting (``mqtt_bytes_*``) counts the PUBLISH
packets only, and this module stays consistent with it.

Per connection (once per device): the TLS 1.3 mutual-authentication handshake, measured here
(`tls_handshake_bytes`: a real handshake between Python's ``ssl`` contexts over
``ssl.MemoryBIO`` with P-256 certificates of the shape the project CA issues, ECDHE on P-256;
the server's post-handshake session tickets included), and the MQTT 5 CONNECT (section 3.1:
protocol name, level, flags, keep alive, the Session Expiry Interval property, client id) and
CONNACK (``CONNACK_BYTES``, measured from Mosquitto 2.0.11: flags, reason code and two
properties). TCP's own SYN / SYN-ACK / ACK segments and IP headers are not counted (no other
byte figure of the simulator counts them). Round trips: 1 (TCP) + 1 (TLS 1.3 full handshake)
+ 1 (CONNECT -> CONNACK); plain MQTT: 2.

The device's work in the handshake (TLS only): one P-256 key generation and one ECDH shared
secret (ECDHE), one ECDSA signature (its CertificateVerify) and two ECDSA verifications (the
broker's certificate by the CA, the broker's CertificateVerify). Figures from micro-ecc's
README (secp256r1, all optimizations, LPC1114 Cortex-M0 at 48 MHz): ECDH 385.8 ms, ECDSA
verify 558.5 ms, converted to cycles; key generation and signing are one scalar multiplication
each, charged as one ECDH. A Cortex-M0 with its 32-cycle multiplier is slower than an M4, so on
an M4 these are upper bounds (as in `tinylarge.secure.costs`, per-core cycles are applied to
whichever MCU is the target). Record protection: the negotiated suite is
TLS_AES_256_GCM_SHA384 (measured), charged at `tinylarge.secure.costs.AEAD_CYCLES_PER_BYTE`'s
AES-GCM rate per byte of the stream.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.secure.costs import AEAD_CYCLES_PER_BYTE
from tinylarge.tiny.mcu import McuProfile

IntArray = npt.NDArray[np.int64]
Transport = Literal["mqtt-tls", "mqtt"]
TRANSPORTS: tuple[str, ...] = get_args(Transport)

#: TLS 1.3 record header: type, legacy version, length (RFC 8446 section 5.1).
TLS_RECORD_HEADER_BYTES = 5
#: Inner content type byte of a protected record (RFC 8446 section 5.2).
TLS_CONTENT_TYPE_BYTES = 1
#: AEAD tag of every TLS 1.3 cipher suite but AES-CCM-8 (RFC 8446 section 5.2, B.4).
TLS_TAG_BYTES = 16
#: Bytes a protected TLS 1.3 record adds to its plaintext.
TLS_RECORD_OVERHEAD_BYTES = TLS_RECORD_HEADER_BYTES + TLS_CONTENT_TYPE_BYTES + TLS_TAG_BYTES
#: Largest plaintext of one record, bytes (RFC 8446 section 5.1: 2^14).
TLS_MAX_PLAINTEXT = 2**14
#: MQTT 5 CONNACK as Mosquitto 2.0.11 sends it: fixed header 2, flags 1, reason 1, property
#: length 1, Topic Alias Maximum (3) and Receive Maximum (3) (measured on a raw socket).
CONNACK_BYTES = 11
#: MQTT 5 CONNECT's bytes besides the client id: protocol name (6), level (1), flags (1),
#: keep alive (2), property length (1), Session Expiry Interval (5), client id length (2)
#: (OASIS MQTT 5.0 section 3.1.2-3.1.3).
_CONNECT_FIXED_BYTES = 6 + 1 + 1 + 2 + 1 + 5 + 2

_MICRO_ECC_CLOCK_HZ = 48e6
#: P-256 ECDH (one scalar multiplication), cycles: micro-ecc README, 385.8 ms at 48 MHz.
P256_ECDH_CYCLES = 385.8e-3 * _MICRO_ECC_CLOCK_HZ
#: P-256 ECDSA verification, cycles: micro-ecc README, 558.5 ms at 48 MHz.
P256_VERIFY_CYCLES = 558.5e-3 * _MICRO_ECC_CLOCK_HZ
#: The device's public-key work in one TLS 1.3 mutual-auth handshake (module doc): key
#: generation + shared secret + one signature (each one scalar multiplication) + two verifies.
TLS_HANDSHAKE_DEVICE_CYCLES = 3 * P256_ECDH_CYCLES + 2 * P256_VERIFY_CYCLES
#: Record protection per byte (AES-GCM, `tinylarge.secure.costs.AEAD_CYCLES_PER_BYTE`).
TLS_RECORD_CYCLES_PER_BYTE = AEAD_CYCLES_PER_BYTE["aes-256-gcm"]


def check_transport(transport: str) -> Transport:
    """``transport`` if it is one of `TRANSPORTS`; ``ValueError`` naming them otherwise."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    return transport  # type: ignore[return-value]


def varint_bytes(n: npt.ArrayLike) -> IntArray:
    """Bytes of MQTT's variable byte integer for ``n`` (MQTT 5.0 section 1.5.5), element-wise;
    ``ValueError`` outside 0 .. 268,435,455."""
    v = np.asarray(n, dtype=np.int64)
    if (v < 0).any() or (v > 268_435_455).any():
        raise ValueError("an MQTT variable byte integer holds 0 .. 268,435,455")
    return (1 + (v >= 128) + (v >= 16_384) + (v >= 2_097_152)).astype(np.int64)


def publish_bytes(
    topic_bytes: npt.ArrayLike, payload_bytes: npt.ArrayLike, *, qos: int
) -> IntArray:
    """Bytes on the TCP stream of MQTT 5 PUBLISH packets without properties (module doc),
    element-wise over topic (UTF-8 bytes) and payload sizes."""
    if qos not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
    topic, payload = np.asarray(topic_bytes, np.int64), np.asarray(payload_bytes, np.int64)
    if (topic < 0).any() or (payload < 0).any():
        raise ValueError("topic_bytes and payload_bytes must be >= 0")
    remaining = 2 + topic + (2 if qos > 0 else 0) + 1 + payload
    return np.asarray(1 + varint_bytes(remaining) + remaining, np.int64)


def tls_record_bytes(plaintext_bytes: npt.ArrayLike) -> IntArray:
    """Bytes of the TLS 1.3 records carrying ``plaintext_bytes`` written at once: one record
    per started 2^14 bytes, each `TLS_RECORD_OVERHEAD_BYTES` more; 0 stays 0."""
    p = np.asarray(plaintext_bytes, dtype=np.int64)
    if (p < 0).any():
        raise ValueError("plaintext_bytes must be >= 0")
    records = -(-p // TLS_MAX_PLAINTEXT)
    return np.asarray(p + records * TLS_RECORD_OVERHEAD_BYTES, np.int64)


def mqtt_tls_bytes(packet_bytes: npt.ArrayLike) -> IntArray:
    """What one MQTT packet of ``packet_bytes`` puts on the TCP stream over TLS 1.3."""
    return tls_record_bytes(packet_bytes)


def stream_bytes(transport: Transport, packet_bytes: npt.ArrayLike) -> IntArray:
    """What MQTT packets of ``packet_bytes`` put on the TCP stream over ``transport``: the
    deployment's ``transport_bytes_*`` per message."""
    if check_transport(transport) == "mqtt":
        return np.asarray(packet_bytes, np.int64)
    return mqtt_tls_bytes(packet_bytes)


def connect_bytes(client_id_bytes: int) -> int:
    """An MQTT 5 CONNECT as the deployment's clients send it, bytes (module doc)."""
    remaining = _CONNECT_FIXED_BYTES + client_id_bytes
    return int(1 + varint_bytes(remaining) + remaining)


@dataclass(frozen=True)
class MqttFraming:
    """MQTT 5 PUBLISH packets, in TLS 1.3 records when ``tls`` (a `Framing`).

    Attributes
    ----------
    up_topic_bytes, down_topic_bytes : int
        UTF-8 bytes of the device's uplink topic and of its downlink topic.
    qos : int
        QoS of the messages (a packet id when > 0).
    tls : bool
        Whether each packet travels in TLS 1.3 records.
    device_s_per_byte, device_j_per_byte : float
        The device's record protection per byte of the stream, s and J (0 without TLS).
    """

    up_topic_bytes: int
    down_topic_bytes: int
    qos: int
    tls: bool
    device_s_per_byte: float = 0.0
    device_j_per_byte: float = 0.0

    def stream_bytes(self, message_bytes: IntArray, *, down: bool) -> IntArray:
        """Bytes on the stream of messages of ``message_bytes`` (module doc)."""
        topic = self.down_topic_bytes if down else self.up_topic_bytes
        packet = publish_bytes(topic, message_bytes, qos=self.qos)
        return mqtt_tls_bytes(packet) if self.tls else packet


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
    issuer: str, extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(ca_key, hashes.SHA256())


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (directory / f"{stem}.crt").write_bytes(cert.public_bytes(ser.Encoding.PEM))
    key_path = directory / f"{stem}.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))


def throwaway_pki(directory: Path, device_id: str, host: str) -> dict[str, int]:
    """A P-256 CA, a broker certificate for ``host`` (DNS + IP SANs, serverAuth) and a device
    certificate with CN ``device_id`` (clientAuth), as PEM files ``ca.crt``, ``server.*``,
    ``device.*`` under ``directory``; returns each certificate's DER size, bytes."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("tinylarge-ca", ca_key, ca_key, "tinylarge-ca",
                      [(x509.BasicConstraints(ca=True, path_length=0), True)])  # fmt: skip
    try:
        san: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(host))]
    except ValueError:
        san = [x509.DNSName(host)]
    server_key, device_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    leaf = x509.BasicConstraints(ca=False, path_length=None)
    server = _certificate(host, server_key, ca_key, "tinylarge-ca", [
        (leaf, True), (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectAlternativeName([x509.DNSName("localhost"), *san]), False)])  # fmt: skip
    client_auth = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    device = _certificate(device_id, device_key, ca_key, "tinylarge-ca",
                          [(leaf, True), (client_auth, False)])  # fmt: skip
    (directory / "ca.crt").write_bytes(ca.public_bytes(ser.Encoding.PEM))
    _write(directory, "server", server, server_key)
    _write(directory, "device", device, device_key)
    return {name: len(c.public_bytes(ser.Encoding.DER))
            for name, c in (("ca", ca), ("server", server), ("device", device))}  # fmt: skip


def _contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(client, server) TLS 1.3 contexts with mutual authentication and ECDHE on P-256."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for ctx, stem in ((client, "device"), (server, "server")):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(directory / "ca.crt")
        ctx.load_cert_chain(directory / f"{stem}.crt", directory / f"{stem}.key")
        ctx.set_ecdh_curve("prime256v1")
    server.verify_mode = ssl.CERT_REQUIRED
    return client, server


def _pump(
    client: ssl.SSLObject, server: ssl.SSLObject, bios: list[ssl.MemoryBIO]
) -> tuple[int, int]:
    """Run the handshake between the two ends until nothing moves; bytes client -> server and
    server -> client (the server's session tickets included)."""
    c_in, c_out, s_in, s_out = bios
    up = down = 0
    done = [False, False]
    for _ in range(16):
        moved = 0
        for k, (end, out, peer_in) in enumerate(((client, c_out, s_in), (server, s_out, c_in))):
            if not done[k]:
                try:
                    end.do_handshake()
                    done[k] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            peer_in.write(data)
            moved += len(data)
            up, down = (up + len(data), down) if k == 0 else (up, down + len(data))
        if all(done) and moved == 0:
            return up, down
    raise RuntimeError("the measured TLS handshake did not finish")


@lru_cache(maxsize=16)
def tls_handshake_bytes(device_id_bytes: int = 12, host: str = "127.0.0.1") -> tuple[int, int]:
    """Bytes a device sends and receives in a TLS 1.3 mutual-auth handshake with the broker at
    ``host``, its certificate's CN ``device_id_bytes`` long: measured once per process (module
    doc). ECDSA signatures vary by a byte or two, so two processes may differ by a few bytes.
    """
    if device_id_bytes < 1:
        raise ValueError(f"device_id_bytes must be >= 1, got {device_id_bytes}")
    with tempfile.TemporaryDirectory(prefix="tinylarge-tls-") as tmp:
        directory = Path(tmp)
        throwaway_pki(directory, "d" * device_id_bytes, host)
        client_ctx, server_ctx = _contexts(directory)
        bios = [ssl.MemoryBIO() for _ in range(4)]
        client = client_ctx.wrap_bio(bios[0], bios[1], server_hostname=host)
        server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
        return _pump(client, server, bios)


@dataclass(frozen=True)
class ConnectionCost:
    """One device connection: bytes each way, round trips, the device's cycles."""

    up_bytes: int
    down_bytes: int
    round_trips: int
    device_cycles: float


def connection_cost(
    transport: Transport, *, client_id_bytes: int, device_id_bytes: int
) -> ConnectionCost:
    """What opening one connection costs (module doc): MQTT CONNECT / CONNACK, and with TLS
    the measured handshake, the MQTT packets in records, and the device's public-key work."""
    connect = connect_bytes(client_id_bytes)
    if check_transport(transport) == "mqtt":
        return ConnectionCost(connect, CONNACK_BYTES, 2, 0.0)
    up, down = tls_handshake_bytes(device_id_bytes)
    return ConnectionCost(
        up + int(mqtt_tls_bytes(connect)),
        down + int(mqtt_tls_bytes(CONNACK_BYTES)),
        3,
        TLS_HANDSHAKE_DEVICE_CYCLES,
    )


def transport_overhead(
    transport: Transport,
    *,
    topic_bytes: int,
    qos: int,
    mcu: McuProfile,
    down_topic_bytes: int | None = None,
    client_id_bytes: int = 28,
    device_id_bytes: int = 12,
) -> ProtocolOverhead:
    """The transport's costs as a `ProtocolOverhead` (framing + connection; module doc).

    Parameters
    ----------
    transport : {"mqtt-tls", "mqtt"}
    topic_bytes : int
        UTF-8 bytes of the device's uplink topic.
    qos : int
        MQTT QoS of the messages.
    mcu : McuProfile
        The device's MCU (clock and active power price its TLS work).
    down_topic_bytes : int, optional
        Of its downlink topic (default: ``topic_bytes``).
    client_id_bytes, device_id_bytes : int
        The MQTT client id's bytes (CONNECT) and the device id's (its certificate's CN).
    """
    tls = check_transport(transport) == "mqtt-tls"
    per_byte = TLS_RECORD_CYCLES_PER_BYTE if tls else 0.0
    framing = MqttFraming(
        topic_bytes, topic_bytes if down_topic_bytes is None else down_topic_bytes, qos, tls,
        per_byte / mcu.clock_hz, per_byte / mcu.clock_hz * mcu.active_power_w,
    )  # fmt: skip
    cost = connection_cost(
        transport, client_id_bytes=client_id_bytes, device_id_bytes=device_id_bytes
    )
    seconds = cost.device_cycles / mcu.clock_hz
    return ProtocolOverhead(
        framing=framing,
        connection_up_bytes=cost.up_bytes,
        connection_down_bytes=cost.down_bytes,
        connection_round_trips=cost.round_trips,
        connection_device_s=seconds,
        connection_device_j=seconds * mcu.active_power_w,
    )


def device_topic_bytes(prefix: str, device_id: str) -> tuple[int, int, int]:
    """UTF-8 bytes of a device's uplink topic ``P/up/D``, downlink topic ``P/down/D`` and MQTT
    client id ``P-D`` (the names `tinylarge.deploy.protocol.Topics` and the device agents use)."""
    up = len(f"{prefix}/up/{device_id}".encode())
    down = len(f"{prefix}/down/{device_id}".encode())
    return up, down, len(f"{prefix}-{device_id}".encode())


def transport_summary(transport: Transport, overhead: ProtocolOverhead, payload_bytes: int,
                      reply_bytes: int) -> dict[str, object]:  # fmt: skip
    """``network.transport`` of ``metrics.json``: the transport's name, what it adds to one
    request's message and reply (sealed sizes ``payload_bytes`` / ``reply_bytes``), and one
    connection's bytes, round trips and device work."""
    up, down = (
        int(overhead.wire_bytes(payload_bytes)),
        int(overhead.wire_bytes(reply_bytes, down=True)),
    )
    return {
        "name": transport,
        "message_bytes_up": up,
        "message_bytes_down": down,
        "overhead_bytes_up": up - payload_bytes,
        "overhead_bytes_down": down - reply_bytes,
        "handshake_bytes_up": overhead.connection_up_bytes,
        "handshake_bytes_down": overhead.connection_down_bytes,
        "round_trips": overhead.connection_round_trips,
        "handshake_device_s": overhead.connection_device_s,
        "handshake_device_j": overhead.connection_device_j,
        "acks_counted": False,
        "tcp_ip_headers_counted": False,
    }
