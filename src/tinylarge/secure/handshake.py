"""Authenticated key agreement: X25519 ephemeral keys, both signed with Ed25519, HKDF-SHA256.

Two messages (a SIGMA-style exchange, both ephemeral keys signed by their owner's identity)::

    hello  (device -> server): 1 version | 1 kind=1 | 1 aead | 1 n | n device id
                               | 32 device ephemeral X25519 key | 64 device signature
    reply  (server -> device): 1 version | 1 kind=2 | 32 server ephemeral X25519 key
                               | 64 server signature

The device signs ``"tinylarge hello v1" || hello-without-signature``; the server signs
``"tinylarge reply v1" || whole hello || server key``, which binds its answer to that device,
that ephemeral key and that AEAD choice. Both sides derive 64 bytes with HKDF-SHA256 from the
X25519 secret (salt: SHA-256 of hello || server key; info: ``"tinylarge v1 session keys"``):
the first 32 protect device -> server messages, the last 32 server -> device. Hello is
``100 + n`` bytes and reply 98 bytes (n = device-id length): 198 + n in two flights, between
EDHOC with signatures (216 B; RFC 9528) and DTLS 1.3 with raw public keys (894 B; RFC 9147).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tinylarge.secure.errors import Malformed
from tinylarge.secure.identity import (
    MAX_DEVICE_ID_BYTES,
    Identity,
    Registry,
    encode_device_id,
    verify_signature,
)
from tinylarge.secure.replay import DEFAULT_WINDOW
from tinylarge.secure.session import AEADS, KEY_BYTES, Aead, Session
from tinylarge.secure.wire import DEFAULT_MAX_PAYLOAD, WIRE_VERSION

HELLO, REPLY = 1, 2
KEY_LEN, SIG_LEN = 32, 64
_HELLO_LABEL, _REPLY_LABEL = b"tinylarge hello v1", b"tinylarge reply v1"
_KDF_INFO = b"tinylarge v1 session keys"


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _session_keys(secret: bytes, hello: bytes, server_key: bytes) -> tuple[bytes, bytes]:
    salt = hashlib.sha256(hello + server_key).digest()
    okm = HKDF(algorithm=hashes.SHA256(), length=2 * KEY_BYTES, salt=salt, info=_KDF_INFO)
    keys = okm.derive(secret)
    return keys[:KEY_BYTES], keys[KEY_BYTES:]


def _parse_hello(hello: bytes) -> tuple[Aead, str, bytes, bytes]:
    """(aead, device id, ephemeral key, signature) of a hello; `Malformed` if it is not one."""
    if len(hello) < 4 or hello[0] != WIRE_VERSION or hello[1] != HELLO:
        raise Malformed("not a version-1 handshake hello")
    if hello[2] >= len(AEADS):
        raise Malformed(f"unknown AEAD code {hello[2]}")
    n = hello[3]
    if not 1 <= n <= MAX_DEVICE_ID_BYTES or len(hello) != 4 + n + KEY_LEN + SIG_LEN:
        raise Malformed(f"hello of {len(hello)} bytes does not match its device-id length {n}")
    try:
        device_id = hello[4 : 4 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("device id is not valid UTF-8") from None
    key = hello[4 + n : 4 + n + KEY_LEN]
    return AEADS[hello[2]], device_id, key, hello[4 + n + KEY_LEN :]


@dataclass
class DeviceHandshake:
    """The device's side: `hello`, then `finish` with the server's reply."""

    identity: Identity
    aead: Aead = "chacha20-poly1305"
    _ephemeral: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate, repr=False)
    _hello: bytes = b""

    def hello(self) -> bytes:
        """The first flight (sign once; repeated calls return the same bytes)."""
        if not self._hello:
            if self.aead not in AEADS:
                raise ValueError(f"aead must be one of {AEADS}, got {self.aead!r}")
            raw_id = encode_device_id(self.identity.device_id)
            body = bytes([WIRE_VERSION, HELLO, AEADS.index(self.aead), len(raw_id)]) + raw_id
            body += _raw(self._ephemeral.public_key())
            self._hello = body + self.identity.sign(_HELLO_LABEL + body)
        return self._hello

    def finish(
        self,
        reply: bytes,
        server_public_key: Ed25519PublicKey,
        *,
        window: int = DEFAULT_WINDOW,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> Session:
        """The device's session, after checking the server's signature (`BadSignature`)."""
        hello = self.hello()
        if len(reply) != 2 + KEY_LEN + SIG_LEN or reply[0] != WIRE_VERSION or reply[1] != REPLY:
            raise Malformed(f"not a version-1 handshake reply ({len(reply)} bytes)")
        server_key, signature = reply[2 : 2 + KEY_LEN], reply[2 + KEY_LEN :]
        verify_signature(server_public_key, signature, _REPLY_LABEL + hello + server_key)
        secret = self._ephemeral.exchange(X25519PublicKey.from_public_bytes(server_key))
        to_server, to_device = _session_keys(secret, hello, server_key)
        return Session(
            self.identity.device_id,
            to_server,
            to_device,
            aead=self.aead,
            window=window,
            max_payload=max_payload,
        )


def server_accept(
    hello: bytes,
    server: Identity,
    registry: Registry,
    *,
    window: int = DEFAULT_WINDOW,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> tuple[bytes, Session]:
    """Check a device's hello (`Malformed`, `UnknownDevice`, `BadSignature`) and answer it.

    Returns the reply to send and the server's session with that device (``window`` and
    ``max_payload`` as in `Session`).
    """
    aead, device_id, device_key, signature = _parse_hello(hello)
    public_key = registry.public_key(device_id)
    verify_signature(public_key, signature, _HELLO_LABEL + hello[:-SIG_LEN])
    ephemeral = X25519PrivateKey.generate()
    server_key = _raw(ephemeral.public_key())
    reply = bytes([WIRE_VERSION, REPLY]) + server_key
    reply += server.sign(_REPLY_LABEL + hello + server_key)
    secret = ephemeral.exchange(X25519PublicKey.from_public_bytes(device_key))
    to_server, to_device = _session_keys(secret, hello, server_key)
    session = Session(
        device_id, to_device, to_server, aead=aead, window=window, max_payload=max_payload
    )
    return reply, session


def handshake(
    device_identity: Identity,
    server_identity: Identity,
    registry: Registry,
    *,
    aead: Aead = "chacha20-poly1305",
    window: int = DEFAULT_WINDOW,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> tuple[Session, Session]:
    """Both sides in one process: ``(device_session, server_session)``."""
    device = DeviceHandshake(device_identity, aead)
    reply, server_session = server_accept(
        device.hello(), server_identity, registry, window=window, max_payload=max_payload
    )
    device_session = device.finish(
        reply, server_identity.public_key, window=window, max_payload=max_payload
    )
    return device_session, server_session
