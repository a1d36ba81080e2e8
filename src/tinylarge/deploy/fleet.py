"""Device agents: many devices in one asyncio process, each with its own MQTT connection,
identity and session, running the same int8 runtime and `Policy` as the simulator.

Each device follows a schedule of requests (arrival time, test sample), given as arrays by the
caller (the CLI draws it as the simulator does). Each installed model version runs through the
integer runtime (``tflm`` arithmetic) once over the scheduled frames (`Fleet._decide` says
why), and the policy decides per request from the tiny model's logits: `Policy.decide` sees a
trace whose large-model logits are unknown to the device (zeros); a deployable policy's
``offload`` and ``fallback_prediction`` depend on the tiny logits only (checked in the tests).
The devices themselves are `tinylarge.deploy.device.Device`; their records
`tinylarge.deploy.records.FleetRecords`. An offload is sealed with the device's session
and published; the answer is the edge's class if its reply arrives within ``deadline_s``,
else the device's own (``timed_out``). Every request ends in exactly one of: answered on the
device, answered by the edge, timed out; `FleetRecords.lost` counts any that did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.clock import PreciseTimer
from tinylarge.deploy.device import Device, FleetConfig, ModelStore
from tinylarge.deploy.link_emulator import LinkPlan
from tinylarge.deploy.pki import TlsFiles
from tinylarge.deploy.protocol import Topics, publish_packet_bytes, request_id
from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT, FleetEvents, FleetRecords
from tinylarge.integrate.inference.contract import Decision, Policy, Trace
from tinylarge.secure.identity import Identity
from tinylarge.secure.transport import Transport, stream_bytes
from tinylarge.secure.wire import overhead_bytes
from tinylarge.tiny import runtime
from tinylarge.tiny.graph import TinyModel

#: How far ahead of its arrival a request is handed to its task, s.
LOOKAHEAD_S = 0.01


@dataclass(frozen=True)
class Disconnection:
    """Devices ``devices`` drop their connection ``at_s`` into the schedule for ``for_s``
    seconds, then reconnect (their MQTT session and their secure session survive). With a
    ``trigger`` file, they drop when it appears instead (a fault injector outside the fleet
    decides when)."""

    at_s: float
    devices: tuple[int, ...]
    for_s: float
    trigger: Path | None = None


def device_certificates(
    identities: Sequence[Identity], tls: Sequence[TlsFiles] | None
) -> list[TlsFiles | None]:
    """Each device's certificate (all None without ``tls``); ``ValueError`` unless there is
    one per identity (device i's is ``tls[i]``)."""
    if tls is None:
        return [None] * len(identities)
    if len(tls) != len(identities):
        raise ValueError(
            f"one TLS certificate per device: got {len(tls)} for {len(identities)} devices"
        )
    return list(tls)


def device_decisions(
    model: TinyModel, policy: Policy, frames: npt.NDArray[np.int8], device: npt.NDArray[np.int64]
) -> Decision:
    """The policy's decision per frame: the int8 runtime in ``tflm`` arithmetic, then the
    policy on the tiny logits alone (the large model's are unknown on the device, so only
    ``offload``, ``fallback_prediction``, ``bytes_up`` and ``device_macs`` mean anything)."""
    out = runtime.run(model, frames, arithmetic="tflm").reshape(len(frames), -1)
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
    """Run a request schedule over ``identities`` (device i = ``identities[i]``); ``tls``
    (over a locked-down broker): device i's certificate is ``tls[i]``."""

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
        tls: Sequence[TlsFiles] | None = None,
    ) -> None:
        self.model, self.policy, self.frames = model, policy, frames
        self.topics, self.config = topics or Topics(), config or FleetConfig()
        self.models = ModelStore(model)
        certificates = device_certificates(identities, tls)
        self.devices = [
            Device(i, edge_key, self.topics, self.config, self.models, c)
            for i, c in zip(identities, certificates, strict=True)
        ]
        self.num_classes = int(np.prod(model.output_spec.shape))
        #: `time.monotonic` at the start of the last schedule (records' times count from it)
        self.started_s = 0.0
        self._link: LinkPlan | None = None
        #: per model version: (offload, device answer) of every request of the running schedule
        self._decided: dict[int, tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]] = {}
        self._started_unix = float("nan")
        self._timer: PreciseTimer | None = None
        self._disconnected: set[int] = set()
        self._unattached_at_start = 0
        #: the transport of the running schedule (its records' ``transport_bytes_*``)
        self._transport: Transport = "mqtt"

    def events(self) -> FleetEvents:
        """What the devices saw besides their requests in the last schedule (`FleetEvents`)."""
        installs = [(t, v) for d in self.devices for t, v in d.installs]
        events = FleetEvents(
            unexpected_reply_s=np.sort(
                np.array([t for d in self.devices for t in d.unexpected], np.float64)
            )
            - self.started_s,
            rejected_messages=sum(d.rejected for d in self.devices),
            install_s=np.array([t for t, _ in installs], np.float64) - self.started_s,
            install_version=np.array([v for _, v in installs], np.int64),
            disconnected=np.array(sorted(self._disconnected), np.int64),
            started_unix=self._started_unix,
            unattached_at_start=self._unattached_at_start,
            hello_retries=sum(d.hello_retries for d in self.devices),
        )
        for d in self.devices:
            events.refused_bundles.update(d.refused)
        return events

    async def _one(self, records: FleetRecords, i: int, t0: float) -> None:
        """Play request ``i``: the device's own time, then (if offloaded) the uplink, the real
        broker and edge, the downlink; with no link emulation only the real part. The device
        decides with the model it has installed when its computation ends."""
        device = self.devices[int(records.device[i])]
        link = self._link
        # the request's arrival, plus the MCU's inference and sealing time when emulated
        ready = t0 + records.scheduled_s[i] + (0.0 if link is None else link.compute_s[i])
        records.ready_s[i] = ready - t0
        await self._sleep_until(ready)
        decided = self._decide(records, np.array([i]))
        offload, own = bool(decided[0][0]), int(decided[1][0])
        records.sent_s[i] = time.monotonic() - t0
        result = None
        if offload:
            records.offload[i] = True
            frame = self.frames[records.sample[i]].tobytes()
            records.bytes_up[i] = len(frame) + overhead_bytes(device.id)
            if link is None or not link.lost[i]:  # lost on the air: the device answers itself
                result = await self._over_the_link(device, frame, i, ready, records)
                records.mqtt_bytes_up[i] = publish_packet_bytes(
                    self.topics.up(device.id), int(records.bytes_up[i]), qos=self.config.qos
                )
                records.transport_bytes_up[i] = stream_bytes(
                    self._transport, records.mqtt_bytes_up[i]
                )
        records.answered_s[i] = time.monotonic() - t0
        if result is not None:
            records.route[i], records.answer[i] = BY_EDGE, result[0]
            records.bytes_down[i] = result[2]
            records.mqtt_bytes_down[i] = publish_packet_bytes(
                self.topics.down(device.id), result[2], qos=self.config.qos
            )
            records.transport_bytes_down[i] = stream_bytes(
                self._transport, records.mqtt_bytes_down[i]
            )
        else:
            records.route[i] = TIMED_OUT if offload else ON_DEVICE
            records.answer[i] = own

    async def _over_the_link(
        self, device: Device, frame: bytes, i: int, ready: float, records: FleetRecords
    ) -> tuple[int, int, int] | None:
        """Uplink delay from ``ready`` (monotonic s), the real round trip, downlink delay; None
        past the deadline (counted from the end of the uplink, as a device's reply timer
        would)."""
        link, deadline = self._link, self.config.deadline_s
        sent = time.monotonic()
        if link is not None:
            sent = ready + float(link.uplink_s[i])
            await self._sleep_until(sent)
        if device.session is not None:
            records.request_id[i] = request_id(device.session.next_seq)
        records.published_s[i] = time.monotonic() - self.started_s
        result = await device.offload(frame, deadline)
        if result is not None:
            records.replied_s[i] = time.monotonic() - self.started_s
        if link is None or result is None:
            return result
        left = sent + deadline - time.monotonic()
        if link.reply_lost[i] or link.downlink_s[i] > left:
            await self._sleep_until(sent + deadline)
            return None
        await self._sleep_until(time.monotonic() + float(link.downlink_s[i]))
        return result

    async def _sleep_until(self, monotonic_s: float) -> None:
        """Sleep precisely (`PreciseTimer`) while a schedule runs, else with asyncio."""
        if self._timer is None:
            await _sleep_until(monotonic_s)
        else:
            await self._timer.sleep_until(monotonic_s)

    async def _disconnect(
        self,
        fault: Disconnection,
        connections: list[asyncio.Task[None]],
        address: BrokerAddress,
        stop: asyncio.Event,
        t0: float,
    ) -> None:
        if fault.trigger is None:
            await _sleep_until(t0 + fault.at_s)
        else:
            while not fault.trigger.exists():
                await asyncio.sleep(0.02)
        self._disconnected.update(fault.devices)
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
        started_file: Path | None = None,
    ) -> FleetRecords:
        """Connect every device, attach (handshake), then play the schedule (sorted by
        arrival) in real time; return when every request has finished.

        The schedule starts when every device is attached or ``handshake_timeout_s`` has
        passed, whichever is first: a device still without a session (the edge is down or
        died) answers its requests itself and keeps handshaking (`Device`); `events` counts
        them (``unattached_at_start``). ``start_at`` (a `time.time` instant) starts the
        schedule then rather than as soon as the devices are attached: several fleet processes
        start together. ``link`` (arrays in the order of the arguments) emulates each
        request's device time and radio (`tinylarge.deploy.link_emulator`); it is planned for
        the shipped model's decisions, so run it without pushing new models.
        ``disconnections`` take devices off the broker for a while during the schedule (a
        fault to survive: their requests fall back meanwhile). ``started_file`` gets the
        schedule's start (`time.time`) when it starts, for whoever injects faults from
        outside; `events` has it too.
        """
        order = np.argsort(arrival_s, kind="stable")
        records = FleetRecords(device[order], sample[order], arrival_s[order].astype(np.float64))
        self._decided = {}  # decisions belong to one schedule
        self._link = None if link is None else _reordered(link, order)
        self._transport = "mqtt-tls" if address.tls else "mqtt"
        stop = asyncio.Event()
        self._timer = PreciseTimer.acquire(asyncio.get_running_loop())
        connections = [asyncio.create_task(d.run(address, stop)) for d in self.devices]
        try:
            await self._attach()
            await self._decide_installed(records)
            if start_at is not None:
                await asyncio.sleep(max(0.0, start_at - time.time()))
            t0 = self.started_s = time.monotonic()
            self._started_unix = time.time()
            self._disconnected = set()
            self._unattached_at_start = sum(d.session is None for d in self.devices)
            if started_file is not None:
                started_file.write_text(f"{self._started_unix!r}\n")
            faults = [
                asyncio.create_task(self._disconnect(fault, connections, address, stop, t0))
                for fault in disconnections
            ]
            await self._play(records, t0, tick_s)
            for task in faults:  # a trigger that never came, or devices still off
                task.cancel()
            await asyncio.gather(*faults, return_exceptions=True)
        finally:
            stop.set()
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            self._timer.release()
            self._timer = None
        return records

    async def _attach(self) -> None:
        """Wait until every device is attached, at most ``handshake_timeout_s``; those still
        handshaking then carry on meanwhile (the module doc)."""
        attached = asyncio.gather(*(d.attached.wait() for d in self.devices))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(attached, self.config.handshake_timeout_s)

    async def _decide_installed(self, records: FleetRecords) -> None:
        """Decisions of the installed models before the clock starts (a version pushed later
        is run when a device first uses it: a one-off pause of the fleet process); then
        Python's garbage collector is kept off what exists."""
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

    async def _play(self, records: FleetRecords, t0: float, tick_s: float) -> None:
        """Hand every request to its own task at its arrival; return when all have ended.

        Only the running tasks are held (a finished one is dropped at once): holding every
        task until the end made a 30-minute soak at 500 requests/s grow by ~30 MB a minute.
        The first exception a request raised is raised here, after all have ended."""
        running: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            error = None if task.cancelled() else task.exception()
            if error is not None:
                failures.append(error)

        start = 0
        while start < records.device.size:
            now = time.monotonic() - t0
            # hand requests out a little ahead: each then sleeps to its own instant once
            # (every sleep is rounded up to epoll's 1 ms, so fewer sleeps, less skew)
            ahead = now + LOOKAHEAD_S
            end = int(np.searchsorted(records.scheduled_s, ahead, side="right"))
            if end > start:
                for i in range(start, end):
                    task = asyncio.create_task(self._one(records, i, t0))
                    running.add(task)
                    task.add_done_callback(finished)
                start = end
            else:
                await asyncio.sleep(min(tick_s, max(0.0, records.scheduled_s[start] - now)))
        while running:
            await asyncio.wait(set(running))
        if failures:
            raise failures[0]
