"""Device agents: many devices in one asyncio process, each with its own MQTT connection,
identity and session, running the same int8 runtime and `Policy` as the simulator.

Each device follows a schedule of requests (arrival time, test sample), given as arrays by the
caller (the CLI draws it as the simulator does). Requests due together are run through the
integer runtime (``tflm`` arithmetic) in one vectorized call, and the policy decides per request
from the tiny model's logits: `Policy.decide` sees a trace whose large-model logits are unknown
to the device (zeros); a deployable policy's ``offload`` and ``fallback_prediction`` depend on
the tiny logits only (checked in the tests). An offload is sealed with the device's session
and published; the answer is the edge's class if its reply arrives within ``deadline_s``,
else the device's own (``timed_out``). Every request ends in exactly one of: answered on the
device, answered by the edge, timed out; `FleetRecords.lost` counts any that did not.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from dataclasses import dataclass, field, fields

import aiomqtt
import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.link import LinkPlan
from tinylarge.deploy.mqtt import persistent_client
from tinylarge.deploy.protocol import Topics, publish_packet_bytes, request_id
from tinylarge.integrate.policy import Decision, Policy, Trace
from tinylarge.secure.bundle import bundle_version, verify_bundle
from tinylarge.secure.errors import Rollback, SecurityError
from tinylarge.secure.handshake import DeviceHandshake
from tinylarge.secure.identity import Identity
from tinylarge.secure.messages import MessageType
from tinylarge.secure.session import Aead, Session
from tinylarge.secure.wire import overhead_bytes, parse
from tinylarge.tiny.graph import TinyModel, TinyModelError
from tinylarge.tiny.model_file import from_bytes
from tinylarge.tiny.runtime import run as run_int8

#: How far ahead of its arrival a request is handed to its task, s.
LOOKAHEAD_S = 0.01
#: Route codes of a finished request.
ON_DEVICE, BY_EDGE, TIMED_OUT, UNFINISHED = 0, 1, 2, -1
ROUTES = {ON_DEVICE: "device", BY_EDGE: "edge", TIMED_OUT: "timed_out"}


@dataclass
class FleetRecords:
    """Per-request records, arrays of shape (m,), in schedule order.

    Times are seconds on the fleet's monotonic clock from the run's start. ``bytes_up`` and
    ``bytes_down`` are the protected messages (payload + header + tag), as the simulator
    counts them; ``mqtt_bytes_up`` / ``_down`` the MQTT PUBLISH packets around them.
    """

    device: npt.NDArray[np.int64]
    sample: npt.NDArray[np.int64]
    scheduled_s: npt.NDArray[np.float64]
    offload: npt.NDArray[np.bool_] = field(init=False)
    sent_s: npt.NDArray[np.float64] = field(init=False)
    answered_s: npt.NDArray[np.float64] = field(init=False)
    route: npt.NDArray[np.int64] = field(init=False)
    answer: npt.NDArray[np.int64] = field(init=False)
    model_version: npt.NDArray[np.int64] = field(init=False)
    bytes_up: npt.NDArray[np.int64] = field(init=False)
    bytes_down: npt.NDArray[np.int64] = field(init=False)
    mqtt_bytes_up: npt.NDArray[np.int64] = field(init=False)
    mqtt_bytes_down: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        m = self.device.size
        self.offload = np.zeros(m, bool)
        self.sent_s = np.full(m, np.nan)
        self.answered_s = np.full(m, np.nan)
        self.route = np.full(m, UNFINISHED, np.int64)
        self.answer = np.full(m, -1, np.int64)
        self.model_version = np.zeros(m, np.int64)
        for name in ("bytes_up", "bytes_down", "mqtt_bytes_up", "mqtt_bytes_down"):
            setattr(self, name, np.zeros(m, np.int64))

    @property
    def latency_s(self) -> npt.NDArray[np.float64]:
        """From the request's arrival to its answer, s."""
        return self.answered_s - self.scheduled_s

    @property
    def lost(self) -> int:
        """Requests that ended in no route (must be 0)."""
        return int(np.sum(self.route == UNFINISHED))


@dataclass(frozen=True)
class Disconnection:
    """Devices ``devices`` drop their connection ``at_s`` into the schedule for ``for_s``
    seconds, then reconnect (their MQTT session and their secure session survive)."""

    at_s: float
    devices: tuple[int, ...]
    for_s: float


@dataclass(frozen=True)
class FleetConfig:
    """What every device shares."""

    deadline_s: float = 1.0
    handshake_timeout_s: float = 5.0
    aead: Aead = "chacha20-poly1305"
    #: Device class that model bundles must name (the MCU), as in `tinylarge.secure.bundle`.
    target: str = "device"
    #: MQTT QoS of the offloads (see `tinylarge.deploy.server.ServerConfig.qos`).
    qos: int = 1


class ModelStore:
    """The tiny models of the fleet by version: parsed once, shared by the devices that
    installed them (each device verifies the bundle itself)."""

    def __init__(self, shipped: TinyModel) -> None:
        self.by_version: dict[int, TinyModel] = {0: shipped}

    def add(self, version: int, model_bytes: bytes) -> None:
        if version not in self.by_version:
            self.by_version[version] = from_bytes(model_bytes, source=f"bundle v{version}")


class Device:
    """One device's connection, session and outstanding offloads."""

    def __init__(
        self,
        identity: Identity,
        edge_key: Ed25519PublicKey,
        topics: Topics,
        config: FleetConfig,
        models: ModelStore,
    ) -> None:
        self.identity, self.edge_key, self.topics, self.config = identity, edge_key, topics, config
        self.models = models
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
        self._handshake: DeviceHandshake | None = None
        self.rejected = 0

    async def _hello(self) -> None:
        self.attached.clear()
        self.session = None
        self._handshake = DeviceHandshake(self.identity, self.config.aead)
        if self.client is not None:
            await self.client.publish(self.topics.hello(self.id), self._handshake.hello(), qos=1)

    def _on_message(self, topic: str, payload: bytes) -> asyncio.Task[None] | None:
        """Handle one message; a task when it needs to send (a new handshake)."""
        if topic == self.topics.edge:
            if payload != self.edge_boot:  # a (re)started edge: its sessions are gone
                self.edge_boot = payload
                return asyncio.ensure_future(self._hello())
        elif topic == self.topics.model:
            self._install(payload)
        elif topic == self.topics.welcome(self.id) and self._handshake is not None:
            try:
                self.session = self._handshake.finish(payload, self.edge_key)
            except SecurityError:
                self.rejected += 1
                return None
            self._handshake = None
            self.attached.set()
        elif topic == self.topics.down(self.id) and self.session is not None:
            try:
                msg_type, reply = self.session.open(payload)
                if msg_type != MessageType.REPLY:
                    raise ValueError("not a reply")
            except (SecurityError, ValueError):
                self.rejected += 1
                return None
            request = int.from_bytes(reply[:4], "little")
            future = self.pending.pop(request, None)
            if future is not None and not future.done():
                future.set_result((len(payload), reply[4]))
        return None

    def _install(self, bundle: bytes) -> None:
        """Verify a pushed bundle (signature, hash, target, no rollback) and install it."""
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
        """Stay connected (reconnecting after a broker restart) until ``stop``."""
        while not stop.is_set():
            try:
                identifier = f"{self.topics.prefix}-{self.id}"
                async with persistent_client(address, identifier) as client:
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
            except aiomqtt.MqttError:
                self.client = None
                self.attached.clear()
                await asyncio.sleep(0.2)
            finally:
                self.client = None  # cancelled (disconnected) or reconnecting: nothing to send on

    async def offload(self, frame: bytes, deadline_s: float) -> tuple[int, int, int] | None:
        """Send ``frame``; ``(class, bytes up, bytes down)`` if answered in time, else None."""
        session, client = self.session, self.client
        if session is None or client is None:
            return None
        wire = session.seal(MessageType.FRAME, frame)
        request = request_id(parse(wire, session.max_payload)[0].seq)
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self.pending[request] = future
        try:
            await client.publish(self.topics.up(self.id), wire, qos=self.config.qos)
            down, answer = await asyncio.wait_for(future, deadline_s)
        except (TimeoutError, aiomqtt.MqttError):
            self.pending.pop(request, None)
            return None
        return answer, len(wire), down


def device_decisions(
    model: TinyModel, policy: Policy, frames: npt.NDArray[np.int8], device: npt.NDArray[np.int64]
) -> Decision:
    """The policy's decision per frame: the int8 runtime in ``tflm`` arithmetic, then the
    policy on the tiny logits alone (the large model's are unknown on the device, so only
    ``offload``, ``fallback_prediction``, ``bytes_up`` and ``device_macs`` mean anything)."""
    out = run_int8(model, frames, arithmetic="tflm").reshape(len(frames), -1)
    logits = model.dequantize_output(out)
    trace = Trace(
        tiny_logits=logits, large_logits=np.zeros_like(logits), y=np.zeros(len(frames), np.int64)
    )
    return policy.decide(trace, np.arange(len(frames)), np.random.default_rng(0), device=device)


def _offload_and_answer(
    model: TinyModel, policy: Policy, frames: npt.NDArray[np.int8], device: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    decision = device_decisions(model, policy, frames, device)
    return decision.offload, decision.fallback_prediction


async def _sleep_until(monotonic_s: float) -> None:
    await asyncio.sleep(max(0.0, monotonic_s - time.monotonic()))


def _reordered(link: LinkPlan, order: npt.NDArray[np.int64]) -> LinkPlan:
    return LinkPlan(*(np.asarray(getattr(link, f.name))[order] for f in fields(LinkPlan)))


class Fleet:
    """Run a request schedule over ``identities`` (device i = ``identities[i]``)."""

    def __init__(
        self,
        model: TinyModel,
        policy: Policy,
        identities: list[Identity],
        edge_key: Ed25519PublicKey,
        frames: npt.NDArray[np.int8],
        *,
        topics: Topics | None = None,
        config: FleetConfig | None = None,
    ) -> None:
        self.model, self.policy, self.frames = model, policy, frames
        self.topics, self.config = topics or Topics(), config or FleetConfig()
        self.models = ModelStore(model)
        self.devices = [
            Device(i, edge_key, self.topics, self.config, self.models) for i in identities
        ]
        self.num_classes = int(np.prod(model.output_spec.shape))
        #: `time.monotonic` at the start of the last schedule (records' times count from it)
        self.started_s = 0.0
        self._link: LinkPlan | None = None
        #: per model version: (offload, device answer) of every request of the running schedule
        self._decided: dict[int, tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]] = {}

    async def _one(self, records: FleetRecords, i: int, offload: bool, own: int, t0: float) -> None:
        """Play request ``i``: the device's own time, then (if offloaded) the uplink, the real
        broker and edge, the downlink; with no link emulation only the real part."""
        device = self.devices[int(records.device[i])]
        link = self._link
        # the request's arrival, plus the MCU's inference and sealing time when emulated
        await _sleep_until(
            t0 + records.scheduled_s[i] + (0.0 if link is None else link.compute_s[i])
        )
        records.sent_s[i] = time.monotonic() - t0
        result = None
        if offload:
            records.offload[i] = True
            frame = self.frames[records.sample[i]].tobytes()
            records.bytes_up[i] = len(frame) + overhead_bytes(device.id)
            if link is None or not link.lost[i]:  # lost on the air: the device answers itself
                result = await self._over_the_link(device, frame, i)
                records.mqtt_bytes_up[i] = publish_packet_bytes(
                    self.topics.up(device.id), int(records.bytes_up[i])
                )
        records.answered_s[i] = time.monotonic() - t0
        if result is not None:
            records.route[i], records.answer[i] = BY_EDGE, result[0]
            records.bytes_down[i] = result[2]
            records.mqtt_bytes_down[i] = publish_packet_bytes(
                self.topics.down(device.id), result[2]
            )
        else:
            records.route[i] = TIMED_OUT if offload else ON_DEVICE
            records.answer[i] = own

    async def _over_the_link(
        self, device: Device, frame: bytes, i: int
    ) -> tuple[int, int, int] | None:
        """Uplink delay, the real round trip, downlink delay; None past the deadline (counted
        from the end of the uplink, as a device's reply timer would)."""
        link, deadline = self._link, self.config.deadline_s
        if link is not None:
            await asyncio.sleep(float(link.uplink_s[i]))
        sent = time.monotonic()
        result = await device.offload(frame, deadline)
        if link is None or result is None:
            return result
        left = sent + deadline - time.monotonic()
        if link.reply_lost[i] or link.downlink_s[i] > left:
            await asyncio.sleep(max(0.0, left))
            return None
        await asyncio.sleep(float(link.downlink_s[i]))
        return result

    async def _disconnect(
        self,
        fault: Disconnection,
        connections: list[asyncio.Task[None]],
        address: BrokerAddress,
        stop: asyncio.Event,
        t0: float,
    ) -> None:
        await _sleep_until(t0 + fault.at_s)
        for d in fault.devices:
            connections[d].cancel()
        await asyncio.gather(*(connections[d] for d in fault.devices), return_exceptions=True)
        await asyncio.sleep(fault.for_s)
        for d in fault.devices:
            connections[d] = asyncio.create_task(self.devices[d].run(address, stop))

    def _decide(
        self, records: FleetRecords, idx: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """Decisions for requests ``idx``, each with its device's installed model.

        The integer runtime's cost is mostly per call (about 1.5 ms on this project's machine
        whether it runs 1 frame or 64), so calling it per request would make the fleet process,
        not the system under test, the bottleneck. Each model version therefore runs once over
        every scheduled frame, when a device first decides with it; a request then reads its
        row. The device's compute *time* is not this process's: the link emulation charges
        the MCU's inference time (`tinylarge.tiny.footprint`).
        """
        versions = np.array([self.devices[d].version for d in records.device[idx]], np.int64)
        records.model_version[idx] = versions
        offload = np.zeros(idx.size, bool)
        own = np.zeros(idx.size, np.int64)
        for v in np.unique(versions):
            if int(v) not in self._decided:
                self._decided[int(v)] = _offload_and_answer(
                    self.models.by_version[int(v)],
                    self.policy,
                    self.frames[records.sample],
                    records.device,
                )
            mine = versions == v
            all_offload, all_own = self._decided[int(v)]
            offload[mine], own[mine] = all_offload[idx[mine]], all_own[idx[mine]]
        return offload, own

    async def run(
        self,
        address: BrokerAddress,
        device: npt.NDArray[np.int64],
        sample: npt.NDArray[np.int64],
        arrival_s: npt.NDArray[np.float64],
        *,
        tick_s: float = 0.002,
        start_at: float | None = None,
        link: LinkPlan | None = None,
        disconnections: tuple[Disconnection, ...] = (),
    ) -> FleetRecords:
        """Connect every device, attach (handshake), then play the schedule (sorted by
        arrival) in real time; return when every request has finished.

        ``start_at`` (a `time.time` instant) starts the schedule then rather than as soon as
        every device is attached: several fleet processes start together. ``link`` (arrays in
        the order of the arguments) emulates each request's device time and radio
        (`tinylarge.deploy.link`); it is planned for the shipped model's decisions, so run it
        without pushing new models. ``disconnections`` take devices off the broker for a while
        during the schedule (a fault to survive: their requests fall back meanwhile).
        """
        order = np.argsort(arrival_s, kind="stable")
        records = FleetRecords(device[order], sample[order], arrival_s[order].astype(np.float64))
        self._decided = {}  # decisions belong to one schedule
        self._link = None if link is None else _reordered(link, order)
        stop = asyncio.Event()
        connections = [asyncio.create_task(d.run(address, stop)) for d in self.devices]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(d.attached.wait() for d in self.devices)),
                self.config.handshake_timeout_s,
            )
            # decisions of the installed models before the clock starts (a version pushed
            # later is run when a device first uses it: a one-off pause of the fleet process)
            loop = asyncio.get_running_loop()
            for v in sorted({d.version for d in self.devices}):
                self._decided[v] = await loop.run_in_executor(
                    None,
                    _offload_and_answer,
                    self.models.by_version[v],
                    self.policy,
                    self.frames[records.sample],
                    records.device,
                )
            # Python's full garbage collections walk every object (torch, numpy, 1000 clients):
            # 100-200 ms stalls measured. Freeze what exists now out of their reach.
            gc.collect()
            gc.freeze()
            if start_at is not None:
                await asyncio.sleep(max(0.0, start_at - time.time()))
            t0 = self.started_s = time.monotonic()
            tasks: list[asyncio.Task[None]] = [
                asyncio.create_task(self._disconnect(fault, connections, address, stop, t0))
                for fault in disconnections
            ]
            start = 0
            while start < records.device.size:
                now = time.monotonic() - t0
                # hand requests out a little ahead: each then sleeps to its own instant once
                # (every sleep is rounded up to epoll's 1 ms, so fewer sleeps, less skew)
                ahead = now + LOOKAHEAD_S
                end = int(np.searchsorted(records.scheduled_s, ahead, side="right"))
                if end > start:
                    idx = np.arange(start, end)
                    offload, own = self._decide(records, idx)
                    tasks += [
                        asyncio.create_task(self._one(records, int(i), bool(o), int(a), t0))
                        for i, o, a in zip(idx, offload, own, strict=True)
                    ]
                    start = end
                else:
                    await asyncio.sleep(min(tick_s, max(0.0, records.scheduled_s[start] - now)))
            await asyncio.gather(*tasks)
        finally:
            stop.set()
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
        return records
