"""Mutation campaign over the session wire format (shared by the pipeline and the benchmark).

Seals genuine messages (random payloads of 0..512 bytes, random types) on a fresh session,
mutates each one (bit flips, truncation, extension, rotation of its bytes, replay of an accepted
message, header field edits, a forged device id, a genuine message of another session) and
hands it to the receiver. A mutation must change the bytes (draws that do not are redrawn).
Every rejection must be a `SecurityError`; anything else propagates and fails the campaign.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from tinylarge.secure.errors import SecurityError
from tinylarge.secure.handshake import handshake
from tinylarge.secure.identity import Identity, Registry

MUTATIONS = ("flip", "truncate", "extend", "reorder", "replay", "header", "forged_id", "foreign")


def mutate(kind: str, wire: bytes, rng: np.random.Generator, other: bytes) -> bytes:
    """One mutation of ``wire`` (``other``: a genuine message of another session)."""
    data = bytearray(wire)
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        del data[int(rng.integers(len(data))) :]
    elif kind == "extend":
        data += rng.bytes(int(rng.integers(1, 32)))
    elif kind == "reorder":
        cut = int(rng.integers(1, len(data)))
        data = data[cut:] + data[:cut]
    elif kind == "header":
        which = int(rng.integers(4))
        if which == 0:
            data[0] = int(rng.integers(2, 256))  # version
        elif which == 1:
            data[1] ^= int(rng.integers(1, 256))  # message type
        elif which == 2:
            data[2] = int(rng.integers(0, 256))  # device-id length
        else:
            data[3 + data[2] + int(rng.integers(8))] ^= int(rng.integers(1, 256))  # sequence
    elif kind == "forged_id":
        data[3] ^= int(rng.integers(1, 256))
    elif kind == "foreign":
        return other
    else:
        raise ValueError(f"unknown mutation {kind!r}; known: {', '.join(MUTATIONS)}")
    return bytes(data)


@dataclass
class FuzzSummary:
    """How many mutated messages were accepted (must be 0) and why the others were refused."""

    messages: int = 0
    accepted: int = 0
    rejections: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"messages": self.messages, "accepted": self.accepted, "rejections": self.rejections}


def fuzz_wire(messages: int, seed: int) -> FuzzSummary:
    """Run ``messages`` mutations (cycling through `MUTATIONS`) against one session."""
    rng = np.random.default_rng(seed)
    device, server = Identity.generate("sensor-01"), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    sender, receiver = handshake(device, server, registry)
    other, _ = handshake(device, server, registry)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    summary = FuzzSummary()
    for i in range(messages):
        kind = MUTATIONS[i % len(MUTATIONS)]
        payload = rng.bytes(int(rng.integers(0, 513)))
        wire = sender.seal(int(rng.integers(256)), payload)
        if kind == "replay":
            receiver.open(wire)  # the genuine message is accepted once; its replay must not be
            bad = wire
        else:
            bad = wire
            while bad == wire:
                bad = mutate(kind, wire, rng, other.seal(1, payload))
        summary.messages += 1
        try:
            receiver.open(bad)
        except SecurityError as error:
            counts[kind][type(error).__name__] += 1
        else:
            summary.accepted += 1
    summary.rejections = {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}
    return summary
