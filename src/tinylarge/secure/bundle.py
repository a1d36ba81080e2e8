"""Signed model bundles for over-the-air updates, with anti-rollback.

::

    4 bytes   magic "TLB1"
    4 bytes   m = manifest length, unsigned big-endian
    m bytes   manifest: canonical JSON (sorted keys, no spaces) with
              format (1), sha256 (hex of the model bytes), version (int >= 1),
              target (device class), size (model bytes)
    64 bytes  Ed25519 signature of the server over magic || m || manifest
    size      the model bytes (e.g. a TinyModel file)

A device installs a bundle only if the signature verifies under the server's key, the manifest
parses, the size is within its limit and equals the bytes that follow (nothing appended), the
hash matches, the target is its own class and the version is newer than the installed one
(RFC 9124 / SUIT's rules). Otherwise `verify_bundle` raises the reason and the
device keeps its model.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tinylarge.secure.errors import HashMismatch, Malformed, Rollback, TooLarge, WrongTarget
from tinylarge.secure.identity import Identity, verify_signature

MAGIC = b"TLB1"
BUNDLE_FORMAT = 1
SIG_LEN = 64
#: Default largest model a device accepts, bytes (1 MiB: all the flash of the nRF52840, the
#: smallest of the boards in `tinylarge.tiny.mcu`; Nordic's nRF52840 product specification).
DEFAULT_MAX_MODEL_BYTES = 1 << 20
_MANIFEST_KEYS = {"format", "sha256", "version", "target", "size"}


def _manifest(model: bytes, version: int, target: str) -> bytes:
    body = {
        "format": BUNDLE_FORMAT,
        "sha256": hashlib.sha256(model).hexdigest(),
        "version": version,
        "target": target,
        "size": len(model),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_bundle(model_bytes: bytes, version: int, target: str, server_identity: Identity) -> bytes:
    """A bundle of ``model_bytes`` as ``version`` (int >= 1) for device class ``target``."""
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**63:
        raise ValueError(f"version must be an integer in 1..2^63-1, got {version!r}")
    if not isinstance(target, str) or not target:
        raise ValueError(f"target must be a non-empty device-class name, got {target!r}")
    model = bytes(model_bytes)
    manifest = _manifest(model, version, target)
    signed = MAGIC + struct.pack(">I", len(manifest)) + manifest
    return signed + server_identity.sign(signed) + model


def bundle_overhead_bytes(bundle: bytes) -> int:
    """Bytes a bundle adds to its model: magic, length, manifest and signature."""
    m: int = struct.unpack(">I", bundle[4:8])[0]
    return 8 + m + SIG_LEN


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Malformed("manifest is not UTF-8 JSON") from None
    if not isinstance(manifest, dict) or set(manifest) != _MANIFEST_KEYS:
        raise Malformed(f"manifest must hold exactly {sorted(_MANIFEST_KEYS)}")
    if manifest["format"] != BUNDLE_FORMAT:
        raise Malformed(f"bundle format {manifest['format']!r} is not {BUNDLE_FORMAT}")
    for key in ("version", "size"):
        if isinstance(manifest[key], bool) or not isinstance(manifest[key], int):
            raise Malformed(f"manifest {key} must be an integer")
    if not isinstance(manifest["target"], str) or not isinstance(manifest["sha256"], str):
        raise Malformed("manifest target and sha256 must be strings")
    return manifest


def verify_bundle(
    bundle: bytes,
    server_public_key: Ed25519PublicKey,
    installed_version: int,
    target: str,
    *,
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
) -> bytes:
    """The model bytes of a bundle the device may install, or a `SecurityError` saying why not.

    Order: framing (`Malformed`), signature (`BadSignature`), manifest (`Malformed`), size
    (`TooLarge`, then `Malformed` if the bytes that follow differ), hash (`HashMismatch`),
    target (`WrongTarget`), version (`Rollback`).
    """
    data = bytes(bundle)
    if len(data) < 8 + SIG_LEN or data[:4] != MAGIC:
        raise Malformed("not a TLB1 model bundle")
    (m,) = struct.unpack(">I", data[4:8])
    if len(data) < 8 + m + SIG_LEN:
        raise Malformed(f"bundle of {len(data)} bytes is shorter than its {m}-byte manifest")
    signed, signature = data[: 8 + m], data[8 + m : 8 + m + SIG_LEN]
    verify_signature(server_public_key, signature, signed)
    manifest = _parse_manifest(data[8 : 8 + m])
    model = data[8 + m + SIG_LEN :]
    if manifest["size"] > max_model_bytes:
        raise TooLarge(f"model of {manifest['size']} bytes exceeds the limit of {max_model_bytes}")
    if len(model) != manifest["size"]:
        raise Malformed(f"{len(model)} model bytes follow a manifest that says {manifest['size']}")
    if hashlib.sha256(model).hexdigest() != manifest["sha256"]:
        raise HashMismatch("model bytes do not match the manifest's SHA-256")
    if manifest["target"] != target:
        raise WrongTarget(f"bundle is for {manifest['target']!r}, this device is {target!r}")
    if manifest["version"] <= installed_version:
        raise Rollback(
            f"bundle version {manifest['version']} is not newer than installed {installed_version}"
        )
    return model


def bundle_version(bundle: bytes) -> int:
    """The version a bundle's manifest states (read it after `verify_bundle` accepted it)."""
    data = bytes(bundle)
    if len(data) < 8 or data[:4] != MAGIC:
        raise Malformed("not a TLB1 model bundle")
    (m,) = struct.unpack(">I", data[4:8])
    version: int = _parse_manifest(data[8 : 8 + m])["version"]
    return version
