"""The edge, the device agents and the fault run's adversary over a locked-down Mosquitto
(mutual TLS, per-device ACL, CRL): each connects with its own certificate, comes back with it
after a broker restart, a refusal is named, and a stolen certificate reaches one device's
topics only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tinylarge.deploy.adversary import (
    ACL_DENIED_KINDS,
    STOLEN_FLOOD_KINDS,
    Adversary,
    StolenCredentials,
)
from tinylarge.deploy.broker import Broker, BrokerSecurity
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.fleet import Fleet
from tinylarge.deploy.pki import Pki
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import BY_EDGE, FleetRecords
from tinylarge.deploy.refusal import RefusalWatch
from tinylarge.deploy.server import EdgeServer
from tinylarge.integrate.inference.baselines import LargeOnly

from .conftest import World
from .test_serve_and_fleet import Schedule, schedule

PREFIXES = ("tls1", "tls2", "tls3")


@dataclass(frozen=True)
class Locked:
    """A locked-down broker and the CA whose certificates it takes."""

    broker: Broker
    pki: Pki


@pytest.fixture(scope="module")
def locked(
    tmp_path_factory: pytest.TempPathFactory, mosquitto: str, world: World
) -> Iterator[Locked]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.issue_many([d.device_id for d in world.devices] + ["edge", "spare"])
    security = BrokerSecurity.from_pki(pki, PREFIXES)
    with Broker(tmp_path_factory.mktemp("broker"), executable=mosquitto,
                security=security) as running:  # fmt: skip
        yield Locked(running, pki)


def _run(
    locked: Locked,
    world: World,
    plan: Schedule,
    prefix: str,
    during: Callable[[], Awaitable[None]] | None = None,
) -> tuple[FleetRecords, EdgeServer]:
    """Edge and fleet over the locked-down broker, each with its own certificate."""
    topics, pki, address = Topics(prefix), locked.pki, locked.broker.address
    server = EdgeServer(world.predict, world.config(), world.edge, world.registry, topics=topics)
    fleet = Fleet(world.tiny, LargeOnly(256), world.devices, world.edge.public_key, world.frames,
                  topics=topics, config=FleetConfig(deadline_s=2.0),
                  tls=[pki.files(d.device_id) for d in world.devices])  # fmt: skip

    async def main() -> FleetRecords:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(address, stop, pki.files("edge")))
        await asyncio.wait_for(server.connected.wait(), 10)
        side = asyncio.create_task(during()) if during is not None else None
        try:
            return await fleet.run(address, *plan)
        finally:
            if side is not None:
                await side
            stop.set()
            await serving

    return asyncio.run(main()), server


def test_every_agent_connects_with_its_certificate_and_again_after_a_broker_restart(
    locked: Locked, world: World
) -> None:
    broker = locked.broker
    names = [f"u'device-{k:05d}'" for k in range(6)] + ["u'edge'"]
    before = {name: broker.log.read_text().count(name) for name in names}
    refused_before = broker.log_counts()["no_certificate"]  # the broker is shared by the module
    restarted: list[float] = []

    async def restart() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(broker.start)
        restarted.append(asyncio.get_running_loop().time())

    device, sample, arrival = schedule(120, 6, 5.0, seed=4)
    records, server = _run(locked, world, (device, sample, arrival), "tls1", restart)
    assert records.lost == 0 and restarted
    # after the restart every device is back (same certificate, same session) and answered
    late = records.scheduled_s > 3.5
    assert late.sum() > 10 and (records.route[late] == BY_EDGE).all()
    log = broker.log.read_text()
    for name in names:  # each connection carries its own CN as username, twice (a restart)
        assert log.count(name) - before[name] >= 2, name
    assert broker.log_counts()["no_certificate"] == refused_before and not server.state.rejected


def test_a_refused_connection_is_named_and_logged_once(
    locked: Locked, caplog: pytest.LogCaptureFixture
) -> None:
    pki, broker = locked.pki, locked.broker
    pki.revoke("spare")
    broker.reload()
    watch = RefusalWatch(broker.address, pki.files("spare"), "device spare", after_s=0.0)

    async def two_failures() -> tuple[object, object]:
        watch.begin()
        first = await watch.failed()
        return first, await watch.failed()  # the same run of failures: not asked again

    with caplog.at_level(logging.WARNING, logger="tinylarge.deploy"):
        first, second = asyncio.run(two_failures())
    assert watch.refusal is not None and watch.refusal.reason == "revoked" and watch.permanent
    assert first is watch.refusal and second is None
    (record,) = caplog.records  # once per run of failures
    assert record.getMessage().startswith("device spare: the broker refused the connection "
                                          "(revoked): TLS alert")  # fmt: skip
    watch.connected()  # a connection got through: the next run is diagnosed afresh
    assert watch.refusal is None and not watch.permanent
    healthy = RefusalWatch(broker.address, pki.files("device-00001"), "ok", after_s=0.0)
    healthy.begin()
    assert asyncio.run(healthy.failed()) is None  # the broker accepts it: nothing to name


def test_a_stolen_certificate_reaches_that_devices_topics_only(
    locked: Locked, world: World
) -> None:
    pki = locked.pki
    pki.revoke("spare")
    locked.broker.reload()
    stolen = world.devices[0].device_id
    others = tuple(d.device_id for d in world.devices[1:6])
    adversary = Adversary(
        locked.broker.address,
        Topics("tls2"),
        seed=2,
        credentials=StolenCredentials(stolen, pki.files(stolen), pki.files("spare"), others),
    )

    async def attack() -> None:
        stop = asyncio.Event()
        listening = asyncio.create_task(adversary.run(stop))
        while len(adversary.captured["down"]) < 3:  # the stolen device's own replies
            await asyncio.sleep(0.05)
        await adversary.flood(1.0, 200.0)
        await asyncio.sleep(0.3)
        stop.set()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)

    device = np.arange(240) % 6  # device 0 (the stolen one) offloads too
    plan = (device, np.arange(240) % 200, np.linspace(0.0, 4.0, 240))
    records, server = _run(locked, world, plan, "tls2", attack)
    assert records.lost == 0 and (records.route == BY_EDGE).all()
    sent = adversary.sent
    assert set(sent) == set(STOLEN_FLOOD_KINDS) and sum(sent.values()) == 200
    denied = sum(sent[k] for k in ACL_DENIED_KINDS)
    assert dict(adversary.refused) == {"no_certificate": 1, "revoked": 1, "acl_denied": denied}
    assert adversary.overheard == 0  # it heard nothing of devices 1-5
    assert all(device_id == stolen for _, device_id in map(_parse, adversary.captured["down"]))
    # only its forgeries on the stolen device's own topics reached the edge, and were refused
    rejected = server.state.rejected
    assert rejected["handshake_BadSignature"] == sent["forged_hello"]
    assert sum(rejected.values()) == sent["forged_hello"] + sent["garbage_own_up"]
    assert server.state.requests == 240  # the honest frames and nothing else
    assert locked.broker.log_counts()["no_certificate"] >= 1


def _parse(captured: tuple[str, bytes]) -> tuple[str, str]:
    return Topics("tls2").parse(captured[0])


def test_a_fleet_needs_one_certificate_per_device(world: World, tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    with pytest.raises(ValueError, match="one TLS certificate per device: got 1 for 12"):
        Fleet(world.tiny, LargeOnly(256), world.devices, world.edge.public_key, world.frames,
              tls=[pki.issue_client("device-00000")])  # fmt: skip
