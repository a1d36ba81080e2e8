"""A device of the hybrid language model on MQTT: its connection, session and token
exchanges with the edge.

`LmDevice` is a `tinylarge.deploy.device.Device` (connection, reconnection, handshakes with
back-off, the session) whose replies are token replies. `LmDevice.exchange` sends one token's
request and waits for its reply: it re-sends the request every ``retry_s`` (the edge answers a
repeat from its cache), re-sends it FULL when the edge answers SYNC or the device has a new
session (a restarted edge knows nothing of it), waits out a broker restart, and gives up at the
deadline; after giving up, the device's next request is FULL (the edge may have decided that
token, differently from the device's own). What a device does with each token (draft, keep or
send) is `tinylarge.deploy.hlm_fleet.TokenStream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tinylarge.deploy.device import Device, FleetConfig
from tinylarge.deploy.hlm_protocol import SYNC, TokenEnvelope, decode_reply
from tinylarge.deploy.pki import TlsFiles
from tinylarge.deploy.protocol import Topics, publish_packet_bytes, request_id
from tinylarge.integrate.hybrid_lm.wire import TokenReply, decode
from tinylarge.secure.errors import SecurityError
from tinylarge.secure.identity import Identity
from tinylarge.secure.messages import MessageType
from tinylarge.secure.session import Session
from tinylarge.secure.transport import Transport, stream_bytes


@dataclass
class Exchange:
    """What one token's exchange with the edge cost and brought.

    Attributes
    ----------
    reply : TokenReply or None
        The edge's token (None: no reply in time).
    payload_up : int
        Payload of the first request sent (the scheme's message and the envelope), bytes.
    bytes_up, bytes_down : int
        Sealed messages sent (all attempts the broker took) and received, bytes.
    mqtt_bytes_up, mqtt_bytes_down : int
        The MQTT PUBLISH packets around them, bytes.
    transport_bytes_up, transport_bytes_down : int
        What those packets put on the TCP stream over the device's transport (in TLS 1.3
        records over a locked-down broker; `tinylarge.secure.transport.stream_bytes` per
        packet), bytes.
    attempts, full : int
        Requests sent, and how many of them were FULL.
    request_id : int
        The session request id of the last request sent (-1: none sent).
    published_s, replied_s : float
        `time.monotonic` when the last request was handed to MQTT and when the reply the
        device took arrived (NaN: none), s. With one attempt their difference is the round
        trip over the broker and the edge, without the emulated radio.
    """

    reply: TokenReply | None = None
    payload_up: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    mqtt_bytes_up: int = 0
    mqtt_bytes_down: int = 0
    transport_bytes_up: int = 0
    transport_bytes_down: int = 0
    attempts: int = 0
    full: int = 0
    request_id: int = -1
    published_s: float = math.nan
    replied_s: float = math.nan


class LmDevice(Device):
    """A `Device` that exchanges token requests and replies (see the module doc)."""

    def __init__(
        self,
        identity: Identity,
        edge_key: Ed25519PublicKey,
        topics: Topics,
        config: FleetConfig,
        vocab_size: int,
        tls: TlsFiles | None = None,
    ) -> None:
        super().__init__(identity, edge_key, topics, config, None, tls)
        self.vocab_size = vocab_size
        #: the session under which the edge follows this device's sequence (None: send FULL)
        self.in_step: Session | None = None
        #: authenticated replies nobody waited for (late, or repeated), and SYNCs received
        self.late_replies = 0
        self.syncs = 0
        #: per sequence index awaited: (status, reply, sealed size in bytes, arrival monotonic s)
        self._waiting: dict[int, asyncio.Future[tuple[int, TokenReply | None, int, float]]] = {}

    @property
    def transport(self) -> Transport:
        """What the device's MQTT packets travel in: ``mqtt-tls`` with a certificate (a
        locked-down broker, which `tinylarge.deploy.mqtt.persistent_client` insists on), else
        ``mqtt``."""
        return "mqtt" if self.tls is None else "mqtt-tls"

    def _on_message(self, topic: str, payload: bytes) -> asyncio.Task[None] | None:
        if topic == self.topics.down(self.id):
            self._token_reply(payload)
            return None
        return super()._on_message(topic, payload)

    def _token_reply(self, wire: bytes) -> None:
        """Open a reply and hand it to the exchange waiting for its token; anything that
        does not open or decode is counted (``rejected``)."""
        arrived, session = time.monotonic(), self.session
        try:
            if session is None:
                raise ValueError("no session")
            msg_type, payload = session.open(wire)
            envelope = decode_reply(payload)
            reply = None if envelope.status == SYNC else decode(envelope.body, self.vocab_size)
            if msg_type != MessageType.TOKEN_REPLY or not isinstance(reply, TokenReply | None):
                raise ValueError("not a token reply")
        except (SecurityError, ValueError):
            self.rejected += 1
            return
        future = self._waiting.get(envelope.decided)
        if future is None or future.done():
            self.late_replies += 1
            return
        future.set_result((envelope.status, reply, len(wire), arrived))

    async def _publish(self, envelope: TokenEnvelope, out: Exchange, timeout_s: float) -> bool:
        """Seal and publish one request under the current session; False when there is no
        session or connection, or the broker did not take it within ``timeout_s`` seconds
        (a broker going away: the caller tries again; a copy that did get through is a
        repeat the edge answers from its cache)."""
        session, client = self.session, self.client
        if session is None or client is None:
            return False
        payload = envelope.encode()
        sequence, published = session.next_seq, time.monotonic()
        wire = session.seal(MessageType.TOKEN_REQUEST, payload)
        topic = self.topics.up(self.id)
        try:
            await client.publish(topic, wire, qos=self.config.qos, timeout=timeout_s)
        except aiomqtt.MqttError:
            return False
        out.request_id, out.published_s = request_id(sequence), published
        out.payload_up = out.payload_up or len(payload)
        out.attempts += 1
        out.full += envelope.full
        out.bytes_up += len(wire)
        packet = publish_packet_bytes(topic, len(wire), qos=self.config.qos)
        out.mqtt_bytes_up += packet
        out.transport_bytes_up += int(stream_bytes(self.transport, packet))
        return True

    async def exchange(
        self,
        envelope: Callable[[bool], TokenEnvelope],
        decided: int,
        deadline_s: float,
        retry_s: float,
    ) -> Exchange:
        """Ask the edge for the token at sequence index ``decided`` (module doc).

        ``envelope(full)`` builds the request, FULL or not; the deadline counts from the call,
        s. A request is re-sent after ``retry_s`` seconds without a reply.
        """
        loop, out = asyncio.get_running_loop(), Exchange()
        end = time.monotonic() + deadline_s
        future = self._waiting[decided] = loop.create_future()
        try:
            while (left := end - time.monotonic()) > 0:
                full = self.in_step is not self.session
                sent = await self._publish(envelope(full), out, min(left, retry_s))
                if not sent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.attached.wait(), min(left, retry_s))
                    await asyncio.sleep(min(max(0.0, end - time.monotonic()), 0.02))
                    continue
                try:
                    status, reply, size, arrived = await asyncio.wait_for(
                        asyncio.shield(future), min(max(0.0, end - time.monotonic()), retry_s)
                    )
                except TimeoutError:
                    continue
                out.bytes_down += size
                # delivered at the edge's QoS (the device subscribes at 1, the edge publishes
                # at the run's qos: MQTT 5.0 section 3.8.3.1, the lower of the two)
                packet = publish_packet_bytes(self.topics.down(self.id), size, qos=self.config.qos)
                out.mqtt_bytes_down += packet
                out.transport_bytes_down += int(stream_bytes(self.transport, packet))
                if status == SYNC:
                    self.syncs += 1
                    self.in_step = None
                    future = self._waiting[decided] = loop.create_future()
                    continue
                self.in_step, out.reply, out.replied_s = self.session, reply, arrived
                return out
            self.in_step = None  # the edge may have decided this token: resynchronise
            return out
        finally:
            self._waiting.pop(decided, None)
