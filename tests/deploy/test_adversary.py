"""The hostile client of fault runs against a real edge and fleet on a real Mosquitto: its
flood of forged, mutated and replayed messages (replayed hellos too) harms no request."""

from __future__ import annotations

import asyncio

from tinylarge.deploy.adversary import FLOOD_KINDS, Adversary, bad_bundles
from tinylarge.deploy.broker import Broker
from tinylarge.deploy.fleet import Fleet
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import BY_EDGE
from tinylarge.deploy.server import EdgeServer
from tinylarge.integrate.inference.baselines import LargeOnly
from tinylarge.secure.bundle import verify_bundle
from tinylarge.secure.errors import SecurityError
from tinylarge.tiny.model_file import to_bytes

from .conftest import World
from .test_serve_and_fleet import run_system, schedule


def test_a_flood_of_forged_and_replayed_messages_harms_no_request(
    broker: Broker, world: World
) -> None:
    adversary = Adversary(broker.address, Topics("adv"), seed=1)
    flood_done: list[float] = []

    async def attack(server: EdgeServer) -> None:
        stop = asyncio.Event()
        listening = asyncio.create_task(adversary.run(stop))
        while len(adversary.captured["up"]) < 20:  # eavesdrop first
            await asyncio.sleep(0.05)
        await adversary.flood(1.0, 400.0)
        flood_done.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.5)
        stop.set()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)

    kept: dict[str, Fleet] = {}
    device, sample, arrival = schedule(400, 6, 4.0, seed=3)
    records, server = run_system(broker, world, LargeOnly(256), (device, sample, arrival),
                                 prefix="adv", during=attack, keep=kept)  # fmt: skip
    assert set(adversary.sent) == set(FLOOD_KINDS) and sum(adversary.sent.values()) == 400
    # every honest request answered by the edge, also after the replayed hellos
    assert records.lost == 0 and (records.route == BY_EDGE).all()
    assert server.state.requests == 400  # nothing but the honest frames reached the model
    assert adversary.answered == 0  # no reply or welcome to an invented identity
    events = kept["fleet"].events()
    assert events.unexpected_reply_s.size == 0  # no replayed frame was answered
    assert events.rejected_messages >= adversary.sent["replay_down"]  # replayed replies refused
    rejected = server.state.rejected
    assert rejected["handshake_UnknownDevice"] == adversary.sent["unenrolled_hello"]
    assert (
        sum(rejected.values())
        >= 400 - adversary.sent["replay_down"] - adversary.sent["replay_hello"]
    )


def test_bad_bundles_are_refused_for_the_reason_each_was_made(world: World) -> None:
    model = to_bytes(world.tiny)
    bundles = bad_bundles(model, "device", world.edge, installed_version=3)
    assert set(bundles) == {"bit_flip", "foreign_key", "garbage", "rollback"}
    reasons = {}
    for kind, (bundle, _) in bundles.items():
        try:
            verify_bundle(bundle, world.edge.public_key, 3, "device")
        except SecurityError as error:
            reasons[kind] = type(error).__name__
    assert reasons == {"bit_flip": "HashMismatch", "foreign_key": "BadSignature",
                       "garbage": "Malformed", "rollback": "Rollback"}  # fmt: skip
    assert "rollback" not in bad_bundles(model, "device", world.edge, installed_version=0)
