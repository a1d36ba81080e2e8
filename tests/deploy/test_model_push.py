"""Signed model bundles over the broker: the live loop's push reaches every device; a rolled-back,
forged or corrupted bundle is refused and the device keeps its model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import numpy as np

from tinylarge.config.training_config import TrainingSpec
from tinylarge.deploy.broker import Broker
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.fleet import Fleet
from tinylarge.deploy.live_loop import VERSION_FILE, LiveLoop
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import BY_EDGE, FleetRecords
from tinylarge.deploy.server import EdgeServer
from tinylarge.integrate.inference.baselines import LargeOnly
from tinylarge.secure.bundle import sign_bundle
from tinylarge.secure.identity import Identity
from tinylarge.tiny.model_file import to_bytes

from .conftest import World


def test_the_live_loop_pushes_a_new_model_that_every_device_installs(
    broker: Broker, world: World, tmp_path: Path
) -> None:
    topics = Topics("p1")
    loop = LiveLoop(
        tmp_path / "edge-state",
        world.tiny_float,
        tuple(world.tiny.class_names),
        TrainingSpec(epochs=1, batch_size=16, patience_epochs=0),
        world.edge,
        "device",
        update_every=40,
    )
    server = EdgeServer(world.predict, world.config(), world.edge, world.registry,
                        topics=topics, live_loop=loop)  # fmt: skip
    fleet = Fleet(world.tiny, LargeOnly(256), world.devices[:5], world.edge.public_key,
                  world.frames, topics=topics, config=FleetConfig(deadline_s=2.0))  # fmt: skip
    rng = np.random.default_rng(4)

    def schedule(n: int, duration_s: float) -> tuple[np.ndarray, ...]:
        return (
            rng.integers(0, 5, n),
            rng.integers(0, 200, n),
            np.sort(rng.uniform(0, duration_s, n)),
        )

    async def main() -> tuple[FleetRecords, FleetRecords]:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(broker.address, stop))
        await asyncio.wait_for(server.connected.wait(), 5)
        try:
            before = await fleet.run(broker.address, *schedule(60, 1.0))  # 60 > update_every
            async with asyncio.timeout(60):  # the update is built in the background
                while not server.pushed:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            after = await fleet.run(broker.address, *schedule(80, 2.0))
            return before, after
        finally:
            stop.set()
            await serving

    before, after = asyncio.run(main())
    for records in (before, after):
        assert records.lost == 0 and (records.route == BY_EDGE).all()
    assert server.pushed[0][1] == 1 and before.model_version[0] == 0  # shipped model first
    assert (tmp_path / "edge-state" / VERSION_FILE).read_text() == str(loop.version)
    # every device verified and installed the push; the retained copy seen again on
    # reconnecting is not a rollback
    assert all(d.version >= 1 and not d.refused for d in fleet.devices)
    # decided by the new model once installed (a device that was offline when it was pushed
    # gets it on reconnecting: queued for its session, and retained)
    installed_s = max(d.installs[0][0] for d in fleet.devices) - fleet.started_s
    assert (after.model_version[after.sent_s > installed_s] >= 1).all()
    assert (after.model_version >= 1).mean() > 0.5
    # what the edge gathered survives a restart, and versions keep growing
    again = LiveLoop(tmp_path / "edge-state", world.tiny_float, loop.class_names, loop.spec,
                     world.edge, "device")  # fmt: skip
    assert again.version == loop.version and again.gathered == server.state.replies


def test_rolled_back_forged_and_corrupted_bundles_are_refused(broker: Broker, world: World) -> None:
    topics = Topics("p2")
    fleet = Fleet(world.tiny, LargeOnly(256), world.devices[:4], world.edge.public_key,
                  world.frames, topics=topics)  # fmt: skip
    model = to_bytes(world.tiny)
    mallory = Identity.generate("edge")  # not the edge's key
    good_v2 = sign_bundle(model, 2, "device", world.edge)
    pushes = [
        (good_v2, None),
        (sign_bundle(model, 1, "device", world.edge), "Rollback"),  # older: refused
        (sign_bundle(model, 3, "device", mallory), "BadSignature"),
        (good_v2[:-10] + bytes(10), "HashMismatch"),  # corrupted model bytes
        (sign_bundle(model, 4, "other-mcu", world.edge), "WrongTarget"),
    ]

    async def main() -> None:
        stop = asyncio.Event()
        connections = [asyncio.create_task(d.run(broker.address, stop)) for d in fleet.devices]
        async with aiomqtt.Client(broker.address.host, broker.address.port) as edge:
            await asyncio.sleep(0.5)  # every device subscribed
            await edge.publish(topics.edge, b"boot", qos=1, retain=True)
            for bundle, _ in pushes:
                await edge.publish(topics.model, bundle, qos=1)
                await asyncio.sleep(0.2)
        stop.set()
        for c in connections:
            c.cancel()
        await asyncio.gather(*connections, return_exceptions=True)

    asyncio.run(main())
    for device in fleet.devices:
        assert device.version == 2  # installed v2, refused everything after it
        assert device.refused == {"Rollback": 1, "BadSignature": 1, "HashMismatch": 1,
                                  "WrongTarget": 1}  # fmt: skip
    assert fleet.models.by_version.keys() == {0, 2}
