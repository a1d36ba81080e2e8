"""Stateful properties (hypothesis RuleBasedStateMachine), each against a plain model:
the replay window of a live session, the handshake with interleaved devices, and the installed
version of a device receiving signed bundles."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
)

from tinylarge.secure import (
    BadSignature,
    DeviceHandshake,
    Identity,
    Registry,
    Replay,
    SecurityError,
    Session,
    UnknownDevice,
    handshake,
    server_accept,
    sign_bundle,
    verify_bundle,
)

WINDOW = 4  # small, so that hypothesis reaches "older than the window" often
DEVICE, SERVER = Identity.generate("dev-1"), Identity.generate("edge")
REGISTRY = Registry()
REGISTRY.enroll(DEVICE.device_id, DEVICE.public_key)
STRANGER = Identity.generate("dev-x")  # never enrolled
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")


def _seq(wire: bytes) -> int:
    n = wire[2]
    return int(struct.unpack(">Q", wire[3 + n : 11 + n])[0])


class SessionMachine(RuleBasedStateMachine):
    """Messages sealed by the device reach the server in any order, repeated or corrupted; the
    server accepts exactly the fresh, intact ones a window of WINDOW allows."""

    sent = Bundle("sent")

    def __init__(self) -> None:
        super().__init__()
        self.device, self.server = handshake(DEVICE, SERVER, REGISTRY, window=WINDOW)
        self.accepted: set[int] = set()
        self.highest = -1
        self.payloads: dict[int, bytes] = {}

    @rule(target=sent, payload=st.binary(max_size=64), msg_type=st.integers(0, 255))
    def seal(self, payload: bytes, msg_type: int) -> bytes:
        wire = self.device.seal(msg_type, payload)
        self.payloads[_seq(wire)] = payload
        return wire

    @rule(target=sent, count=st.integers(2, 3 * WINDOW))
    def burst(self, count: int) -> MultipleResults[bytes]:
        return multiple(*(self.seal(bytes([i]), 1) for i in range(count)))

    @rule(wire=sent)
    def deliver(self, wire: bytes) -> None:
        seq = _seq(wire)
        fresh = seq not in self.accepted and seq > self.highest - WINDOW
        if not fresh:
            with pytest.raises(Replay):
                self.server.open(wire)
            return
        msg_type, payload = self.server.open(wire)
        assert payload == self.payloads[seq] and msg_type == wire[1]
        self.accepted.add(seq)
        self.highest = max(self.highest, seq)

    @rule(wire=sent, index=st.integers(0, 10_000), bit=st.integers(0, 7))
    def deliver_corrupted(self, wire: bytes, index: int, bit: int) -> None:
        i = index % len(wire)
        bad = wire[:i] + bytes([wire[i] ^ (1 << bit)]) + wire[i + 1 :]
        with pytest.raises(SecurityError):
            self.server.open(bad)  # the model is unchanged: nothing was accepted

    @rule(payload=st.binary(max_size=64))
    def reply(self, payload: bytes) -> None:
        assert self.device.open(self.server.seal(7, payload)) == (7, payload)

    @invariant()
    def window_matches_the_model(self) -> None:
        assert self.server.window.highest == self.highest


class HandshakeMachine(RuleBasedStateMachine):
    """Several handshakes in flight: a device finishes only with the reply to its own hello,
    unknown devices are refused, and finished sessions talk to their own server side only."""

    pending = Bundle("pending")
    answered = Bundle("answered")

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[Session, Session]] = []

    @rule(target=pending, enrolled=st.booleans())
    def hello(self, enrolled: bool) -> tuple[DeviceHandshake, bool]:
        return DeviceHandshake(DEVICE if enrolled else STRANGER), enrolled

    @rule(target=answered, start=consumes(pending))
    def answer(
        self, start: tuple[DeviceHandshake, bool]
    ) -> tuple[DeviceHandshake, bytes, Session | None]:
        device, enrolled = start
        if not enrolled:
            with pytest.raises(UnknownDevice):
                server_accept(device.hello(), SERVER, REGISTRY)
            return device, b"", None  # a dead end
        reply, session = server_accept(device.hello(), SERVER, REGISTRY)
        return device, reply, session

    @rule(mine=consumes(answered), other=answered)
    def finish(
        self,
        mine: tuple[DeviceHandshake, bytes, Session | None],
        other: tuple[DeviceHandshake, bytes, Session | None],
    ) -> None:
        device, reply, server_session = mine
        if server_session is None:
            return
        if other[1] and other[1] != reply:
            with pytest.raises(BadSignature):  # another handshake's reply
                device.finish(other[1], SERVER.public_key)
        self.pairs.append((device.finish(reply, SERVER.public_key), server_session))

    @precondition(lambda self: len(self.pairs) >= 1)
    @rule(payload=st.binary(max_size=32), data=st.data())
    def talk(self, payload: bytes, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.pairs) - 1))
        j = data.draw(st.integers(0, len(self.pairs) - 1))
        device, _ = self.pairs[i]
        _, server = self.pairs[j]
        wire = device.seal(1, payload)
        if i == j:
            assert server.open(wire) == (1, payload)
        else:  # other session keys: the tag cannot verify
            with pytest.raises(SecurityError):
                server.open(wire)


class InstalledVersionMachine(RuleBasedStateMachine):
    """A device installs a pushed bundle exactly when it is authentic, for its class and newer
    than what it runs; its installed version never goes down."""

    def __init__(self) -> None:
        super().__init__()
        self.installed = 0
        self.model = b""

    @rule(
        version=st.integers(1, 12),
        model=st.binary(min_size=1, max_size=64),
        forged=st.booleans(),
        other_target=st.booleans(),
    )
    def push(self, version: int, model: bytes, forged: bool, other_target: bool) -> None:
        signer = STRANGER if forged else SERVER
        bundle = sign_bundle(model, version, "l4r5" if not other_target else "h743", signer)
        should_install = not forged and not other_target and version > self.installed
        try:
            got = verify_bundle(bundle, SERVER.public_key, self.installed, "l4r5")
        except SecurityError:
            assert not should_install
            return
        assert should_install and got == model
        self.installed, self.model = version, got

    @invariant()
    def never_rolls_back(self) -> None:
        assert self.installed >= 0


SessionMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
# Rules that draw from an empty bundle (finish before two answers exist) are filtered out by
# Hypothesis's rule selection; on some seeds that trips the filter_too_much health check (seen
# once in CI) without being a flaw of the machine.
HandshakeMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=15, deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much],
)  # fmt: skip
InstalledVersionMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None
)
TestSession = SessionMachine.TestCase
TestHandshake = HandshakeMachine.TestCase
TestInstalledVersion = InstalledVersionMachine.TestCase
