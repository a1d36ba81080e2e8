"""Device and server identities (Ed25519 key pairs) and the server's registry of devices."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tinylarge.secure.errors import BadSignature, Malformed, UnknownDevice

#: Longest device id, in UTF-8 bytes (it travels in every message header).
MAX_DEVICE_ID_BYTES = 64


def encode_device_id(device_id: str) -> bytes:
    """UTF-8 bytes of a device id; `Malformed` unless 1..`MAX_DEVICE_ID_BYTES` bytes."""
    if not isinstance(device_id, str):
        raise Malformed(f"device id must be a str, got {type(device_id).__name__}")
    raw = device_id.encode("utf-8")
    if not 1 <= len(raw) <= MAX_DEVICE_ID_BYTES:
        raise Malformed(f"device id must be 1..{MAX_DEVICE_ID_BYTES} UTF-8 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True, eq=False)
class Identity:
    """An Ed25519 key pair bound to an id (a device's, or the server's).

    Attributes
    ----------
    device_id : str
    public_key : cryptography Ed25519PublicKey
    """

    device_id: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, device_id: str) -> Identity:
        """A fresh key pair for ``device_id``."""
        encode_device_id(device_id)
        return cls(device_id, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        """64-byte Ed25519 signature of ``data``."""
        return self.private_key.sign(data)


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    """`BadSignature` unless ``signature`` signs ``data`` under ``public_key``."""
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise BadSignature("Ed25519 signature does not verify") from None


class Registry:
    """The server's enrolled devices: device id -> Ed25519 public key."""

    def __init__(self) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}

    def enroll(self, device_id: str, public_key: Ed25519PublicKey) -> None:
        """Enroll a device; ``ValueError`` if the id is taken by another key."""
        encode_device_id(device_id)
        if not isinstance(public_key, Ed25519PublicKey):
            raise TypeError(f"public_key must be an Ed25519PublicKey, got {type(public_key)}")
        known = self._keys.get(device_id)
        if known is not None and known != public_key:
            raise ValueError(f"device {device_id!r} is already enrolled with another key")
        self._keys[device_id] = public_key

    def public_key(self, device_id: str) -> Ed25519PublicKey:
        """The enrolled key of ``device_id``; `UnknownDevice` if it is not enrolled."""
        try:
            return self._keys[device_id]
        except KeyError:
            raise UnknownDevice(f"device {device_id!r} is not enrolled") from None

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)
