"""The edge server: answers offloads from many devices over MQTT with dynamic batching.

One asyncio task reads the broker, another batches. A message is checked completely before it
costs any model time: the topic names a device, the device has a session (after a signed
handshake against the registry), the session opens the message (header, replay window,
authentication tag), it is a FRAME of the right size. Anything else is counted by reason and
dropped; one device's garbage never delays another's answer. A new handshake's session
replaces the device's current one only once a message opens under it (a replayed hello must not
cut a device off: `tinylarge.secure.session_table`). Accepted frames wait in a queue;
the batcher takes the first, then up to ``max_batch - 1`` more that arrive within
``max_wait_s`` (dynamic batching as in NVIDIA Triton's dynamic batcher), runs the model in a
worker thread and seals one REPLY per request.

Lost connections (a restarted broker) are retried with back-off; the broker keeps the server's
subscriptions and queued messages (MQTT 5 session expiry), and devices re-send what was not
answered. A new server process publishes a new boot id (retained on ``P/edge``): devices then
handshake again, since sessions live in memory only.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import numpy as np
import numpy.typing as npt

from tinylarge.config.deploy_config import DeployConfig
from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.clock import PreciseTimer
from tinylarge.deploy.keys import load_registry
from tinylarge.deploy.live_loop import LiveLoop
from tinylarge.deploy.metrics_endpoint import EdgeMetrics
from tinylarge.deploy.mqtt import persistent_client
from tinylarge.deploy.pki import TlsFiles
from tinylarge.deploy.protocol import Topics, encode_reply, request_id
from tinylarge.deploy.refusal import RefusalWatch
from tinylarge.integrate.inference.frame_codec import dequantize_input
from tinylarge.net.edge_service import fit_batch_service
from tinylarge.net.message_stats import percentile_summary
from tinylarge.secure.errors import SecurityError, UnknownDevice
from tinylarge.secure.handshake import server_accept
from tinylarge.secure.identity import Identity, Registry
from tinylarge.secure.messages import MessageType
from tinylarge.secure.session import Session
from tinylarge.secure.session_table import SessionTable

#: Logits of a batch of float frames, shape (n, C); run in a worker thread.
Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
#: Replies being published at once (QoS 1 messages awaiting their PUBACK).
MAX_IN_FLIGHT = 1000
#: The scenario's ``[deploy]`` defaults (`tinylarge.config.deploy_config`): their one home.
_DEPLOY_DEFAULTS = DeployConfig()


@dataclass(frozen=True)
class ServerConfig:
    """How the edge server batches and what it accepts.

    Attributes
    ----------
    frame_shape : tuple of int
        Shape of one int8 frame (the tiny model's input); a FRAME carries prod(shape) bytes.
    input_scale, input_zero_point : float, int
        Dequantization of the int8 frame to the large model's float input.
    num_classes : int
    max_batch : int
        Largest batch the model runs (default: ``deploy.edge_max_batch`` of the scenario
        schema, which the simulator's edge model uses too).
    max_wait_s : float
        How long the first request of a batch waits for others, s (default:
        ``deploy.edge_max_wait_s``).
    qos : {0, 1}
        MQTT QoS of the replies: 1 (at least once: the broker keeps them for a device that is
        briefly away) or 0 (at most once: half the packets; a lost reply is a timed-out
        request, and the device answers itself). Handshakes and bundles are always QoS 1.
    """

    frame_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    num_classes: int
    max_batch: int = _DEPLOY_DEFAULTS.edge_max_batch
    max_wait_s: float = _DEPLOY_DEFAULTS.edge_max_wait_s
    qos: int = _DEPLOY_DEFAULTS.qos

    def __post_init__(self) -> None:
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, got {self.qos}")
        if self.max_batch < 1 or not self.max_wait_s >= 0:
            raise ValueError(
                f"max_batch must be >= 1 and max_wait_s >= 0, got {self.max_batch}, "
                f"{self.max_wait_s}"
            )

    @property
    def frame_bytes(self) -> int:
        return int(np.prod(self.frame_shape))


@dataclass
class _Pending:
    device_id: str
    request: int
    frame: bytes
    received_s: float
    #: the session the frame opened under: the reply is sealed with it
    session: Session


@dataclass
class ServerState:
    """What the server counted (also exported on the metrics endpoint)."""

    requests: int = 0
    replies: int = 0
    handshakes: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batch_sizes: list[int] = field(default_factory=list)
    service_s: list[float] = field(default_factory=list)
    first_request_s: float | None = None  # monotonic
    last_reply_s: float | None = None
    #: per reply: (device id, request id, frame received, reply sealed), monotonic s
    answered: list[tuple[str, int, float, float]] = field(default_factory=list)


def service_fit(
    sizes: npt.NDArray[np.int64], service_s: npt.NDArray[np.float64]
) -> dict[str, float] | None:
    """Least-squares ``service = setup_s + size x per_item_s`` over the batches run (both >= 0;
    with one batch size only, all of it is ``per_item_s``): the simulator's edge model
    (`tinylarge.net.batching.linear_batch_service`) measured on the running server."""
    if sizes.size == 0:
        return None
    setup_s, per_item_s = fit_batch_service(sizes, service_s)
    return {"setup_s": setup_s, "per_item_s": per_item_s}


class EdgeServer:
    """Serve ``predict`` to the devices enrolled in ``registry`` (see the module doc)."""

    def __init__(
        self,
        predict: Predict,
        config: ServerConfig,
        identity: Identity,
        registry: Registry,
        *,
        topics: Topics | None = None,
        metrics: EdgeMetrics | None = None,
        live_loop: LiveLoop | None = None,
        registry_path: Path | None = None,
    ) -> None:
        self.predict, self.config = predict, config
        self.identity, self.registry = identity, registry
        self.topics = topics or Topics()
        self.metrics = metrics
        self.state = ServerState()
        self.sessions = SessionTable()
        self.boot_id = os.urandom(8).hex()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._outbox: asyncio.Queue[tuple[str, bytes, bool, int]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.live_loop = live_loop
        self.registry_path = registry_path
        self._registry_mtime = registry_path.stat().st_mtime if registry_path else 0.0
        self.started_s = time.monotonic()
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._trainer = ThreadPoolExecutor(1, thread_name_prefix="tinylarge-distil")
        self._training: asyncio.Future[tuple[int, bytes]] | None = None
        #: (monotonic time, version) of every bundle published
        self.pushed: list[tuple[float, int]] = []

    # -- checking what arrives ------------------------------------------------------------------
    def reject(self, reason: str) -> None:
        self.state.rejected[reason] += 1
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()

    def handle(self, topic: str, payload: bytes) -> None:
        """Check one message; queue a frame or answer a handshake. Never raises."""
        try:
            kind, device_id = self.topics.parse(topic)
        except ValueError:
            self.reject("bad_topic")
            return
        if kind == "hello":
            self._hello(device_id, payload)
        elif kind == "up":
            self._frame(device_id, payload)
        # welcome/down are the server's own publications: not subscribed

    def _reload_registry(self) -> bool:
        """Re-read the registry file if it changed (devices enrolled while serving)."""
        path = self.registry_path
        if path is None or not path.is_file() or path.stat().st_mtime == self._registry_mtime:
            return False
        try:
            self.registry = load_registry(path)
        except ValueError:
            return False  # half-written or broken: keep the old one
        self._registry_mtime = path.stat().st_mtime
        return True

    def _hello(self, device_id: str, hello: bytes) -> None:
        try:
            try:
                reply, session = server_accept(hello, self.identity, self.registry)
            except UnknownDevice:
                if not self._reload_registry():
                    raise
                reply, session = server_accept(hello, self.identity, self.registry)
        except SecurityError as error:
            self.reject(f"handshake_{type(error).__name__}")
            return
        if session.device_id != device_id:
            self.reject("handshake_topic_mismatch")  # someone else's hello on this topic
            return
        if not self.sessions.offer(device_id, hello, session):  # pending until confirmed
            self.reject("handshake_Replay")
            return
        self.state.handshakes += 1
        self._outbox.put_nowait((self.topics.welcome(device_id), reply, False, 1))

    def _open(self, device_id: str, wire: bytes) -> tuple[int, bytes, Session] | None:
        """``(message type, payload, session)`` of a device's message, or None (counted by
        reason) when the device has no session or the message does not open under it."""
        if device_id not in self.sessions:
            self.reject("no_session")
            return None
        try:
            return self.sessions.open(device_id, wire)
        except SecurityError as error:
            self.reject(type(error).__name__)
            return None

    def _accept(self, device_id: str, payload: bytes, session: Session) -> None:
        """Count a checked request and queue it for the batcher."""
        seq = session.last_opened_seq or 0  # from the authenticated header just opened
        self.state.requests += 1
        if self.state.first_request_s is None:
            self.state.first_request_s = time.monotonic()
        if self.metrics is not None:
            self.metrics.requests.inc()
        self._queue.put_nowait(
            _Pending(device_id, request_id(seq), payload, time.monotonic(), session)
        )

    def _frame(self, device_id: str, wire: bytes) -> None:
        opened = self._open(device_id, wire)
        if opened is None:
            return
        msg_type, frame, session = opened
        if msg_type != MessageType.FRAME or len(frame) != self.config.frame_bytes:
            self.reject("not_a_frame")
            return
        self._accept(device_id, frame, session)

    # -- batching ---------------------------------------------------------------------------------
    async def _next_batch(self, timer: PreciseTimer) -> list[_Pending]:
        """The first waiting request and those that come within ``max_wait_s`` of it (timed
        with `PreciseTimer`: asyncio's own timeouts overshoot by up to a millisecond)."""
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.config.max_wait_s
        while len(batch) < self.config.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            if deadline <= time.monotonic():
                break
            getter = asyncio.ensure_future(self._queue.get())
            waiting = asyncio.ensure_future(timer.sleep_until(deadline))
            await asyncio.wait({getter, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if not getter.done():
                getter.cancel()  # a cancelled get leaves its item in the queue
                await asyncio.gather(getter, return_exceptions=True)
            if getter.done() and not getter.cancelled():
                batch.append(getter.result())
        return batch

    def _dequantize(self, batch: list[_Pending]) -> npt.NDArray[np.float32]:
        raw = np.frombuffer(b"".join(p.frame for p in batch), dtype=np.int8)
        q = raw.reshape(len(batch), *self.config.frame_shape)
        return dequantize_input(
            q, scale=self.config.input_scale, zero_point=self.config.input_zero_point
        )

    def _learn(self, x: npt.NDArray[np.float32], logits: npt.NDArray[np.float32]) -> None:
        """Keep the answered frames; start an update in the worker when one is due."""
        if self.live_loop is None or not self.live_loop.add(x, logits) or self._training:
            return
        loop = asyncio.get_running_loop()
        self._training = loop.run_in_executor(self._trainer, self.live_loop.build_update)
        self._training.add_done_callback(self._publish_update)

    def _publish_update(self, done: asyncio.Future[tuple[int, bytes]]) -> None:
        self._training = None
        if done.cancelled() or done.exception() is not None:
            self.reject("update_failed")  # counted; serving goes on with the old model
            return
        version, bundle = done.result()
        self._outbox.put_nowait((self.topics.model, bundle, True, 1))
        self.pushed.append((time.monotonic(), version))
        if self.metrics is not None:
            self.metrics.model_version.set(version)

    def _served(self, size: int, service_s: float) -> None:
        """Count a batch of ``size`` requests that took ``service_s`` seconds."""
        self.state.batch_sizes.append(size)
        self.state.service_s.append(service_s)
        if self.metrics is not None:
            self.metrics.batch_size.observe(size)
            self.metrics.service_s.observe(service_s)

    def _answer(self, pending: _Pending, msg_type: int, payload: bytes) -> None:
        """Seal ``payload`` with the session the request opened under and queue it for the
        device; dropped if the device re-handshook meanwhile (it cannot open it)."""
        session = pending.session
        if self.sessions.current(pending.device_id) is not session:
            return
        wire = session.seal(msg_type, payload)
        down = self.topics.down(pending.device_id)
        self._outbox.put_nowait((down, wire, False, self.config.qos))
        self.state.replies += 1
        self.state.answered.append(
            (pending.device_id, pending.request, pending.received_s, time.monotonic())
        )

    async def _batcher(self) -> None:
        loop = asyncio.get_running_loop()
        timer = PreciseTimer.acquire(loop)
        try:
            await self._batches(loop, timer)
        finally:
            timer.release()

    async def _batches(self, loop: asyncio.AbstractEventLoop, timer: PreciseTimer) -> None:
        while True:
            batch = await self._next_batch(timer)
            started = time.perf_counter()
            x = self._dequantize(batch)
            logits = await loop.run_in_executor(None, self.predict, x)
            self._served(len(batch), time.perf_counter() - started)
            for pending, z in zip(batch, np.asarray(logits), strict=True):
                reply = encode_reply(pending.request, int(np.argmax(z)), z)
                self._answer(pending, MessageType.REPLY, reply)
            self.state.last_reply_s = time.monotonic()
            self._learn(x, np.asarray(logits, np.float32))

    def stats(self) -> dict[str, object]:
        """What the server counted, JSON-ready (written by `tinylarge serve` on shutdown)."""
        sizes = np.asarray(self.state.batch_sizes, dtype=np.int64)
        service = np.asarray(self.state.service_s, dtype=np.float64)
        first, last = self.state.first_request_s, self.state.last_reply_s
        active = (last - first) if first is not None and last is not None else 0.0
        return {
            "boot_id": self.boot_id,
            "requests": self.state.requests,
            "replies": self.state.replies,
            "handshakes": self.state.handshakes,
            "rejected": dict(self.state.rejected),
            "batches": int(sizes.size),
            "batch_size_counts": {
                str(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True), strict=True)
            },
            "mean_batch": float(sizes.mean()) if sizes.size else 0.0,
            "max_batch": int(sizes.max()) if sizes.size else 0,
            "service_s": percentile_summary(service, (50, 99)),
            "service_fit": service_fit(sizes, service),
            "max_batch_setting": self.config.max_batch,
            "max_wait_s_setting": self.config.max_wait_s,
            "uptime_s": time.monotonic() - self.started_s,
            "active_s": active,
            "requests_per_s": self.state.replies / active if active > 0 else None,
            "pushed": [{"after_s": t - self.started_s, "version": v} for t, v in self.pushed],
        }

    def write_stats(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.stats(), indent=1))

    def write_answered(self, path: str | Path) -> None:
        """Per reply, in an ``.npz``: ``device`` (id), ``request``, ``in_edge_s`` (from the
        frame's arrival at the server to its sealed reply: queue, batching wait, model).
        Joined with the devices' records it splits a round trip into edge and transport."""
        rows = self.state.answered
        np.savez(
            path,
            device=np.array([r[0] for r in rows], dtype=str),
            request=np.array([r[1] for r in rows], np.int64),
            in_edge_s=np.array([r[3] - r[2] for r in rows], np.float64),
        )

    # -- the broker connection --------------------------------------------------------------------
    async def _publish(self, client: aiomqtt.Client, item: tuple[str, bytes, bool, int]) -> None:
        topic, payload, retain, qos = item
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError:
            self._outbox.put_nowait(item)  # the connection is gone: send it on the next one
        finally:
            self._in_flight.release()

    async def _publisher(self, client: aiomqtt.Client) -> None:
        """Publish the outbox concurrently: a QoS 1 publish waits for its PUBACK, so one at a
        time would cap the replies at one per broker round trip."""
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                item = await self._outbox.get()
                await self._in_flight.acquire()
                task = asyncio.create_task(self._publish(client, item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()

    async def _session(
        self, address: BrokerAddress, tls: TlsFiles | None, watch: RefusalWatch
    ) -> None:
        identifier = f"{self.topics.prefix}-edge"
        # paho's default in-flight window is 20 messages
        client = persistent_client(address, identifier, max_inflight=MAX_IN_FLIGHT, tls=tls)
        async with client:
            watch.connected()
            await client.subscribe(f"{self.topics.prefix}/hello/+", qos=1)
            await client.subscribe(f"{self.topics.prefix}/up/+", qos=1)
            await client.publish(self.topics.edge, self.boot_id.encode(), qos=1, retain=True)
            self.connected.set()
            gc.collect()  # see `tinylarge.deploy.fleet`: no full-collection stalls later
            gc.freeze()
            publisher = asyncio.create_task(self._publisher(client))
            try:
                async for message in client.messages:
                    self.handle(str(message.topic), bytes(message.payload))
            finally:
                self.connected.clear()
                publisher.cancel()

    async def serve(
        self, address: BrokerAddress, stop: asyncio.Event, tls: TlsFiles | None = None
    ) -> None:
        """Serve until ``stop`` is set, reconnecting (0.1 s .. 2 s back-off) when the broker
        goes away; over a locked-down broker (``address.tls``) with the edge's certificate
        ``tls``. A run of failed connections is diagnosed (`RefusalWatch`): a refusal that
        retrying cannot cure (no certificate, revoked, another CA) ends the serving with
        `tinylarge.deploy.mqtt.BrokerRefused` naming it, instead of a silent retry loop."""
        batcher = asyncio.create_task(self._batcher())
        watch = RefusalWatch(address, tls, "the edge")
        backoff = 0.1
        try:
            while not stop.is_set():
                watch.begin()
                session = asyncio.create_task(self._session(address, tls, watch))
                stopper = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait(
                    {session, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                stopper.cancel()
                if session in done:
                    if session.exception() is None or isinstance(
                        session.exception(), aiomqtt.MqttError
                    ):
                        refused = await watch.failed()
                        if refused is not None and watch.permanent:
                            raise refused
                        await asyncio.sleep(backoff)
                        backoff = min(2.0, 2 * backoff)
                        continue
                    raise session.exception()  # type: ignore[misc]
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
        finally:
            batcher.cancel()
            await asyncio.gather(batcher, return_exceptions=True)
            if self._training is not None:
                await asyncio.gather(self._training, return_exceptions=True)
            if self.live_loop is not None:
                self.live_loop.save()
