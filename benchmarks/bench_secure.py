"""Messages per second sealed and opened by a session, and the per-message overhead in bytes.

Run by hand::

    python benchmarks/bench_secure.py [--seconds 2]

For 256-byte and 64 KiB payloads and both AEADs, seals as many messages as fit in
``--seconds``, then times opening 50,000 (256 B) or 2,000 (64 KiB) sealed messages in order;
prints the rates, the handshake's rate and sizes, and a model bundle's overhead.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import cryptography

from tinylarge.secure import (
    DeviceHandshake,
    Identity,
    Registry,
    handshake,
    overhead_bytes,
    server_accept,
    sign_bundle,
    verify_bundle,
)
from tinylarge.secure.bundle import bundle_overhead_bytes


def rate(function, seconds: float) -> float:  # type: ignore[no-untyped-def]
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            function()
        count += 100
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, cryptography "
          f"{cryptography.__version__}")  # fmt: skip
    device, server = Identity.generate("sensor-01"), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    print(f"per-message overhead (device id {device.device_id!r}): "
          f"{overhead_bytes(device.device_id)} bytes")  # fmt: skip
    for aead in ("chacha20-poly1305", "aes-256-gcm"):
        for size in (256, 64 * 1024):
            sender, _ = handshake(device, server, registry, aead=aead, window=64)
            payload = os.urandom(size)
            seal_rate = rate(lambda: sender.seal(1, payload), args.seconds)  # noqa: B023
            opener, receiver = handshake(device, server, registry, aead=aead, window=64)
            sealed = [opener.seal(1, payload) for _ in range(50_000 if size <= 256 else 2_000)]
            started = time.perf_counter()
            for wire in sealed:  # every sealed message, in order
                receiver.open(wire)
            open_rate = len(sealed) / (time.perf_counter() - started)
            print(f"{aead:>18}, {size:>6,} B payload: seal {seal_rate:>9,.0f}/s, "
                  f"open {open_rate:>9,.0f}/s ({open_rate * size / 2**20:,.0f} MiB/s)")  # fmt: skip
    hs = DeviceHandshake(device)
    reply, _ = server_accept(hs.hello(), server, registry)
    per_s = rate(lambda: handshake(device, server, registry), args.seconds)
    print(f"handshake: hello {len(hs.hello())} B + reply {len(reply)} B; {per_s:,.0f}/s")
    model = os.urandom(4096)
    bundle = sign_bundle(model, 2, "stm32l4r5", server)
    verify_bundle(bundle, server.public_key, 1, "stm32l4r5")
    print(f"model bundle: {bundle_overhead_bytes(bundle)} B over a {len(model):,} B model")


if __name__ == "__main__":
    main()
