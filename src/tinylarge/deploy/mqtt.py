"""How every tinylarge process connects to the broker: MQTT 5, TCP_NODELAY, a session that
outlives a dropped connection (aiomqtt over paho-mqtt), mutual TLS 1.3 for a locked-down
broker, and `diagnose_refusal` to name why a broker refuses a client.

aiomqtt reports every refusal at the TLS layer (no certificate, a revoked one, one from another
CA) as ``Operation timed out`` after its connect timeout: with TLS 1.3 the client finishes its
side of the handshake before the broker has checked the client's certificate (RFC 8446 section
4.4), so the broker's alert only arrives on the first read, which paho's loop does not report.
`diagnose_refusal` makes a connection of its own and reads the alert.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import socket
import ssl
from typing import Literal

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.pki import TlsFiles

#: TCP_NODELAY on the client side too: without it a QoS 1 round trip takes 44-92 ms (Nagle's
#: algorithm + delayed ACK) instead of about 0.5 ms (measured on these machines).
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
#: How long the broker keeps a disconnected client's session and queued messages, s.
SESSION_EXPIRY_S = 3600

RefusalReason = Literal[
    "no_certificate",  # the client sent no certificate (TLS alert certificate_required)
    "revoked",  # its certificate is on the broker's CRL (alert certificate_revoked)
    "unknown_ca",  # its certificate is not from the broker's CA (alert unknown_ca)
    "bad_certificate",  # expired, not yet valid, wrong key usage (bad/expired/unknown alerts)
    "acl_denied",  # CONNACK 0x87 "Not authorized"
    "tls_required",  # plaintext MQTT to a broker that closed without a CONNACK (TLS only)
    "server_untrusted",  # the broker's certificate failed the client's check
    "unreachable",  # no TCP connection
    "other",  # anything else (the message says what)
]
#: TLS alerts (OpenSSL's names, as Python's ``ssl.SSLError.reason`` gives them) -> reason
#: (alert numbers: RFC 8446 section 6.2).
_ALERTS: dict[str, RefusalReason] = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "no_certificate",  # 116
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "revoked",  # 44
    "TLSV1_ALERT_UNKNOWN_CA": "unknown_ca",  # 48
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad_certificate",  # 42
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "bad_certificate",  # 45
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "bad_certificate",  # 46
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "bad_certificate",  # 43
}
#: MQTT 5.0 CONNACK reason codes (section 3.2.2.2) that mean "not allowed".
_NOT_AUTHORIZED = 0x87


class BrokerRefused(ConnectionError):
    """The broker refused a client; ``reason`` names why (`RefusalReason`)."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"the broker refused the connection ({reason}): {detail}")
        self.reason: RefusalReason = reason
        self.detail = detail


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """A client's TLS context: TLS 1.3 at least, only the project CA trusted, the broker's
    name checked against its subjectAltNames (not its CN), this endpoint's certificate
    presented.

    Building one takes about 3 ms (parsing the CA, the certificate and the key), so contexts
    are kept and shared (by file and modification time: a certificate issued anew gets a new
    context); do not change the one returned.

    Raises
    ------
    ValueError
        When one of the files does not exist (saying which).
    """
    stamps = []
    for what, path in (("CA certificate", files.ca), ("certificate", files.cert),
                       ("private key", files.key)):  # fmt: skip
        if not path.is_file():
            raise ValueError(
                f"TLS {what} {path} does not exist: issue the certificate first "
                "(tinylarge.deploy.pki.Pki / DeployLayout.enroll)"
            )
        stamps.append(path.stat().st_mtime_ns)
    return _context(files, tuple(stamps))


@functools.lru_cache(maxsize=4096)
def _context(files: TlsFiles, stamps: tuple[int, ...]) -> ssl.SSLContext:
    del stamps  # part of the cache key only
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.hostname_checks_common_name = False
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def connect_properties() -> Properties:
    """MQTT 5 CONNECT properties: a session that outlives a dropped connection."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    return props


def _check_tls(address: BrokerAddress, tls: TlsFiles | None) -> None:
    if address.tls and tls is None:
        raise ValueError(
            f"{address.url} speaks MQTT over TLS: the client needs its certificate "
            "(TlsFiles, e.g. DeployLayout.tls_for(<id>))"
        )
    if tls is not None and not address.tls:
        raise ValueError(
            f"{address.url} is plaintext MQTT but a certificate was given: use "
            f"mqtts://{address.host}:{address.port} for a TLS broker, or no certificate"
        )


def persistent_client(
    address: BrokerAddress,
    identifier: str,
    *,
    max_inflight: int | None = None,
    tls: TlsFiles | None = None,
) -> aiomqtt.Client:
    """A client whose subscriptions and queued QoS 1 messages survive a reconnect (MQTT 5
    ``clean_start = False`` with a session expiry interval; both are needed). Over an
    ``mqtts://`` address it presents ``tls`` (`tls_context`); a reconnect with the same
    ``identifier`` and certificate finds its session again.

    Raises
    ------
    ValueError
        When ``address`` is ``mqtts://`` and ``tls`` is None, or ``mqtt://`` and ``tls`` given.
    """
    _check_tls(address, tls)
    return aiomqtt.Client(
        address.host,
        address.port,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=connect_properties(),
        socket_options=NODELAY,
        max_inflight_messages=max_inflight,
        tls_context=None if tls is None else tls_context(tls),
    )


def connect_packet(client_id: str, keep_alive_s: int = 10) -> bytes:
    """An MQTT 5.0 CONNECT with clean start, no properties (the session ends with the
    connection) and no will, username or password (section 3.1)."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x05\x02" + keep_alive_s.to_bytes(2, "big") + b"\x00"
    body += len(cid).to_bytes(2, "big") + cid
    if len(body) > 127:
        raise ValueError(f"client id {client_id!r} is too long for this probe (max 110 bytes)")
    return bytes([0x10, len(body)]) + body


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("the broker closed the connection")
        data += chunk
    return data


def _read_connack(sock: socket.socket) -> int:
    """The reason code of the CONNACK the broker sends (MQTT 5.0 section 3.2)."""
    head = _read_exactly(sock, 1)[0]
    if head >> 4 != 2:
        raise ValueError(f"expected a CONNACK, got packet type {head >> 4}")
    length, shift = 0, 0
    while True:
        byte = _read_exactly(sock, 1)[0]
        length += (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    body = _read_exactly(sock, length)
    return body[1] if len(body) > 1 else 0


def _probe_context(tls: TlsFiles | None) -> ssl.SSLContext:
    """The probe's TLS context: the client's own, or (no certificate) one that presents none
    and does not check the broker (the probe sends nothing secret)."""
    if tls is not None:
        return tls_context(tls)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _exchange(raw: socket.socket, address: BrokerAddress, tls: TlsFiles | None) -> int:
    """TLS handshake (``mqtts://``), then CONNECT; the CONNACK's reason code. A TLS 1.3
    broker that refuses the client's certificate says so right after the handshake, so the
    probe listens briefly before it sends (a CONNECT racing the alert could meet a reset)."""
    sock: socket.socket = raw
    if address.tls:
        sock = _probe_context(tls).wrap_socket(raw, server_hostname=address.host)
        timeout = sock.gettimeout()
        sock.settimeout(min(0.25, timeout or 0.25))
        with contextlib.suppress(TimeoutError):
            sock.recv(1)  # a refusal raises its alert here; an accepted client gets nothing
        sock.settimeout(timeout)
    sock.sendall(connect_packet(f"tinylarge-probe-{secrets.token_hex(6)}"))
    code = _read_connack(sock)
    if code == 0:
        sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
    return code


def _refusal_of(error: Exception, address: BrokerAddress) -> BrokerRefused:
    """What a failed probe says about the broker's refusal."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return BrokerRefused(
            "server_untrusted",
            f"the broker at {address.url} failed this client's check of its certificate: "
            f"{error.verify_message}",
        )
    if isinstance(error, ssl.SSLError):
        reason = _ALERTS.get(str(error.reason), "other")
        return BrokerRefused(reason, f"TLS alert from {address.url}: {error.reason}")
    if isinstance(error, ConnectionError) and not address.tls:
        return BrokerRefused(
            "tls_required",
            f"the broker at {address.url} closed a plaintext MQTT connection without a "
            f"CONNACK: it probably speaks TLS only (use mqtts://{address.host}:"
            f"{address.port} with a client certificate)",
        )
    if isinstance(error, TimeoutError):
        return BrokerRefused("other", f"no CONNACK from {address.url} in time")
    return BrokerRefused("other", f"{address.url}: {type(error).__name__}: {error}")


def diagnose_refusal(
    address: BrokerAddress, tls: TlsFiles | None, timeout_s: float = 5.0
) -> BrokerRefused | None:
    """Why the broker at ``address`` refuses a client with ``tls`` (None: no certificate);
    None when it accepts it.

    The probe opens a connection of its own (TCP, TLS with the client's certificate for
    ``mqtts://``, an MQTT 5 CONNECT with a random client id and clean start, so the client's
    session is not touched), reads the broker's TLS alert or CONNACK and names the reason
    (`RefusalReason`). It takes one connection attempt, at most ``timeout_s`` (s).

    Raises
    ------
    ValueError
        When ``tls`` is given for a plaintext ``mqtt://`` address, or a TLS file is missing.
    """
    if tls is not None:
        _check_tls(address, tls)
        tls_context(tls)  # a missing file fails here, not as a refusal
    try:
        raw = socket.create_connection((address.host, address.port), timeout=timeout_s)
    except OSError as error:
        return BrokerRefused("unreachable", f"no TCP connection to {address.url}: {error}")
    try:
        raw.setsockopt(*NODELAY[0])
        code = _exchange(raw, address, tls)
    except (OSError, ValueError) as error:  # ssl.SSLError and TimeoutError are OSErrors
        return _refusal_of(error, address)
    finally:
        raw.close()
    if code == 0:
        return None
    reason: RefusalReason = "acl_denied" if code == _NOT_AUTHORIZED else "other"
    return BrokerRefused(reason, f"CONNACK reason code 0x{code:02x} from {address.url}")
