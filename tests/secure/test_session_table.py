"""The server's session table: a replayed hello never displaces a working session; a new
session takes over once a message opens under it."""

from __future__ import annotations

import pytest

from tinylarge.secure.errors import BadTag, Replay
from tinylarge.secure.handshake import DeviceHandshake, server_accept
from tinylarge.secure.identity import Identity, Registry
from tinylarge.secure.messages import MessageType
from tinylarge.secure.session import Session
from tinylarge.secure.session_table import SessionTable


@pytest.fixture()
def parties() -> tuple[Identity, Identity, Registry]:
    device, edge = Identity.generate("device-1"), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    return device, edge, registry


def _attach(
    table: SessionTable, device: Identity, edge: Identity, registry: Registry
) -> tuple[bytes, Session]:
    """A device handshake through the table: (its hello, the device's session)."""
    handshake = DeviceHandshake(device)
    hello = handshake.hello()
    reply, server_session = server_accept(hello, edge, registry)
    assert table.offer(device.device_id, hello, server_session)
    return hello, handshake.finish(reply, edge.public_key)


def test_a_new_session_becomes_current_when_its_first_message_opens(parties) -> None:  # type: ignore[no-untyped-def]
    device, edge, registry = parties
    table = SessionTable()
    _, session = _attach(table, device, edge, registry)
    assert table.current(device.device_id) is None and len(table) == 0  # not confirmed yet
    msg_type, payload, opened_by = table.open(
        device.device_id, session.seal(MessageType.FRAME, b"x")
    )
    assert (msg_type, payload) == (MessageType.FRAME, b"x")
    assert table.current(device.device_id) is opened_by and len(table) == 1


def test_a_replayed_hello_does_not_cut_the_device_off(parties) -> None:  # type: ignore[no-untyped-def]
    device, edge, registry = parties
    table = SessionTable()
    hello, session = _attach(table, device, edge, registry)
    table.open(device.device_id, session.seal(MessageType.FRAME, b"first"))
    # the attacker replays the captured hello: the server derives a session nobody can use
    _, replayed = server_accept(hello, edge, registry)
    assert table.offer(device.device_id, hello, replayed)  # a new (pending) session, not current
    for k in range(3):  # the device goes on with its session, unharmed
        _, payload, _ = table.open(device.device_id, session.seal(MessageType.FRAME, bytes([k])))
        assert payload == bytes([k])
    assert not table.offer(device.device_id, hello, replayed)  # the same hello again: nothing


def test_the_device_handshaking_again_moves_to_its_new_session(parties) -> None:  # type: ignore[no-untyped-def]
    device, edge, registry = parties
    table = SessionTable()
    _, old = _attach(table, device, edge, registry)
    table.open(device.device_id, old.seal(MessageType.FRAME, b"a"))
    _, new = _attach(table, device, edge, registry)
    table.open(device.device_id, new.seal(MessageType.FRAME, b"b"))
    with pytest.raises(BadTag):  # the old session is gone once the new one is confirmed
        table.open(device.device_id, old.seal(MessageType.FRAME, b"c"))


def test_rejections_name_the_current_sessions_reason(parties) -> None:  # type: ignore[no-untyped-def]
    device, edge, registry = parties
    table = SessionTable(max_pending=2)
    _, session = _attach(table, device, edge, registry)
    wire = session.seal(MessageType.FRAME, b"once")
    table.open(device.device_id, wire)
    with pytest.raises(Replay):
        table.open(device.device_id, wire)
    with pytest.raises(KeyError):
        table.open("device-2", wire)
    for _ in range(5):  # pending sessions are bounded
        _attach(table, device, edge, registry)
    assert len(table._entries[device.device_id].pending) == 2
    with pytest.raises(ValueError, match="max_pending"):
        SessionTable(max_pending=0)
