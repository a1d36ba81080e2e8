"""Key files of a deployment: private identities (devices' or the edge's) and the edge's registry.

Both are JSON. An identities file holds raw Ed25519 private keys (hex) and is written with mode
0600; it stays on the machine that owns the keys (the fleet's, or the edge's). A registry file
holds only public keys: the devices' is copied to the edge server (it enrolls them), the edge's
to the devices (they check its handshake and bundle signatures).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tinylarge.deploy.protocol import check_device_id_for_topics
from tinylarge.secure.identity import Identity, Registry

IDENTITIES_FORMAT = "tinylarge-identities-1"
REGISTRY_FORMAT = "tinylarge-registry-1"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def _read(path: Path, expected: str) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable {expected} file ({error})") from None
    if not isinstance(data, dict) or data.get("format") != expected:
        raise ValueError(f"{path}: not a {expected} file (its 'format' field must be {expected!r})")
    keys = data.get("keys")
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise ValueError(f"{path}: 'keys' must map ids to hex strings")
    return keys


def save_identities(path: str | Path, identities: Iterable[Identity]) -> None:
    """Write private identities (mode 0600)."""
    keys = {
        i.device_id: i.private_key.private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        ).hex()
        for i in identities
    }
    _write_private(Path(path), json.dumps({"format": IDENTITIES_FORMAT, "keys": keys}, indent=1))


def load_identities(path: str | Path) -> list[Identity]:
    """The identities of a file written by `save_identities`, in file order."""
    out = []
    for device_id, raw in _read(Path(path), IDENTITIES_FORMAT).items():
        try:
            key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(raw))
        except ValueError as error:
            raise ValueError(f"{path}: the key of {device_id!r} is not 32 hex bytes") from error
        out.append(Identity(check_device_id_for_topics(device_id), key))
    return out


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def save_registry(path: str | Path, identities: Iterable[Identity]) -> None:
    """Write the public keys of ``identities`` (safe to copy anywhere)."""
    keys = {i.device_id: public_hex(i.public_key) for i in identities}
    text = json.dumps({"format": REGISTRY_FORMAT, "keys": keys}, indent=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def load_registry(path: str | Path) -> Registry:
    """A `Registry` with every public key of a file written by `save_registry`."""
    registry = Registry()
    for device_id, raw in _read(Path(path), REGISTRY_FORMAT).items():
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw))
        except ValueError as error:
            raise ValueError(f"{path}: the key of {device_id!r} is not 32 hex bytes") from error
        registry.enroll(check_device_id_for_topics(device_id), key)
    return registry


def edge_public_key(path: str | Path, edge_id: str = "edge") -> Ed25519PublicKey:
    """The edge's public key from its registry file."""
    registry = load_registry(path)
    if edge_id not in registry:
        raise ValueError(f"{path}: no key for {edge_id!r}")
    return registry.public_key(edge_id)
