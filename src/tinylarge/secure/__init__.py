"""Security layer: device identities, authenticated encrypted sessions with replay protection,
signed model bundles with anti-rollback (all on the `cryptography` library), the transport's
costs (MQTT over TLS), secure aggregation (SecAgg+) and Byzantine-robust aggregators
(`register_robust_aggregators` registers them for co-learning).

Public names are imported from their submodule on first use, so that importing a light part
(the wire format, the broker's configuration) does not load torch.
"""

from tinylarge.lazy_exports import lazy_getattr

# `handshake` is also a submodule's name: imported here so that the package attribute is the
# function, whichever is imported first (the submodule is light: no torch).
from tinylarge.secure.handshake import DeviceHandshake, handshake, server_accept

_EXPORTS = {
    "sign_bundle": "bundle",
    "verify_bundle": "bundle",
    **dict.fromkeys(
        (
            "BadSignature",
            "BadTag",
            "HashMismatch",
            "Malformed",
            "Replay",
            "Rollback",
            "SecurityError",
            "TooLarge",
            "UnknownDevice",
            "WrongTarget",
        ),
        "errors",
    ),
    "Identity": "identity",
    "Registry": "identity",
    "MessageType": "messages",
    "ROBUST_AGGREGATORS": "robust",
    "register_robust_aggregators": "robust",
    "Session": "session",
    "overhead_bytes": "wire",
}

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

__getattr__ = lazy_getattr(__name__, _EXPORTS)
