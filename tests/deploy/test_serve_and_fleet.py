"""The edge server and device agents over a real Mosquitto: answers, bytes, batching, attacks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import numpy as np
import pytest

from tinylarge.deploy.broker import Broker
from tinylarge.deploy.clock import MAX_LEAD_S
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.fleet import Fleet
from tinylarge.deploy.protocol import Topics, publish_packet_bytes
from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT, FleetRecords
from tinylarge.deploy.server import EdgeServer
from tinylarge.integrate.inference.baselines import Cascade, LargeOnly
from tinylarge.integrate.inference.contract import Policy
from tinylarge.secure.identity import Identity
from tinylarge.secure.messages import reply_payload_bytes
from tinylarge.secure.wire import overhead_bytes
from tinylarge.tiny.runtime import run as run_int8

from .conftest import World

Schedule = tuple[np.ndarray, np.ndarray, np.ndarray]


def run_system(
    broker: Broker,
    world: World,
    policy: Policy,
    schedule: Schedule,
    *,
    prefix: str,
    server_options: dict[str, Any] | None = None,
    during: Callable[[EdgeServer], Awaitable[None]] | None = None,
    keep: dict[str, Fleet] | None = None,
) -> tuple[FleetRecords, EdgeServer]:
    """Server and fleet in one event loop, on the real broker; ``during`` runs beside them;
    ``keep`` gets the fleet (its devices' events)."""
    topics = Topics(prefix)
    server = EdgeServer(
        world.predict,
        world.config(**(server_options or {})),
        world.edge,
        world.registry,
        topics=topics,
    )
    fleet = Fleet(
        world.tiny,
        policy,
        world.devices,
        world.edge.public_key,
        world.frames,
        topics=topics,
        config=FleetConfig(deadline_s=2.0),
    )
    if keep is not None:
        keep["fleet"] = fleet

    async def main() -> FleetRecords:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(broker.address, stop))
        await asyncio.wait_for(server.connected.wait(), 5)
        side = asyncio.create_task(during(server)) if during is not None else None
        try:
            return await fleet.run(broker.address, *schedule)
        finally:
            if side is not None:
                await side
            stop.set()
            await serving

    return asyncio.run(main()), server


def schedule(n: int, n_devices: int, duration_s: float, seed: int = 0) -> Schedule:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, n_devices, n),
        rng.integers(0, 200, n),
        np.sort(rng.uniform(0, duration_s, n)),
    )


def test_every_offload_is_answered_by_the_edge_with_the_bytes_the_simulator_counts(
    broker: Broker, world: World
) -> None:
    device, sample, arrival = schedule(60, 6, 1.0)
    records, server = run_system(broker, world, LargeOnly(256), (device, sample, arrival),
                                 prefix="t1")  # fmt: skip
    assert records.lost == 0 and (records.route == BY_EDGE).all()
    order = np.argsort(arrival, kind="stable")
    np.testing.assert_array_equal(records.answer, world.edge_answers(sample[order]))
    # the protected messages are payload + header + tag, as the simulator charges them
    ids = [world.devices[d].device_id for d in records.device]
    assert records.bytes_up.tolist() == [256 + overhead_bytes(i) for i in ids]
    assert records.bytes_down.tolist() == [reply_payload_bytes(8) + overhead_bytes(i) for i in ids]
    assert records.mqtt_bytes_up[0] == publish_packet_bytes("t1/up/" + ids[0], 256 + 39)
    assert server.state.requests == server.state.replies == 60 and not server.state.rejected
    assert np.all(records.latency_s > 0) and np.all(records.latency_s < 2.0)


def test_the_device_runs_the_policy_on_its_own_logits(broker: Broker, world: World) -> None:
    logits = world.tiny.dequantize_output(run_int8(world.tiny, world.frames, arithmetic="tflm"))
    confidence = np.sort(np.exp(logits).max(1) / np.exp(logits).sum(1))
    policy = Cascade("max_softmax", threshold=float(np.median(confidence)), frame_bytes=256,
                     tiny_macs=1)  # fmt: skip
    device, sample, arrival = schedule(80, 4, 1.0, seed=1)
    records, _ = run_system(broker, world, policy, (device, sample, arrival), prefix="t2")
    order = np.argsort(arrival, kind="stable")
    s = sample[order]
    expected_offload = (
        np.exp(logits[s]).max(1) / np.exp(logits[s]).sum(1) < policy.threshold  # type: ignore[operator]
    )
    np.testing.assert_array_equal(records.offload, expected_offload)
    assert 0 < records.offload.sum() < 80 and records.lost == 0
    on_device = records.route == ON_DEVICE
    np.testing.assert_array_equal(records.answer[on_device], logits[s][on_device].argmax(1))
    np.testing.assert_array_equal(records.answer[~on_device], world.edge_answers(s[~on_device]))
    assert (records.bytes_up[on_device] == 0).all()


def test_a_burst_is_served_in_batches(broker: Broker, world: World) -> None:
    device = np.arange(120) % 12
    burst = (device, np.arange(120) % 200, np.zeros(120))  # all at once
    records, server = run_system(broker, world, LargeOnly(256), burst, prefix="t3",
                                 server_options={"max_batch": 16, "max_wait_s": 0.02})  # fmt: skip
    assert records.lost == 0 and (records.route == BY_EDGE).all()
    assert max(server.state.batch_sizes) == 16 and len(server.state.batch_sizes) < 60
    assert sum(server.state.batch_sizes) == 120


def test_forged_replayed_and_garbage_messages_are_rejected_while_devices_are_served(
    broker: Broker, world: World
) -> None:
    captured: list[tuple[str, bytes]] = []

    async def attacker(server: EdgeServer) -> None:
        async with aiomqtt.Client(broker.address.host, broker.address.port) as client:
            await client.subscribe("t4/up/+", qos=1)  # eavesdrop on real offloads
            async with asyncio.timeout(5):
                async for message in client.messages:
                    captured.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]
                    if len(captured) == 3:
                        break
            for topic, wire in captured:
                await client.publish(topic, wire, qos=1)  # replay
            stranger = Identity.generate("device-99999")  # not enrolled
            from tinylarge.secure.handshake import DeviceHandshake

            await client.publish("t4/hello/device-99999", DeviceHandshake(stranger).hello(), qos=1)
            victim = world.devices[0].device_id
            await client.publish(f"t4/up/{victim}", b"\x01\x01garbage" * 5, qos=1)
            topic, wire = captured[0]
            end = 11 + wire[2]  # forge a fresh sequence number: the header is authenticated
            forged = wire[: end - 8] + (10**6).to_bytes(8, "big") + wire[end:]
            await client.publish(topic, forged, qos=1)
            await asyncio.sleep(0.5)

    device, sample, arrival = schedule(100, 6, 1.5, seed=2)
    records, server = run_system(broker, world, LargeOnly(256), (device, sample, arrival),
                                 prefix="t4", during=attacker)  # fmt: skip
    assert records.lost == 0 and (records.route == BY_EDGE).all()  # honest devices unharmed
    rejected = server.state.rejected
    assert rejected == {
        "Replay": 3,
        "BadTag": 1,
        "handshake_UnknownDevice": 1,
        "Malformed": 1,  # the garbage: not a message of the wire format
    }
    assert server.state.requests == 100  # nothing but the honest frames reached the model


def test_a_restarted_server_is_reattached_and_no_request_is_lost(
    broker: Broker, world: World
) -> None:
    topics = Topics("t5")
    first, second = (
        EdgeServer(world.predict, world.config(), world.edge, world.registry, topics=topics)
        for _ in range(2)
    )
    everything = Cascade("max_softmax", threshold=2.0, frame_bytes=256, tiny_macs=1)  # all up,
    # with the tiny model's answer to fall back on
    fleet = Fleet(world.tiny, everything, world.devices[:6], world.edge.public_key,
                  world.frames, topics=topics, config=FleetConfig(deadline_s=0.5))  # fmt: skip
    device, sample, arrival = schedule(150, 6, 3.0, seed=3)

    async def main() -> FleetRecords:
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(first.serve(broker.address, stop_first))
        await asyncio.wait_for(first.connected.wait(), 5)

        async def restart() -> None:
            await asyncio.sleep(1.0)  # mid-run: gone, without a word to the devices
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            await asyncio.sleep(0.3)
            await second.serve(broker.address, stop_second)

        restarting = asyncio.create_task(restart())
        try:
            return await fleet.run(broker.address, device, sample, arrival)
        finally:
            stop_second.set()
            await restarting

    records = asyncio.run(main())
    assert records.lost == 0
    assert set(np.unique(records.route)) <= {BY_EDGE, TIMED_OUT}
    late = records.scheduled_s > 2.0  # well after the restart: all devices are back
    assert (records.route[late] == BY_EDGE).all() and late.sum() > 20
    assert second.state.handshakes == 6  # every device re-attached to the new process
    assert first.state.replies + second.state.replies == (records.route == BY_EDGE).sum()
    fell_back = records.route == TIMED_OUT
    order = np.argsort(arrival, kind="stable")
    own = run_int8(world.tiny, world.frames[sample[order]], arithmetic="tflm").argmax(1)
    np.testing.assert_array_equal(records.answer[fell_back], own[fell_back])


def test_a_restarted_broker_loses_no_request(
    world: World, mosquitto: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = Broker(tmp_path_factory.mktemp("broker-restart"), executable=mosquitto)
    own.start()
    topics = Topics("t6")
    server = EdgeServer(world.predict, world.config(), world.edge, world.registry, topics=topics)
    everything = Cascade("max_softmax", threshold=2.0, frame_bytes=256, tiny_macs=1)
    fleet = Fleet(world.tiny, everything, world.devices[:6], world.edge.public_key,
                  world.frames, topics=topics, config=FleetConfig(deadline_s=0.5))  # fmt: skip
    device, sample, arrival = schedule(150, 6, 4.0, seed=5)

    async def main() -> FleetRecords:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(own.address, stop))
        await asyncio.wait_for(server.connected.wait(), 5)

        async def restart() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(own.stop)  # SIGTERM: Mosquitto saves its sessions
            await asyncio.sleep(0.3)
            await asyncio.to_thread(own.start)

        restarting = asyncio.create_task(restart())
        try:
            return await fleet.run(own.address, device, sample, arrival)
        finally:
            await restarting
            stop.set()
            await serving

    try:
        records = asyncio.run(main())
    finally:
        own.stop()
    assert records.lost == 0
    assert set(np.unique(records.route)) <= {BY_EDGE, TIMED_OUT}
    late = records.scheduled_s > 3.0  # well after the restart: everyone reconnected
    assert (records.route[late] == BY_EDGE).all() and late.sum() > 20
    assert (records.route == TIMED_OUT).sum() < 60  # only what was in flight or offline


def test_a_fleet_spread_over_two_processes_merges_its_records(broker: Broker, world: World) -> None:
    import threading

    from tinylarge.deploy.fleet_processes import FleetRun, run_fleet

    topics = Topics("t7")
    server = EdgeServer(world.predict, world.config(), world.edge, world.registry, topics=topics)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    serving = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(broker.address, stop),)
    )
    serving.start()
    try:
        device, sample, arrival = schedule(90, 8, 1.0, seed=7)
        records, installed, _ = run_fleet(
            FleetRun(world.tiny, LargeOnly(256), world.devices[:8], world.edge.public_key,
                     world.frames, device, sample, arrival, broker.address, topics,
                     FleetConfig(deadline_s=2.0)),
            processes=2,
        )  # fmt: skip
    finally:
        loop.call_soon_threadsafe(stop.set)
        serving.join(10)
    order = np.argsort(arrival, kind="stable")
    np.testing.assert_array_equal(records.device, device[order])  # global ids, arrival order
    np.testing.assert_array_equal(records.sample, sample[order])
    assert records.lost == 0 and (records.route == BY_EDGE).all() and installed == [0] * 8
    np.testing.assert_array_equal(records.answer, world.edge_answers(sample[order]))
    assert server.state.handshakes == 8


def test_the_fleet_applies_each_requests_device_time_and_radio_delays(
    broker: Broker, world: World
) -> None:
    from tinylarge.deploy.link_emulator import LinkPlan

    n = 40
    device, sample = np.arange(n) % 4, np.arange(n) % 200
    arrival = np.linspace(0.0, 1.0, n)
    everything = Cascade("max_softmax", threshold=2.0, frame_bytes=256, tiny_macs=1)
    lost, reply_lost = np.zeros(n, bool), np.zeros(n, bool)
    lost[5], reply_lost[9] = True, True
    plan = LinkPlan(
        compute_s=np.full(n, 0.005),
        uplink_s=np.full(n, 0.030),
        lost=lost,
        downlink_s=np.full(n, 0.020),
        reply_lost=reply_lost,
    )
    topics = Topics("t8")
    server = EdgeServer(world.predict, world.config(), world.edge, world.registry, topics=topics)
    fleet = Fleet(world.tiny, everything, world.devices[:4], world.edge.public_key,
                  world.frames, topics=topics, config=FleetConfig(deadline_s=0.3))  # fmt: skip

    async def main() -> FleetRecords:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(broker.address, stop))
        await asyncio.wait_for(server.connected.wait(), 5)
        try:
            return await fleet.run(broker.address, device, sample, arrival, link=plan)
        finally:
            stop.set()
            await serving

    records = asyncio.run(main())
    assert records.lost == 0
    edge = records.route == BY_EDGE
    assert edge.sum() == n - 2 and records.route[5] == records.route[9] == TIMED_OUT
    # device time + uplink + the real round trip + downlink: never less than the emulated part
    # (but for the timer's head start: `tinylarge.deploy.clock` ends sleeps on time on average)
    early = MAX_LEAD_S
    assert (records.latency_s[edge] >= 0.055 - early).all()
    assert np.median(records.latency_s[edge]) < 0.1
    assert 0.005 - early <= records.latency_s[5] < 0.02  # lost on the air: answers itself at once
    assert records.mqtt_bytes_up[5] == 0 and records.bytes_up[5] > 0  # on air, never at the broker
    assert records.latency_s[9] >= 0.005 + 0.030 + 0.3 - early  # no reply came: the deadline


def test_devices_that_drop_off_the_broker_fall_back_and_come_back(
    broker: Broker, world: World
) -> None:
    from tinylarge.deploy.fleet import Disconnection

    topics = Topics("t9")
    server = EdgeServer(world.predict, world.config(), world.edge, world.registry, topics=topics)
    everything = Cascade("max_softmax", threshold=2.0, frame_bytes=256, tiny_macs=1)
    fleet = Fleet(world.tiny, everything, world.devices[:10], world.edge.public_key,
                  world.frames, topics=topics, config=FleetConfig(deadline_s=0.5))  # fmt: skip
    n = 200
    device, sample = np.arange(n) % 10, np.arange(n) % 200
    arrival = np.linspace(0.0, 2.5, n)
    away = Disconnection(at_s=0.5, devices=(3,), for_s=0.8)  # 10 % of the fleet

    async def main() -> FleetRecords:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(broker.address, stop))
        await asyncio.wait_for(server.connected.wait(), 5)
        try:
            return await fleet.run(broker.address, device, sample, arrival,
                                   disconnections=(away,))  # fmt: skip
        finally:
            stop.set()
            await serving

    records = asyncio.run(main())
    assert records.lost == 0
    mine = records.device == 3
    offline = mine & (records.scheduled_s > 0.55) & (records.scheduled_s < 1.25)
    assert offline.sum() >= 5 and (records.route[offline] == TIMED_OUT).all()
    back = mine & (records.scheduled_s > 1.8)
    assert back.sum() >= 5 and (records.route[back] == BY_EDGE).all()  # reconnected, same session
    assert (records.route[~mine] == BY_EDGE).all()  # nobody else noticed


def test_a_broker_killed_with_sigkill_loses_no_request(
    world: World, mosquitto: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = Broker(tmp_path_factory.mktemp("broker-kill"), executable=mosquitto)
    own.start()
    topics = Topics("t10")
    server = EdgeServer(world.predict, world.config(), world.edge, world.registry, topics=topics)
    everything = Cascade("max_softmax", threshold=2.0, frame_bytes=256, tiny_macs=1)
    fleet = Fleet(world.tiny, everything, world.devices[:6], world.edge.public_key,
                  world.frames, topics=topics, config=FleetConfig(deadline_s=0.5))  # fmt: skip
    device, sample, arrival = schedule(150, 6, 4.0, seed=6)

    async def main() -> FleetRecords:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(own.address, stop))
        await asyncio.wait_for(server.connected.wait(), 5)

        async def crash() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(own.kill)  # SIGKILL: no goodbye, no final save
            await asyncio.sleep(0.3)
            await asyncio.to_thread(own.start)

        crashing = asyncio.create_task(crash())
        try:
            return await fleet.run(own.address, device, sample, arrival)
        finally:
            await crashing
            stop.set()
            await serving

    try:
        records = asyncio.run(main())
    finally:
        own.stop()
    assert records.lost == 0
    assert set(np.unique(records.route)) <= {BY_EDGE, TIMED_OUT}
    late = records.scheduled_s > 3.0  # everyone reconnected and subscribed again
    assert (records.route[late] == BY_EDGE).all() and late.sum() > 20
