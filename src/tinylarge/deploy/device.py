"""One device agent: its MQTT connection, its secure session, its outstanding offloads and the
signed model bundles it installs.

A device handshakes when it learns of an edge (a new boot id retained on ``P/edge``). A hello
that goes unanswered (the edge is down, restarting, or died for good) is followed by a new one
after ``handshake_timeout_s``, then after twice as long each time up to
``hello_retry_max_s`` (exponential back-off: a dead edge is not flooded, one that comes back
is found). Until a session exists the device answers every request itself, so a device never
waits on an edge that is not there and nothing crashes for want of one.

Over a locked-down broker (``mqtts://``) a device connects with its own certificate (CN = its
device id); after a broker restart it reconnects with the same certificate and client id, so
its MQTT session and queued messages are found again. A connection that keeps failing is
diagnosed and its reason logged (`tinylarge.deploy.refusal`), then retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tinylarge.config.deploy_config import DeployConfig
from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.mqtt import persistent_client
from tinylarge.deploy.pki import TlsFiles
from tinylarge.deploy.protocol import Topics, request_id
from tinylarge.deploy.refusal import RefusalWatch
from tinylarge.secure.bundle import bundle_version, verify_bundle
from tinylarge.secure.errors import Rollback, SecurityError
from tinylarge.secure.handshake import DeviceHandshake
from tinylarge.secure.identity import Identity
from tinylarge.secure.messages import MessageType
from tinylarge.secure.session import Aead, Session
from tinylarge.tiny.graph import TinyModel, TinyModelError
from tinylarge.tiny.model_file import from_bytes

#: The scenario's ``[deploy]`` defaults (`tinylarge.config.deploy_config`): their one home.
_DEPLOY_DEFAULTS = DeployConfig()
#: Hellos a device keeps answers for: a welcome to any of its last few attempts finishes it.
_HELLOS_KEPT = 4


@dataclass(frozen=True)
class FleetConfig:
    """What every device shares.

    Attributes
    ----------
    deadline_s : float
        The reply timer, s: an offload not answered within it is answered by the device
        (default: ``deploy.reply_deadline_s`` of the scenario schema).
    handshake_timeout_s : float
        How long a fleet waits for every device's first handshake before its schedule starts
        anyway, and a device's wait before it sends a new hello, s.
    hello_retry_max_s : float
        Longest wait between two hellos of a device (the back-off doubles up to it), s.
    aead : str
        The sessions' AEAD.
    target : str
        Device class that model bundles must name (the MCU), as in `tinylarge.secure.bundle`.
    qos : {0, 1}
        MQTT QoS of the offloads (see `tinylarge.deploy.server.ServerConfig.qos`).
    """

    deadline_s: float = _DEPLOY_DEFAULTS.reply_deadline_s
    handshake_timeout_s: float = 5.0
    hello_retry_max_s: float = 30.0
    aead: Aead = "chacha20-poly1305"
    target: str = "device"
    qos: int = _DEPLOY_DEFAULTS.qos

    def __post_init__(self) -> None:
        if not (self.deadline_s > 0 and self.handshake_timeout_s > 0):
            raise ValueError(
                f"deadline_s and handshake_timeout_s must be > 0, got {self.deadline_s}, "
                f"{self.handshake_timeout_s}"
            )
        if not self.hello_retry_max_s >= self.handshake_timeout_s:
            raise ValueError(
                f"hello_retry_max_s ({self.hello_retry_max_s}) must be >= handshake_timeout_s "
                f"({self.handshake_timeout_s})"
            )
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, got {self.qos}")


class ModelStore:
    """The tiny models of the fleet by version: parsed once, shared by the devices that
    installed them (each device verifies the bundle itself)."""

    def __init__(self, shipped: TinyModel) -> None:
        self.by_version: dict[int, TinyModel] = {0: shipped}

    def add(self, version: int, model_bytes: bytes) -> None:
        if version not in self.by_version:
            self.by_version[version] = from_bytes(model_bytes, source=f"bundle v{version}")


class Device:
    """One device's connection, session and outstanding offloads; ``tls``: its certificate
    for a locked-down broker (None: a plain one)."""

    def __init__(
        self,
        identity: Identity,
        edge_key: Ed25519PublicKey,
        topics: Topics,
        config: FleetConfig,
        models: ModelStore | None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.identity, self.edge_key, self.topics, self.config = identity, edge_key, topics, config
        self.models, self.tls = models, tls
        #: Installed model version (0: the one the device shipped with) and when each came.
        self.version = 0
        self.installs: list[tuple[float, int]] = []
        self.refused: Counter[str] = Counter()
        self.id = identity.device_id
        self.session: Session | None = None
        self.attached = asyncio.Event()
        self.pending: dict[int, asyncio.Future[tuple[int, int]]] = {}
        self.edge_boot: bytes | None = None
        self.client: aiomqtt.Client | None = None
        #: this device's unanswered hellos since the edge it knows started, newest last
        self._handshakes: list[DeviceHandshake] = []
        self._handshaking: asyncio.Task[None] | None = None
        #: hellos that went unanswered for their whole wait (a new one followed each)
        self.hello_retries = 0
        self.rejected = 0
        #: request ids of the current session sent, and those a reply came for (in time or late)
        self._sent: set[int] = set()
        self._replied: set[int] = set()
        #: `time.monotonic` of each authenticated reply to no request or to one answered before
        self.unexpected: list[float] = []
        #: why the broker refused this device's connection, if it did (last run of failures)
        self.refusal: str | None = None

    def _new_edge(self) -> asyncio.Task[None]:
        """A (re)started edge: its sessions are gone; handshake with it until attached."""
        self.attached.clear()
        self.session = None
        self._handshakes = []
        if self._handshaking is not None:
            self._handshaking.cancel()
        self._handshaking = asyncio.ensure_future(self._handshake_until_attached())
        return self._handshaking

    async def _handshake_until_attached(self) -> None:
        """Send a hello (a new handshake each time) until a session exists, waiting
        ``handshake_timeout_s`` for the first answer and twice as long after each unanswered
        one, up to ``hello_retry_max_s`` (the module doc)."""
        wait = self.config.handshake_timeout_s
        while self.session is None:
            handshake = DeviceHandshake(self.identity, self.config.aead)
            self._handshakes = [*self._handshakes[1 - _HELLOS_KEPT :], handshake]
            client = self.client
            if client is not None:  # not connected: the next attempt, after the wait
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(self.topics.hello(self.id), handshake.hello(), qos=1)
            try:
                await asyncio.wait_for(self.attached.wait(), wait)
            except TimeoutError:
                self.hello_retries += 1
                wait = min(2 * wait, self.config.hello_retry_max_s)

    def _finish(self, welcome: bytes) -> Session | None:
        """The session a welcome answers (to any of the kept hellos, newest first), or None
        if it answers none of them."""
        for handshake in reversed(self._handshakes):
            try:
                return handshake.finish(welcome, self.edge_key)
            except SecurityError:
                continue
        return None

    def _on_message(self, topic: str, payload: bytes) -> asyncio.Task[None] | None:
        """Handle one message; a task when it needs to send (a new handshake)."""
        if topic == self.topics.edge:
            if payload != self.edge_boot:  # a (re)started edge: its sessions are gone
                self.edge_boot = payload
                return self._new_edge()
        elif topic == self.topics.model:
            self._install(payload)
        elif topic == self.topics.welcome(self.id) and self._handshakes:
            session = self._finish(payload)
            if session is None:
                self.rejected += 1
                return None
            self.session, self._handshakes = session, []
            self._sent.clear()  # request ids restart with the session's sequence numbers
            self._replied.clear()
            self.attached.set()
        elif topic == self.topics.down(self.id) and self.session is not None:
            try:
                msg_type, reply = self.session.open(payload)
                if msg_type != MessageType.REPLY:
                    raise ValueError("not a reply")
            except (SecurityError, ValueError):
                self.rejected += 1
                return None
            self._reply(int.from_bytes(reply[:4], "little"), len(payload), reply[4])
        return None

    def _reply(self, request: int, wire_bytes: int, answer: int) -> None:
        """An authenticated reply: answer the waiting request; a late one for a request that
        timed out is dropped; one for no request, or a second one, is recorded as unexpected
        (the edge accepted a frame this device did not send, or one it sent before)."""
        if request not in self._sent or request in self._replied:
            self.unexpected.append(time.monotonic())
            return
        self._replied.add(request)
        future = self.pending.pop(request, None)
        if future is not None and not future.done():
            future.set_result((wire_bytes, answer))

    def _install(self, bundle: bytes) -> None:
        """Verify a pushed bundle (signature, hash, target, no rollback) and install it (a
        device without a model store, e.g. a language-model device, installs none)."""
        if self.models is None:
            self.refused["NoModelStore"] += 1
            return
        try:
            model = verify_bundle(bundle, self.edge_key, self.version, self.config.target)
            version = bundle_version(bundle)
            self.models.add(version, model)
        except Rollback:
            if self.version and bundle_version(bundle) == self.version:
                return  # the retained copy of what is installed, again after a reconnect
            self.refused["Rollback"] += 1
            return
        except (SecurityError, TinyModelError) as error:
            self.refused[type(error).__name__] += 1
            return
        self.version = version
        self.installs.append((time.monotonic(), version))

    async def run(self, address: BrokerAddress, stop: asyncio.Event) -> None:
        """Stay connected (reconnecting after a broker restart) until ``stop``; cancelled
        without ``stop`` (a disconnection), a handshake in progress goes on retrying. A run of
        failed connections is diagnosed once and its reason logged (`RefusalWatch`)."""
        watch = RefusalWatch(address, self.tls, f"device {self.id}")
        try:
            while not stop.is_set():
                watch.begin()
                try:
                    await self._connection(address, watch)
                except aiomqtt.MqttError:
                    self.client = None
                    self.attached.clear()
                    refused = await watch.failed()
                    if refused is not None:
                        self.refusal = refused.reason
                    await asyncio.sleep(0.2)
                finally:
                    self.client = None  # cancelled or reconnecting: nothing to send on
        finally:
            if stop.is_set() and self._handshaking is not None:
                self._handshaking.cancel()

    async def _connection(self, address: BrokerAddress, watch: RefusalWatch) -> None:
        """One connection to the broker: subscribe, then handle messages until it drops."""
        identifier = f"{self.topics.prefix}-{self.id}"
        async with persistent_client(address, identifier, tls=self.tls) as client:
            watch.connected()
            self.refusal = None
            self.client = client
            for topic in (self.topics.welcome(self.id), self.topics.down(self.id)):
                await client.subscribe(topic, qos=1)
            await client.subscribe(self.topics.edge, qos=1)
            await client.subscribe(self.topics.model, qos=1)
            tasks: set[asyncio.Task[None]] = set()
            async for message in client.messages:
                task = self._on_message(str(message.topic), bytes(message.payload))
                if task is not None:
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

    async def offload(self, frame: bytes, deadline_s: float) -> tuple[int, int, int] | None:
        """Send ``frame``; ``(class, bytes up, bytes down)`` if answered in time, else None."""
        session, client = self.session, self.client
        if session is None or client is None:
            return None
        request = request_id(session.next_seq)  # the sequence number in the header
        wire = session.seal(MessageType.FRAME, frame)
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self.pending[request] = future
        self._sent.add(request)
        try:
            await client.publish(self.topics.up(self.id), wire, qos=self.config.qos)
            down, answer = await asyncio.wait_for(future, deadline_s)
        except (TimeoutError, aiomqtt.MqttError):
            self.pending.pop(request, None)
            return None
        return answer, len(wire), down
