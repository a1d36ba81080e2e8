"""Mutation campaign over the session wire format: no mutated message may be accepted.

Run by hand::

    python benchmarks/fuzz_wire.py [--messages 100000] [--seed 0]

Seals genuine messages (random payloads of 0..512 bytes, random message types) on a fresh
session, mutates each one (bit flips, truncation, extension, reordering of two chunks, replay
of an accepted message, header field changes, a forged device id, a message from another
session), and hands it to the receiving session. Prints how many were accepted (must be 0) and
how many of each `SecurityError` subclass rejected them; any other exception is a failure.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from tinylarge.secure import Identity, Registry, SecurityError, handshake

MUTATIONS = ("flip", "truncate", "extend", "reorder", "replay", "header", "forged_id", "foreign")


def mutate(kind: str, wire: bytes, rng: np.random.Generator, other: bytes) -> bytes:
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
        field = int(rng.integers(4))
        if field == 0:
            data[0] = int(rng.integers(2, 256))  # version
        elif field == 1:
            data[1] ^= int(rng.integers(1, 256))  # message type
        elif field == 2:
            data[2] = int(rng.integers(0, 256))  # device-id length
        else:
            data[3 + data[2] + int(rng.integers(8))] ^= int(rng.integers(1, 256))  # sequence
    elif kind == "forged_id":
        data[3] ^= int(rng.integers(1, 256))
    elif kind == "foreign":
        return other  # a genuine message of another session, same device id
    return bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    device, server_id = Identity.generate("sensor-01"), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    sender, receiver = handshake(device, server_id, registry)
    other_sender, _ = handshake(device, server_id, registry)
    accepted, outcomes = 0, collections.Counter[str]()
    started = time.perf_counter()
    for i in range(args.messages):
        kind = MUTATIONS[i % len(MUTATIONS)]
        payload = rng.bytes(int(rng.integers(0, 513)))
        wire = sender.seal(int(rng.integers(256)), payload)
        if kind == "replay":
            receiver.open(wire)  # the genuine message is accepted once...
            bad = wire  # ...and its replay must not be
        else:
            bad = wire
            while bad == wire:  # flips that cancel, or a field set to its own value: redraw
                bad = mutate(kind, wire, rng, other_sender.seal(1, payload))
        try:
            receiver.open(bad)
        except SecurityError as error:
            outcomes[f"{kind}: {type(error).__name__}"] += 1
        else:
            accepted += 1
            print(f"ACCEPTED a {kind} mutation (message {i})")
    seconds = time.perf_counter() - started
    print(f"{args.messages:,} mutated messages in {seconds:.1f} s; accepted: {accepted}")
    for key, count in sorted(outcomes.items()):
        print(f"  {key:<28} {count:>8,}")
    print("PASS" if accepted == 0 and sum(outcomes.values()) == args.messages else "FAIL")


if __name__ == "__main__":
    main()
