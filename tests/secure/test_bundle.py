"""Signed model bundles: install only what the server signed, for this device, newer."""

from __future__ import annotations

import json
import struct

import pytest

from tinylarge.secure import (
    BadSignature,
    HashMismatch,
    Identity,
    Malformed,
    Rollback,
    TooLarge,
    WrongTarget,
    sign_bundle,
    verify_bundle,
)
from tinylarge.secure.bundle import SIG_LEN

SERVER = Identity.generate("edge")
MODEL = bytes(range(256)) * 4


def bundle(version: int = 3, target: str = "stm32l4r5") -> bytes:
    return sign_bundle(MODEL, version, target, SERVER)


def test_a_newer_bundle_for_this_device_installs() -> None:
    assert verify_bundle(bundle(), SERVER.public_key, 2, "stm32l4r5") == MODEL


def _with_manifest(data: bytes, **changes: object) -> bytes:
    (m,) = struct.unpack(">I", data[4:8])
    manifest = json.loads(data[8 : 8 + m])
    manifest.update(changes)
    raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return data[:4] + struct.pack(">I", len(raw)) + raw + data[8 + m :]


@pytest.mark.parametrize(
    "field, value",
    [("version", 99), ("target", "nrf52840"), ("size", 10), ("sha256", "0" * 64), ("format", 2)],
)
def test_every_manifest_field_is_covered_by_the_signature(field: str, value: object) -> None:
    with pytest.raises(BadSignature):
        verify_bundle(_with_manifest(bundle(), **{field: value}), SERVER.public_key, 0, "stm32l4r5")


def test_tampered_model_bytes_wrong_key_and_appended_bytes() -> None:
    data = bytearray(bundle())
    data[-1] ^= 0xFF
    with pytest.raises(HashMismatch):
        verify_bundle(bytes(data), SERVER.public_key, 0, "stm32l4r5")
    with pytest.raises(BadSignature):
        verify_bundle(bundle(), Identity.generate("edge").public_key, 0, "stm32l4r5")
    with pytest.raises(Malformed, match="model bytes follow"):
        verify_bundle(bundle() + b"\x00", SERVER.public_key, 0, "stm32l4r5")
    with pytest.raises(Malformed, match="not a TLB1"):
        verify_bundle(bundle()[:40], SERVER.public_key, 0, "stm32l4r5")


def test_older_or_equal_versions_other_targets_and_oversize_are_refused() -> None:
    for installed in (3, 4):
        with pytest.raises(Rollback, match="not newer"):
            verify_bundle(bundle(3), SERVER.public_key, installed, "stm32l4r5")
    with pytest.raises(WrongTarget, match=r"'stm32l4r5'.*'nrf52840'"):
        verify_bundle(bundle(), SERVER.public_key, 0, "nrf52840")
    with pytest.raises(TooLarge):
        verify_bundle(bundle(), SERVER.public_key, 0, "stm32l4r5", max_model_bytes=1000)


def test_signature_length_and_argument_checks() -> None:
    (m,) = struct.unpack(">I", bundle()[4:8])
    assert len(bundle()) == 8 + m + SIG_LEN + len(MODEL)
    with pytest.raises(ValueError, match="version must be"):
        sign_bundle(MODEL, 0, "stm32l4r5", SERVER)
