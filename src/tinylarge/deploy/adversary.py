"""A hostile MQTT client for fault runs: it eavesdrops on a deployment, then floods it with
forged, mutated and replayed messages, and publishes model bundles that must not install.

The broker has no access control in these runs (a local listener with
`allow_anonymous true`), so anyone can read and write every topic; what keeps the system safe
is the security layer alone. The mutations are the wire fuzzer's own
(`tinylarge.secure.fuzz.mutate`). The client subscribes to the topics of the identities it
invents, so a reply the edge sends to any of them is counted: the edge must never answer a
forged message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque

import aiomqtt
import numpy as np

from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.protocol import Topics
from tinylarge.secure.bundle import sign_bundle
from tinylarge.secure.fuzz import MUTATIONS, mutate
from tinylarge.secure.handshake import DeviceHandshake
from tinylarge.secure.identity import Identity

#: What the flood sends, in turn: replays of captured hellos, offloads and replies, an
#: unenrolled device's hello, bytes that are no message at all, and the fuzzer's mutations of
#: captured offloads.
FLOOD_KINDS = (
    "replay_hello",
    "replay_up",
    "replay_down",
    "unenrolled_hello",
    "garbage",
    *(f"mutated_{m}" for m in MUTATIONS if m != "replay"),
)
#: Captured messages kept per kind (the most recent).
CAPTURE = 256


class Adversary:
    """Eavesdrop from `run` on; `flood` and `publish_bad_bundles` when told."""

    def __init__(self, address: BrokerAddress, topics: Topics, *, seed: int = 0) -> None:
        self.address, self.topics = address, topics
        self.rng = np.random.default_rng(seed)
        self.captured: dict[str, deque[tuple[str, bytes]]] = {
            kind: deque(maxlen=CAPTURE) for kind in ("hello", "up", "down")
        }
        self.strangers = [Identity.generate(f"intruder-{k}") for k in range(8)]
        #: messages the edge sent to invented identities (must stay 0)
        self.answered = 0
        self.sent: Counter[str] = Counter()
        self._client: aiomqtt.Client | None = None
        #: what it published itself (the broker echoes it back: not a capture)
        self._mine: set[bytes] = set()
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Listen (reconnecting after a broker restart) until ``stop`` or cancelled."""
        while not stop.is_set():
            try:
                async with aiomqtt.Client(self.address.host, self.address.port) as client:
                    self._client = client
                    for kind in ("hello", "up", "down"):
                        await client.subscribe(f"{self.topics.prefix}/{kind}/+", qos=0)
                    for stranger in self.strangers:
                        await client.subscribe(self.topics.welcome(stranger.device_id), qos=0)
                    self.connected.set()
                    async for message in client.messages:
                        self._heard(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError:
                self.connected.clear()
                self._client = None
                await asyncio.sleep(0.2)

    def _heard(self, topic: str, payload: bytes) -> None:
        kind, device_id = self.topics.parse(topic)
        if device_id.startswith("intruder-"):
            if kind in ("welcome", "down"):
                self.answered += 1  # the edge answered a forgery
            return
        if kind in self.captured and payload not in self._mine:
            self.captured[kind].append((topic, payload))

    def _pick(self, kind: str) -> tuple[str, bytes] | None:
        pool = self.captured[kind]
        return pool[int(self.rng.integers(len(pool)))] if pool else None

    def _message(self, kind: str) -> tuple[str, bytes] | None:
        """One hostile message of ``kind`` (None: nothing captured to build it from yet)."""
        if kind.startswith("replay_"):
            return self._pick(kind.removeprefix("replay_"))
        if kind == "unenrolled_hello":
            stranger = self.strangers[int(self.rng.integers(len(self.strangers)))]
            return self.topics.hello(stranger.device_id), DeviceHandshake(stranger).hello()
        if kind == "garbage":
            size = int(self.rng.integers(1, 300))
            return self.topics.up(self.strangers[0].device_id), self.rng.bytes(size)
        victim, other = self._pick("up"), self._pick("up")
        if victim is None or other is None:
            return None
        topic, wire = victim
        return topic, mutate(kind.removeprefix("mutated_"), wire, self.rng, other[1])

    async def flood(self, duration_s: float, rate_hz: float) -> Counter[str]:
        """Send ``rate_hz`` hostile messages a second for ``duration_s``, the kinds in turn;
        how many of each were sent."""
        await asyncio.wait_for(self.connected.wait(), 30)
        loop = asyncio.get_running_loop()
        start, n = loop.time(), round(duration_s * rate_hz)
        for k in range(n):
            kind = FLOOD_KINDS[k % len(FLOOD_KINDS)]
            message, client = self._message(kind), self._client
            if message is not None and client is not None:
                self._mine.add(message[1])
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(message[0], message[1], qos=0)
                    self.sent[kind] += 1
            await asyncio.sleep(max(0.0, start + (k + 1) / rate_hz - loop.time()))
        return self.sent

    async def publish(self, topic: str, payloads: list[bytes], kind: str) -> None:
        """Publish ``payloads`` on ``topic`` (QoS 1), counted as ``kind``."""
        await asyncio.wait_for(self.connected.wait(), 30)
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("the adversary is not connected")
        for payload in payloads:
            await client.publish(topic, payload, qos=1)
            self.sent[kind] += 1


def bad_bundles(
    model_bytes: bytes, target: str, edge: Identity, installed_version: int, seed: int = 0
) -> dict[str, tuple[bytes, int]]:
    """Bundles no device may install, ``{kind: (bundle, version it claims)}``.

    ``bit_flip``: a bundle the edge signed (``edge`` is its identity: this is corruption in
    storage or transit, not forgery), one model byte flipped afterwards; the signature covers
    the manifest, the manifest's SHA-256 the model. ``foreign_key``: signed by a key that is
    not the edge's. ``garbage``: bytes that are no bundle. ``rollback`` (when the devices have
    version 2 or later): the edge's own signature on an older version.
    """
    rng = np.random.default_rng(seed)
    ahead = installed_version + 1000
    corrupted = bytearray(sign_bundle(model_bytes, ahead, target, edge))
    corrupted[-1 - int(rng.integers(len(model_bytes)))] ^= 0x40
    bundles = {
        "bit_flip": (bytes(corrupted), ahead),
        "foreign_key": (
            sign_bundle(model_bytes, ahead + 1, target, Identity.generate("edge")),
            ahead + 1,
        ),
        "garbage": (rng.bytes(512), -1),
    }
    if installed_version >= 2:
        old = installed_version - 1
        bundles["rollback"] = (sign_bundle(model_bytes, old, target, edge), old)
    return bundles
