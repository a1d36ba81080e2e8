"""Why a message, handshake or model bundle was refused: one exception class per reason.

Every rejection in `tinylarge.secure` raises a subclass of `SecurityError` whose name says the
reason, and nothing of a rejected message reaches the caller.
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base class of every rejection in `tinylarge.secure`."""


class Malformed(SecurityError):
    """The bytes do not parse: truncated, extended, wrong version, bad field."""


class TooLarge(SecurityError):
    """The message or bundle exceeds the configured size limit."""


class UnknownDevice(SecurityError):
    """The device id is not enrolled, or is not the one this session belongs to."""


class BadSignature(SecurityError):
    """An Ed25519 signature does not verify under the expected public key."""


class BadTag(SecurityError):
    """The AEAD tag does not verify: the ciphertext or its header was changed, or wrong key."""


class Replay(SecurityError):
    """The sequence number was already accepted or is older than the replay window."""


class HashMismatch(SecurityError):
    """A bundle's model bytes do not hash to the SHA-256 its signed manifest names."""


class WrongTarget(SecurityError):
    """A bundle is signed for another device class."""


class Rollback(SecurityError):
    """A bundle's version is not newer than the installed one (anti-rollback)."""
