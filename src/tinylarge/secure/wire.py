"""The wire format of a protected message, and its byte overhead.

::

    offset  size        field
    0       1           format version (1)
    1       1           message type (0..255, the application's)
    2       1           n = length of the device id in bytes (1..64)
    3       n           device id, UTF-8
    3+n     8           sequence number, unsigned big-endian
    11+n    len(p)+16   AEAD ciphertext of the payload p, with its 16-byte tag

The whole header (bytes ``0 .. 11+n``) is the AEAD's associated data, so changing any header
field fails the tag. The 12-byte nonce is 4 zero bytes + the 8-byte sequence number; every
direction of a session has its own key and its own strictly increasing counter, so a
(key, nonce) pair is never reused. Overhead: ``27 + n`` bytes per message (e.g. 35 bytes for an
8-character device id), against 11-15 bytes for OSCORE and 29 for DTLS 1.2 with 8-byte tags
(RFC 8613 OSCORE; RFC 6347 DTLS 1.2), which do not carry the sender's id in every message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tinylarge.secure.errors import Malformed, TooLarge
from tinylarge.secure.identity import MAX_DEVICE_ID_BYTES, encode_device_id

WIRE_VERSION = 1
TAG_BYTES = 16
NONCE_PREFIX = bytes(4)
#: Default largest payload a session accepts, bytes (a model update fits; 1 MiB).
DEFAULT_MAX_PAYLOAD = 1 << 20


def overhead_bytes(device_id: str) -> int:
    """Bytes a message adds to its payload: header + tag."""
    return 3 + len(encode_device_id(device_id)) + 8 + TAG_BYTES


def nonce(seq: int) -> bytes:
    """The 12-byte AEAD nonce of sequence number ``seq``."""
    return NONCE_PREFIX + struct.pack(">Q", seq)


@dataclass(frozen=True)
class Header:
    """A parsed header; ``raw`` is its exact bytes (the associated data)."""

    msg_type: int
    device_id: str
    seq: int
    raw: bytes


def pack_header(msg_type: int, device_id: str, seq: int) -> bytes:
    """The header bytes of a message."""
    if isinstance(msg_type, bool) or not isinstance(msg_type, int) or not 0 <= msg_type <= 255:
        raise ValueError(f"msg_type must be an integer in 0..255, got {msg_type!r}")
    raw_id = encode_device_id(device_id)
    return (
        struct.pack(">BBB", WIRE_VERSION, msg_type, len(raw_id)) + raw_id + struct.pack(">Q", seq)
    )


def parse(wire: bytes, max_payload: int) -> tuple[Header, bytes]:
    """Split ``wire`` into its header and ciphertext; `Malformed` / `TooLarge` if it cannot be
    a message of this format."""
    if not isinstance(wire, bytes | bytearray | memoryview):
        raise Malformed(f"a message must be bytes, got {type(wire).__name__}")
    wire = bytes(wire)
    if len(wire) < 3:
        raise Malformed(f"message of {len(wire)} bytes is shorter than any header")
    version, msg_type, id_len = wire[0], wire[1], wire[2]
    if version != WIRE_VERSION:
        raise Malformed(f"wire format version {version} is not {WIRE_VERSION}")
    if not 1 <= id_len <= MAX_DEVICE_ID_BYTES:
        raise Malformed(f"device id length {id_len} is not in 1..{MAX_DEVICE_ID_BYTES}")
    end = 3 + id_len + 8
    if len(wire) < end + TAG_BYTES:
        raise Malformed(f"message of {len(wire)} bytes is too short for its header and tag")
    if len(wire) - end - TAG_BYTES > max_payload:
        raise TooLarge(
            f"payload of {len(wire) - end - TAG_BYTES} bytes exceeds the limit of {max_payload}"
        )
    try:
        device_id = wire[3 : 3 + id_len].decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("device id is not valid UTF-8") from None
    (seq,) = struct.unpack(">Q", wire[3 + id_len : end])
    return Header(msg_type, device_id, seq, wire[:end]), wire[end:]
