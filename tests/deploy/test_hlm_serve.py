"""The hybrid language model over a real Mosquitto: the edge (`LmEdgeServer`) and the device
agents (`LmFleet`) in one event loop, on two tiny random language models.

At a sampling temperature of 1e-3 every scheme is (almost surely) greedy, so what a device
writes can be checked against the models run independently (teacher forcing): every token
the edge decides is the target's argmax after the device's actual sequence, every token the
device keeps is the draft's. That holds only if the edge's decoding state per device follows
the device's sequence exactly, through batching, FULL requests, retries and restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiomqtt
import numpy as np
import pytest
import torch

from tinylarge.config.hybrid_lm_config import HybridLmConfig
from tinylarge.deploy.broker import Broker
from tinylarge.deploy.clock import MAX_LEAD_S
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.hlm_fleet import LmFleet, SchemeRun, StreamSettings
from tinylarge.deploy.hlm_link import TokenLinkPlan
from tinylarge.deploy.hlm_protocol import TokenEnvelope, lm_topics
from tinylarge.deploy.hlm_records import FALLBACK, TokenRecords, token_metrics
from tinylarge.deploy.hlm_server import LmEdgeServer
from tinylarge.deploy.protocol import publish_packet_bytes
from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT
from tinylarge.integrate.hybrid_lm.calibration import SKIP_NOTHING
from tinylarge.integrate.hybrid_lm.payload import DistributionCodec, full_payload_bytes
from tinylarge.integrate.hybrid_lm.schemes import HybridScheme, make_scheme
from tinylarge.integrate.hybrid_lm.wire import (
    ENVELOPE_BYTES,
    LlmRequest,
    TokenRequest,
    encode,
    reply_bytes,
    request_bytes,
)
from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.language_model import OurLanguageModel
from tinylarge.secure.handshake import DeviceHandshake
from tinylarge.secure.identity import Identity, Registry
from tinylarge.secure.messages import MessageType
from tinylarge.secure.wire import overhead_bytes

VOCAB = 64
PROMPTS = [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12]]
GREEDY = HybridLmConfig(temperature=1e-3)


@dataclass(frozen=True)
class Lm:
    """Two random toy models, an edge and enrolled devices (the last one is the attacker's)."""

    draft: OurLanguageModel
    target: OurLanguageModel
    edge: Identity
    devices: list[Identity]
    registry: Registry


@pytest.fixture(scope="module")
def lm() -> Lm:
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(OurLanguageModel(CausalTransformer(lm_architecture("toy", VOCAB))))
    edge = Identity.generate("edge")
    devices = [Identity.generate(f"device-{i:05d}") for i in range(4)]
    registry = Registry()
    for d in devices:
        registry.enroll(d.device_id, d.public_key)
    return Lm(models[0], models[1], edge, devices, registry)


def scheme(name: str, threshold: float | None = None) -> HybridScheme:
    return make_scheme(name, GREEDY, threshold)  # type: ignore[arg-type]


@dataclass
class System:
    """A running edge (replaceable: `restart_edge`) beside the fleet."""

    lm: Lm
    broker: Broker
    prefix: str
    servers: list[LmEdgeServer] = field(default_factory=list)
    stops: list[asyncio.Event] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_edge(self, schemes: dict[str, HybridScheme]) -> LmEdgeServer:
        lm, topics = self.lm, lm_topics(self.prefix)
        server = LmEdgeServer(lm.target, schemes, lm.edge, lm.registry, topics=topics,
                              max_batch=8, max_wait_s=0.002)  # fmt: skip
        stop = asyncio.Event()
        self.tasks.append(asyncio.create_task(server.serve(self.broker.address, stop)))
        self.servers.append(server)
        self.stops.append(stop)
        await asyncio.wait_for(server.connected.wait(), 5)
        return server

    async def stop_edges(self) -> None:
        for stop in self.stops:
            stop.set()
        await asyncio.gather(*self.tasks)


def run_lm_system(
    broker: Broker,
    lm: Lm,
    runs: list[SchemeRun],
    *,
    prefix: str,
    devices: int = 3,
    deadline_s: float = 2.0,
    during: Callable[[System], Awaitable[None]] | None = None,
) -> tuple[dict[str, TokenRecords], System, LmFleet]:
    """Edge and fleet in one event loop on the real broker; ``during`` runs beside them."""
    system = System(lm, broker, prefix)
    fleet = LmFleet(lm.draft, lm.devices[:devices], lm.edge.public_key,
                    topics=lm_topics(prefix), config=FleetConfig(deadline_s=deadline_s),
                    settings=StreamSettings(deadline_s=deadline_s, retry_s=0.1))  # fmt: skip

    async def main() -> dict[str, TokenRecords]:
        await system.start_edge({r.scheme.name: r.scheme for r in runs})
        side = asyncio.create_task(during(system)) if during is not None else None
        try:
            return await fleet.run(broker.address, runs)
        finally:
            if side is not None:
                await side
            await system.stop_edges()

    return asyncio.run(main()), system, fleet


def greedy(model: OurLanguageModel, sequence: list[int]) -> np.ndarray:
    """The model's argmax after each prefix of ``sequence`` (teacher forcing), shape (n - 1,)."""
    logits = model.logits(torch.tensor([sequence[:-1]]))[0]
    return logits.argmax(-1).numpy()


def check_tokens(lm: Lm, records: TokenRecords, prompts: list[list[int]]) -> None:
    """Every edge-decided token is the target's argmax and every kept one the draft's, after
    the device's own sequence."""
    for row in range(records.devices):
        prompt = prompts[row % len(prompts)]
        sequence = prompt + records.token[row].tolist()
        at = np.arange(records.tokens) + len(prompt) - 1
        by_edge, kept = records.route[row] == BY_EDGE, records.route[row] == ON_DEVICE
        target, draft = greedy(lm.target, sequence)[at], greedy(lm.draft, sequence)[at]
        np.testing.assert_array_equal(records.token[row][by_edge], target[by_edge])
        np.testing.assert_array_equal(records.token[row][kept], draft[kept])


def test_every_scheme_writes_what_its_models_would_with_the_bytes_accounted(
    broker: Broker, lm: Lm
) -> None:
    names = {"slm": None, "llm": None, "hlm": None, "u_hlm": SKIP_NOTHING, "cu_hlm": SKIP_NOTHING}
    runs = [SchemeRun(scheme(n, t), PROMPTS, 16) for n, t in names.items()]
    runs.append(SchemeRun(scheme("u_hlm", float("inf")), PROMPTS, 16))  # keeps every draft
    records, system, _ = run_lm_system(broker, lm, runs[:-1], prefix="h1")
    skipping, _, _ = run_lm_system(broker, lm, runs[-1:], prefix="h1b")
    for name, r in {**records, "u_hlm_skip_all": skipping["u_hlm"]}.items():
        assert r.lost == 0, name
        check_tokens(lm, r, PROMPTS)
        sends = name not in ("slm", "u_hlm_skip_all")
        assert (r.route == (BY_EDGE if sends else ON_DEVICE)).all(), name
        assert token_metrics(r)["uplink_fraction"] == float(sends)
    # HLM's bytes: the first request is FULL (it carries the prompt), then nothing is kept
    hlm, device = records["hlm"], lm.devices[0].device_id
    overhead = overhead_bytes(device) + ENVELOPE_BYTES
    kept = np.r_[len(PROMPTS[0]), np.zeros(15, int)]
    up = [overhead + request_bytes(k, full_payload_bytes(VOCAB), VOCAB) for k in kept]
    np.testing.assert_array_equal(hlm.bytes_up[0], up)
    np.testing.assert_array_equal(hlm.bytes_down[0], overhead + reply_bytes(VOCAB))
    assert hlm.mqtt_bytes_up[0, 1] == publish_packet_bytes(f"h1/lm/up/{device}", up[1])
    assert (hlm.full[:, 0] == 1).all() and (hlm.full[:, 1:] == 0).all()
    server = system.servers[0]
    assert max(server.state.batch_sizes) > 1  # devices verified together
    assert server.state.rejected == {}
    _check_round_trips(records, lm, server)


def _check_round_trips(records: dict[str, TokenRecords], lm: Lm, server: LmEdgeServer) -> None:
    """Every token answered on its only request is timed, and names a request the edge
    logged, whose time in the edge fits inside the device's round trip."""
    in_edge = {(d, r): sealed - got for d, r, got, sealed in server.state.answered}
    timed = 0
    for name, r in records.items():
        once = (r.route == BY_EDGE) & (r.attempts == 1)
        np.testing.assert_array_equal(r.request_id >= 0, once, err_msg=name)
        for row, k in zip(*np.nonzero(once), strict=True):
            rtt = r.replied_s[row, k] - r.published_s[row, k]
            assert 0 < in_edge[(lm.devices[row].device_id, int(r.request_id[row, k]))] < rtt
            timed += 1
    assert timed > 0


async def _hostile(system: System, victim: str, stranger: Identity) -> None:
    """Garbage, wrong sizes, wrong types, unknown devices and a well-formed request the edge
    cannot place, from an enrolled attacker with its own session and from nobody."""
    topics, address = lm_topics(system.prefix), system.broker.address
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(topics.welcome(stranger.device_id), qos=1)
        handshake = DeviceHandshake(stranger)
        await client.publish(topics.hello(stranger.device_id), handshake.hello(), qos=1)
        async with asyncio.timeout(5):
            async for message in client.messages:
                session = handshake.finish(bytes(message.payload), system.lm.edge.public_key)  # type: ignore[arg-type]
                break
        codec = DistributionCodec.full()
        q = codec.prepare(torch.full((1, VOCAB), 1.0 / VOCAB, dtype=torch.float64))[0]
        hlm = encode(TokenRequest((1,), 2, codec.encode(q)), VOCAB)
        empty = encode(LlmRequest(()), VOCAB)  # a FULL request must carry tokens
        bad = [
            (MessageType.FRAME, TokenEnvelope("hlm", True, 0, hlm).encode()),  # wrong type
            (MessageType.TOKEN_REQUEST, b"\x02\x00"),  # shorter than the envelope
            (MessageType.TOKEN_REQUEST, TokenEnvelope("hlm", True, 0, hlm[:-3]).encode()),
            (MessageType.TOKEN_REQUEST, TokenEnvelope("hlm", True, 0, hlm + b"x").encode()),
            (MessageType.TOKEN_REQUEST, TokenEnvelope("slm", True, 0, hlm).encode()),
            (MessageType.TOKEN_REQUEST, TokenEnvelope("llm", True, 0, empty).encode()),
            (MessageType.TOKEN_REQUEST, bytes([0x7F, 0, 0, 0, 0]) + hlm),  # no such scheme
        ]
        for kind, payload in bad:
            await client.publish(topics.up(stranger.device_id), session.seal(kind, payload))
        out_of_vocab = bytearray(TokenEnvelope("hlm", True, 0, hlm).encode())
        out_of_vocab[ENVELOPE_BYTES + 3] = 0xFF  # the kept token's low byte: id 255 >= 64
        await client.publish(
            topics.up(stranger.device_id),
            session.seal(MessageType.TOKEN_REQUEST, bytes(out_of_vocab)),
        )
        for topic, payload in [
            (topics.up(victim), b"\x01\x01garbage" * 5),  # no message of the wire format
            (topics.up("device-77777"), b"\x01" * 40),  # a device with no session
            (f"{topics.prefix}/up/", b"x"),  # no device id in the topic
        ]:
            await client.publish(topic, payload)
        unenrolled = DeviceHandshake(Identity.generate("device-88888")).hello()
        await client.publish(topics.hello("device-88888"), unenrolled)
        # well-formed, but continues no sequence the edge knows: SYNC, not a crash
        incremental = TokenEnvelope("hlm", False, 12, hlm).encode()
        await client.publish(
            topics.up(stranger.device_id), session.seal(MessageType.TOKEN_REQUEST, incremental)
        )
        await asyncio.sleep(0.5)


def test_hostile_input_is_counted_and_dropped_while_devices_are_served(
    broker: Broker, lm: Lm
) -> None:
    run = SchemeRun(scheme("hlm"), PROMPTS, 30)
    stranger = lm.devices[3]  # enrolled, but the fleet runs devices 0..2 only
    records, system, _ = run_lm_system(
        broker, lm, [run], prefix="h2",
        during=lambda s: _hostile(s, lm.devices[0].device_id, stranger),
    )  # fmt: skip
    r = records["hlm"]
    assert r.lost == 0 and (r.route == BY_EDGE).all()
    check_tokens(lm, r, PROMPTS)
    server = system.servers[0]
    assert server.state.rejected == {
        "not_a_token_request": 1,
        "bad_token_request": 7,
        "Malformed": 1,
        "no_session": 1,
        "bad_topic": 1,
        "handshake_UnknownDevice": 1,
    }
    assert server.lm["syncs"] == 1
    # the honest tokens and the SYNCed one (and re-sends a loaded machine's slow replies
    # provoke, answered from the edge's cache)
    assert server.state.requests - server.lm["repeats"] == 3 * 30 + 1


def test_a_restarted_broker_loses_no_token(
    lm: Lm, mosquitto: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = Broker(tmp_path_factory.mktemp("broker-restart"), executable=mosquitto)
    own.start()

    async def restart(system: System) -> None:
        await replies(system, 30)
        await asyncio.to_thread(own.stop)  # SIGTERM: Mosquitto saves its sessions
        await asyncio.sleep(0.3)
        await asyncio.to_thread(own.start)

    try:
        records, _, _ = run_lm_system(
            own, lm, [SchemeRun(scheme("hlm"), PROMPTS, 60)], prefix="h3", during=restart
        )
    finally:
        own.stop()
    r = records["hlm"]
    assert r.lost == 0
    assert set(np.unique(r.route)) <= {BY_EDGE, TIMED_OUT}
    assert (r.route[:, -10:] == BY_EDGE).all()  # everyone reconnected
    assert r.attempts.sum() > r.uploaded.sum()  # requests were re-sent across the restart
    check_tokens(lm, r, PROMPTS)  # and the edge still followed every device


async def replies(system: System, n: int) -> None:
    """Return once the first edge has sent ``n`` replies (at most 20 s)."""
    async with asyncio.timeout(20):
        while system.servers[0].state.replies < n:
            await asyncio.sleep(0.01)


def test_a_restarted_edge_resynchronises_every_device(broker: Broker, lm: Lm) -> None:
    run = SchemeRun(scheme("hlm"), PROMPTS, 40)

    async def restart(system: System) -> None:
        await replies(system, 20)
        system.stops[0].set()  # the edge goes away, and with it every decoding state
        await system.tasks[0]
        await system.start_edge({"hlm": run.scheme})  # a new boot id: devices handshake

    records, system, _ = run_lm_system(broker, lm, [run], prefix="h4", during=restart)
    r = records["hlm"]
    assert r.lost == 0
    check_tokens(lm, r, PROMPTS)
    new = system.servers[1]
    assert new.state.handshakes == 3 and new.state.replies > 0
    assert new.lm["full_requests"] + new.lm["syncs"] >= 3  # each device re-primed it


def test_the_emulated_link_delays_every_token_and_its_losses_time_out(
    broker: Broker, lm: Lm
) -> None:
    shape = (2, 12)
    outage, lost, reply_lost = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, bool)
    outage[0, 3] = lost[0, 3] = True  # no uplink grant: the device keeps its draft at once
    lost[1, 2] = True  # HARQ failure: the deadline passes
    reply_lost[1, 5] = True  # the edge answered, the device never heard it
    plan = TokenLinkPlan(0.004, 0.001, np.full(shape, 0.02), outage, lost,
                         np.full(shape, 0.01), reply_lost)  # fmt: skip
    run = SchemeRun(scheme("hlm"), PROMPTS, 12, link=plan)
    records, _, _ = run_lm_system(broker, lm, [run], prefix="h5", devices=2, deadline_s=0.3)
    r = records["hlm"]
    assert r.lost == 0
    timed_out = r.route == TIMED_OUT
    np.testing.assert_array_equal(timed_out, (lost & ~outage) | reply_lost)
    assert r.route[0, 3] == FALLBACK
    before = PROMPTS[0] + r.token[0, :3].tolist()
    assert r.token[0, 3] == greedy(lm.draft, [*before, 0])[-1]  # the draft's own token
    np.testing.assert_array_equal(r.radio_lost, lost | reply_lost)
    latency = r.latency_s
    early = 2 * MAX_LEAD_S  # the precise timer may wake a sleeper this much early
    delivered = r.route == BY_EDGE
    assert (latency[delivered] >= 0.004 + 0.001 + 0.02 + 0.01 - early).all()
    assert (latency[timed_out] >= 0.004 + 0.001 + 0.3 - early).all()  # deadline from sending
    assert latency[0, 3] < 0.3  # an outage is known at once
    assert r.attempts[0, 3] == 0 and r.attempts[1, 2] == 0  # neither reached the broker
    assert r.full[1, 6] == 1  # after a reply lost on the air the edge must be resynchronised
    assert token_metrics(r)["uplink_fraction"] == 1 - 1 / 24  # the outage sent nothing
    check_tokens(lm, r, PROMPTS)
