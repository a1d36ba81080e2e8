"""Devices whose handshake is not answered (an edge that is down or died for good) answer on
the device and keep trying with back-off, over a real Mosquitto; the fleet never crashes."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import numpy as np

from tinylarge.deploy.broker import Broker
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.fleet import Fleet
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import BY_EDGE, TIMED_OUT
from tinylarge.deploy.server import EdgeServer
from tinylarge.integrate.inference.baselines import LargeOnly
from tinylarge.secure.identity import Registry

from .conftest import World
from .test_serve_and_fleet import schedule

FAST = FleetConfig(deadline_s=1.0, handshake_timeout_s=0.3, hello_retry_max_s=0.6)
#: hellos at 0, 0.2, 0.6, 1.4, 2.2 s, ...: the wait doubles up to its cap
BACK_OFF = FleetConfig(deadline_s=1.0, handshake_timeout_s=0.2, hello_retry_max_s=0.8)


def test_an_edge_that_never_answers_leaves_every_request_answered_on_the_device(
    broker: Broker, world: World
) -> None:
    """An edge's boot id is retained, but no edge answers (it died after announcing itself):
    the fleet starts its schedule after the handshake wait, every offload falls back at once,
    and every device keeps sending hellos, further and further apart."""
    topics = Topics("dead-edge")
    devices = world.devices[:4]
    fleet = Fleet(world.tiny, LargeOnly(256), devices, world.edge.public_key, world.frames,
                  topics=topics, config=BACK_OFF)  # fmt: skip
    hellos: list[float] = []

    async def main():  # type: ignore[no-untyped-def]
        async with aiomqtt.Client(broker.address.host, broker.address.port) as edge:
            await edge.publish(topics.edge, b"dead-boot", qos=1, retain=True)
            await edge.subscribe(f"{topics.prefix}/hello/{devices[0].device_id}", qos=1)

            async def count() -> None:
                async for _ in edge.messages:
                    hellos.append(time.monotonic())

            counting = asyncio.create_task(count())
            try:
                return await fleet.run(broker.address, *schedule(30, 4, 2.0))
            finally:
                counting.cancel()

    records = asyncio.run(main())
    assert records.lost == 0 and (records.route == TIMED_OUT).all()
    events = fleet.events()
    assert events.unattached_at_start == 4 and events.hello_retries >= 4
    # the first wait is handshake_timeout_s, each next one twice as long up to the cap: the
    # measured gaps between one device's hellos (a loaded event loop only adds to a gap)
    gaps = np.diff(hellos)
    assert gaps.size >= 3 and gaps.min() >= 0.9 * BACK_OFF.handshake_timeout_s, gaps
    assert gaps[-1] >= 3 * BACK_OFF.handshake_timeout_s, gaps  # it grew
    assert gaps[1:].max() < BACK_OFF.hello_retry_max_s + 0.4, gaps  # and stopped growing


def test_a_device_refused_at_first_attaches_on_a_later_hello(broker: Broker, world: World) -> None:
    """The edge does not know the devices yet (hellos refused); once they are enrolled, their
    next hello (at most ``hello_retry_max_s`` later) attaches them and the edge answers."""
    topics = Topics("late-enrol")
    devices = world.devices[:3]
    server = EdgeServer(world.predict, world.config(), world.edge, Registry(), topics=topics)
    fleet = Fleet(world.tiny, LargeOnly(256), devices, world.edge.public_key, world.frames,
                  topics=topics, config=FAST)  # fmt: skip
    times: dict[str, float] = {}

    async def enrol_later() -> None:
        while fleet.started_s == 0.0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        for d in devices:
            server.registry.enroll(d.device_id, d.public_key)
        times["enrolled"] = time.monotonic() - fleet.started_s
        while any(d.session is None for d in fleet.devices):
            await asyncio.sleep(0.005)
        times["attached"] = time.monotonic() - fleet.started_s

    async def main():  # type: ignore[no-untyped-def]
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(broker.address, stop))
        await asyncio.wait_for(server.connected.wait(), 5)
        side = asyncio.create_task(enrol_later())
        try:
            return await fleet.run(broker.address, *schedule(120, 3, 4.0, seed=3))
        finally:
            await side
            stop.set()
            await serving

    records = asyncio.run(main())
    assert records.lost == 0 and fleet.events().unattached_at_start == 3
    assert server.state.rejected["handshake_UnknownDevice"] >= 3
    # attached within one back-off step of the enrolment (plus a loaded machine's slack)
    assert times["attached"] - times["enrolled"] < FAST.hello_retry_max_s + 1.0, times
    before = records.scheduled_s < times["enrolled"]
    after = records.scheduled_s > times["attached"] + 0.05
    assert before.sum() > 5 and (records.route[before] == TIMED_OUT).all()
    assert after.sum() > 20 and (records.route[after] == BY_EDGE).all()
