"""Security layer: device identities, authenticated encrypted sessions with replay protection,
and signed model bundles with anti-rollback, all on the `cryptography` library."""

from tinylarge.secure.bundle import sign_bundle, verify_bundle
from tinylarge.secure.errors import (
    BadSignature,
    BadTag,
    HashMismatch,
    Malformed,
    Replay,
    Rollback,
    SecurityError,
    TooLarge,
    UnknownDevice,
    WrongTarget,
)
from tinylarge.secure.handshake import DeviceHandshake, handshake, server_accept
from tinylarge.secure.identity import Identity, Registry
from tinylarge.secure.session import Session
from tinylarge.secure.wire import overhead_bytes

__all__ = [
    "BadSignature",
    "BadTag",
    "DeviceHandshake",
    "HashMismatch",
    "Identity",
    "Malformed",
    "Registry",
    "Replay",
    "Rollback",
    "SecurityError",
    "Session",
    "TooLarge",
    "UnknownDevice",
    "WrongTarget",
    "handshake",
    "overhead_bytes",
    "server_accept",
    "sign_bundle",
    "verify_bundle",
]
