"""A short mutation campaign over the wire format (the long one is benchmarks/fuzz_wire.py):
no mutated message is ever accepted, and every rejection is a documented `SecurityError`."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tinylarge.secure import Identity, Registry, SecurityError, handshake

DEVICE, SERVER = Identity.generate("sensor-1"), Identity.generate("edge")
REGISTRY = Registry()
REGISTRY.enroll(DEVICE.device_id, DEVICE.public_key)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=64),
    kind=st.sampled_from(["flip", "truncate", "extend", "header"]),
    position=st.integers(min_value=0, max_value=10_000),
    value=st.integers(min_value=1, max_value=255),
)
def test_mutated_messages_are_never_accepted(
    payload: bytes, kind: str, position: int, value: int
) -> None:
    device, server = handshake(DEVICE, SERVER, REGISTRY)
    wire = bytearray(device.seal(5, payload))
    i = position % len(wire)
    if kind == "flip":
        wire[i] ^= value
    elif kind == "truncate":
        del wire[i:]
    elif kind == "extend":
        wire += bytes([value]) * (1 + position % 8)
    else:
        wire[i % 19] ^= value  # header bytes (the id is 8 bytes: header is 19)
    try:
        server.open(bytes(wire))
    except SecurityError:
        pass
    else:
        raise AssertionError(f"{kind} mutation at {i} was accepted")
