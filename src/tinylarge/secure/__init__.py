"""Security layer: device identities, authenticated encrypted sessions with replay protection,
signed model bundles with anti-rollback (all on the `cryptography` library), and
Byzantine-robust aggregators (registered for co-learning on import)."""

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
from tinylarge.secure.messages import MessageType
from tinylarge.secure.robust import ROBUST_AGGREGATORS, register_robust_aggregators
from tinylarge.secure.session import Session
from tinylarge.secure.wire import overhead_bytes

__all__ = [
    "ROBUST_AGGREGATORS",
    "BadSignature",
    "BadTag",
    "DeviceHandshake",
    "HashMismatch",
    "Identity",
    "Malformed",
    "MessageType",
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
    "register_robust_aggregators",
    "server_accept",
    "sign_bundle",
    "verify_bundle",
]
