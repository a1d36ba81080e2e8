"""A hostile MQTT client for fault runs: it eavesdrops on a deployment, then floods it with
forged, mutated and replayed messages, and publishes model bundles that must not install.

On an open broker (transport ``mqtt``: a local listener with ``allow_anonymous true``) anyone
can read and write every topic; what keeps the system safe is the security layer alone. The
mutations are the wire fuzzer's own (`tinylarge.secure.fuzz.mutate`). The client subscribes to
the topics of the identities it invents, so a reply the edge sends to any of them is counted:
the edge must never answer a forged message.

On a locked-down broker (``mqtts://``, `tinylarge.deploy.broker.BrokerSecurity`) the adversary
holds `StolenCredentials`: one real device's certificate and key (a device taken apart), the
project CA's certificate (public) and a revoked certificate. It connects with the stolen
certificate under a client id of its own (the real device stays connected), subscribes to
everything as before, and floods `STOLEN_FLOOD_KINDS` at QoS 1, so that the broker's MQTT 5
PUBACK says which publishes its ACL refused (reason 0x87, "Not authorized"; MQTT 5.0 section
3.4.2.1); aiomqtt drops that code, so the adversary reads it from paho's ``on_publish``
underneath. Before the flood it tries to connect without a certificate and with the revoked
one (`probe`), and `refused` counts what the broker refused, by reason
(``no_certificate``, ``revoked``, ``acl_denied``, ...). `overheard` counts messages it received
on other devices' topics: the ACL must keep it at 0.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import aiomqtt
import numpy as np

from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.mqtt import NODELAY, diagnose_refusal, tls_context
from tinylarge.deploy.pki import TlsFiles
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
#: What the flood sends in turn with a stolen device certificate on a locked-down broker:
#: hellos in the stolen device's name signed with a key that is not its own, and garbage on its
#: uplink (the ACL lets both through: the edge must refuse them); replays of the stolen
#: device's captured replies on its downlink, an unenrolled device's hello, and garbage on
#: another device's uplink (the ACL must refuse these three).
STOLEN_FLOOD_KINDS = (
    "forged_hello",
    "garbage_own_up",
    "replay_down",
    "unenrolled_hello",
    "garbage_other_up",
)
#: Of `STOLEN_FLOOD_KINDS`, those on topics the stolen certificate may not write.
ACL_DENIED_KINDS = ("replay_down", "unenrolled_hello", "garbage_other_up")
#: Captured messages kept per kind (the most recent).
CAPTURE = 256
#: MQTT 5 reason code "Not authorized" (MQTT 5.0 section 2.4, table 2-6).
NOT_AUTHORIZED = 0x87
#: The refusals the adversary of a locked-down broker looks for (`Adversary.refused`).
OBSERVED_REFUSALS = ("no_certificate", "revoked", "acl_denied")


@dataclass(frozen=True)
class StolenCredentials:
    """What the adversary holds against a locked-down broker.

    Attributes
    ----------
    device_id : str
        The device whose certificate was stolen (a real, enrolled one).
    stolen : TlsFiles
        That device's certificate and private key, and the project CA.
    revoked : TlsFiles
        A certificate of the project CA that was revoked before the run.
    others : tuple of str
        Other devices' ids, whose topics it tries.
    """

    device_id: str
    stolen: TlsFiles
    revoked: TlsFiles
    others: tuple[str, ...]


class Adversary:
    """Eavesdrop from `run` on; `flood` and `publish_bad_bundles` when told."""

    def __init__(
        self,
        address: BrokerAddress,
        topics: Topics,
        *,
        seed: int = 0,
        credentials: StolenCredentials | None = None,
    ) -> None:
        if address.tls != (credentials is not None):
            raise ValueError(
                "an adversary of a locked-down broker (mqtts://) needs stolen credentials, and "
                f"one of an open broker none; got {address.url} with credentials "
                f"{'given' if credentials else 'missing'}"
            )
        self.address, self.topics, self.credentials = address, topics, credentials
        self.rng = np.random.default_rng(seed)
        self.captured: dict[str, deque[tuple[str, bytes]]] = {
            kind: deque(maxlen=CAPTURE) for kind in ("hello", "up", "down")
        }
        self.strangers = [Identity.generate(f"intruder-{k}") for k in range(8)]
        #: messages the edge sent to invented identities (must stay 0)
        self.answered = 0
        self.sent: Counter[str] = Counter()
        self._connection: aiomqtt.Client | None = None
        #: what it published itself (the broker echoes it back: not a capture)
        self._mine: set[bytes] = set()
        self.connected = asyncio.Event()
        #: what the broker refused it, by reason (a locked-down broker only; the reasons it
        #: looks for start at 0)
        self.refused: Counter[str] = Counter()
        if credentials is not None:
            self.refused.update(dict.fromkeys(OBSERVED_REFUSALS, 0))
        #: messages received on another device's topics (a locked-down broker: must stay 0)
        self.overheard = 0
        self.kinds = FLOOD_KINDS if credentials is None else STOLEN_FLOOD_KINDS
        if credentials is not None:  # the stolen name, not the stolen device's signing key
            self.impostor = Identity.generate(credentials.device_id)

    def _client(self) -> aiomqtt.Client:
        """A client of the open broker, or one with the stolen certificate whose refused
        publishes are counted (`refused`, from paho's ``on_publish``: aiomqtt drops the MQTT 5
        reason code)."""
        if self.credentials is None:
            return aiomqtt.Client(self.address.host, self.address.port)
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            identifier=f"{self.topics.prefix}-intruder",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=tls_context(self.credentials.stolen),
            socket_options=NODELAY,
        )
        paho = client._client
        forward = paho.on_publish

        def on_publish(*args: Any) -> None:  # (client, userdata, mid, reason_code, properties)
            if getattr(args[3], "value", args[3]) == NOT_AUTHORIZED:
                self.refused["acl_denied"] += 1
            if forward is not None:
                forward(*args)

        paho.on_publish = on_publish
        return client

    async def probe(self) -> Counter[str]:
        """Try to connect without a certificate and with the revoked one (a locked-down broker
        only); count the reasons the broker refused them in `refused`; those reasons."""
        found: Counter[str] = Counter()
        credentials = self.credentials
        if credentials is None:
            return found
        for files in (None, credentials.revoked):
            refusal = await asyncio.to_thread(diagnose_refusal, self.address, files)
            found[refusal.reason if refusal is not None else "accepted"] += 1
        self.refused.update({k: v for k, v in found.items() if k != "accepted"})
        return found

    async def run(self, stop: asyncio.Event) -> None:
        """Listen (reconnecting after a broker restart) until ``stop`` or cancelled."""
        while not stop.is_set():
            try:
                async with self._client() as client:
                    self._connection = client
                    for kind in ("hello", "up", "down"):
                        await client.subscribe(f"{self.topics.prefix}/{kind}/+", qos=0)
                    for stranger in self.strangers:
                        await client.subscribe(self.topics.welcome(stranger.device_id), qos=0)
                    self.connected.set()
                    async for message in client.messages:
                        self._heard(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError:
                self.connected.clear()
                self._connection = None
                await asyncio.sleep(0.2)

    def _heard(self, topic: str, payload: bytes) -> None:
        kind, device_id = self.topics.parse(topic)
        if self.credentials is not None and device_id != self.credentials.device_id:
            self.overheard += 1
        if device_id.startswith("intruder-"):
            if kind in ("welcome", "down"):
                self.answered += 1  # the edge answered a forgery
            return
        if kind in self.captured and payload not in self._mine:
            self.captured[kind].append((topic, payload))

    def _pick(self, kind: str) -> tuple[str, bytes] | None:
        pool = self.captured[kind]
        return pool[int(self.rng.integers(len(pool)))] if pool else None

    def _stolen_message(self, kind: str, stolen: StolenCredentials) -> tuple[str, bytes] | None:
        """One message of `STOLEN_FLOOD_KINDS` (None: nothing captured to build it from yet)."""
        if kind == "forged_hello":
            return self.topics.hello(stolen.device_id), DeviceHandshake(self.impostor).hello()
        if kind == "garbage_own_up":
            return self.topics.up(stolen.device_id), self.rng.bytes(int(self.rng.integers(1, 300)))
        if kind == "garbage_other_up":
            victim = stolen.others[int(self.rng.integers(len(stolen.others)))]
            return self.topics.up(victim), self.rng.bytes(int(self.rng.integers(1, 300)))
        return None

    def _message(self, kind: str) -> tuple[str, bytes] | None:
        """One hostile message of ``kind`` (None: nothing captured to build it from yet)."""
        if self.credentials is not None and kind not in ("replay_down", "unenrolled_hello"):
            return self._stolen_message(kind, self.credentials)
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
        how many of each were sent. With stolen credentials, `probe` first, and the flood at
        QoS 1 (the broker's PUBACK then says what it refused)."""
        await asyncio.wait_for(self.connected.wait(), 30)
        await self.probe()
        qos = 0 if self.credentials is None else 1
        loop = asyncio.get_running_loop()
        start, n = loop.time(), round(duration_s * rate_hz)
        for k in range(n):
            kind = self.kinds[k % len(self.kinds)]
            message, client = self._message(kind), self._connection
            if message is not None and client is not None:
                self._mine.add(message[1])
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(message[0], message[1], qos=qos)
                    self.sent[kind] += 1
            await asyncio.sleep(max(0.0, start + (k + 1) / rate_hz - loop.time()))
        return self.sent

    async def publish(self, topic: str, payloads: list[bytes], kind: str) -> None:
        """Publish ``payloads`` on ``topic`` (QoS 1), counted as ``kind``."""
        await asyncio.wait_for(self.connected.wait(), 30)
        client = self._connection
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
