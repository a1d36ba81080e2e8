"""Sessions: handshake, round trips, replay window, and every rejection's reason."""

from __future__ import annotations

import pytest

from tinylarge.secure import (
    BadSignature,
    BadTag,
    DeviceHandshake,
    Identity,
    Malformed,
    Registry,
    Replay,
    SecurityError,
    TooLarge,
    UnknownDevice,
    handshake,
    overhead_bytes,
    server_accept,
)
from tinylarge.secure.replay import ReplayWindow


@pytest.fixture(scope="module")
def parties() -> tuple[Identity, Identity, Registry]:
    device, server = Identity.generate("sensor-7"), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    return device, server, registry


@pytest.mark.parametrize("aead", ["chacha20-poly1305", "aes-256-gcm"])
def test_round_trip_both_directions(
    parties: tuple[Identity, Identity, Registry], aead: str
) -> None:
    device, server = handshake(*parties, aead=aead)  # type: ignore[arg-type]
    for i in range(3):
        wire = device.seal(7, b"frame %d" % i)
        assert server.open(wire) == (7, b"frame %d" % i)
        assert device.open(server.seal(9, b"label %d" % i)) == (9, b"label %d" % i)
    assert len(device.seal(1, b"x" * 256)) == 256 + overhead_bytes("sensor-7") == 256 + 35


def test_replay_and_too_old_are_rejected_reordering_within_the_window_accepted_once(
    parties: tuple[Identity, Identity, Registry],
) -> None:
    device, server = handshake(*parties, window=4)
    wires = [device.seal(1, bytes([i])) for i in range(8)]
    assert server.open(wires[2]) == (1, b"\x02")
    assert server.open(wires[0]) == (1, b"\x00")  # late but inside the window
    with pytest.raises(Replay, match="already accepted"):
        server.open(wires[0])
    assert server.open(wires[7]) == (1, b"\x07")
    with pytest.raises(Replay, match="older than the window"):
        server.open(wires[1])  # 7 - 1 >= 4
    assert server.open(wires[5]) == (1, b"\x05")


def test_a_forged_message_does_not_move_the_window(
    parties: tuple[Identity, Identity, Registry],
) -> None:
    device, server = handshake(*parties)
    wire = bytearray(device.seal(1, b"payload"))
    wire[-1] ^= 1
    with pytest.raises(BadTag):
        server.open(bytes(wire))
    assert server.window.highest == -1
    wire[-1] ^= 1
    assert server.open(bytes(wire)) == (1, b"payload")


def test_header_edits_fail_the_tag_and_foreign_ids_are_named(
    parties: tuple[Identity, Identity, Registry],
) -> None:
    device, server = handshake(*parties)
    wire = device.seal(3, b"abc")
    with pytest.raises(BadTag):
        server.open(wire[:1] + bytes([4]) + wire[2:])  # message type changed
    forged = wire[:3] + b"sensor-8" + wire[11:]
    with pytest.raises(UnknownDevice, match="sensor-8"):
        server.open(forged)
    with pytest.raises(Malformed, match="too short"):
        server.open(wire[:20])
    with pytest.raises(Malformed, match="version"):
        server.open(bytes([2]) + wire[1:])


def test_size_limit(parties: tuple[Identity, Identity, Registry]) -> None:
    device, server = handshake(*parties, max_payload=100)
    with pytest.raises(TooLarge):
        device.seal(1, b"x" * 101)
    big_device, _ = handshake(*parties, max_payload=1000)
    with pytest.raises(TooLarge, match="exceeds the limit of 100"):
        server.open(big_device.seal(1, b"x" * 101))


def test_handshake_rejects_unknown_devices_and_bad_signatures(
    parties: tuple[Identity, Identity, Registry],
) -> None:
    device, server, registry = parties
    stranger = DeviceHandshake(Identity.generate("stranger"))
    with pytest.raises(UnknownDevice, match="'stranger' is not enrolled"):
        server_accept(stranger.hello(), server, registry)
    impostor = DeviceHandshake(Identity.generate("sensor-7"))  # enrolled id, other key
    with pytest.raises(BadSignature):
        server_accept(impostor.hello(), server, registry)
    honest = DeviceHandshake(device)
    reply, _ = server_accept(honest.hello(), server, registry)
    with pytest.raises(BadSignature):  # a reply signed by someone else
        honest.finish(reply, Identity.generate("edge").public_key)
    with pytest.raises(Malformed):
        server_accept(honest.hello()[:-1], server, registry)
    assert issubclass(BadSignature, SecurityError) and issubclass(Replay, SecurityError)


def test_replay_window_bookkeeping_on_a_hand_example() -> None:
    window = ReplayWindow(3)
    for seq in (5, 3, 4):
        window.accept(seq)
    for seq in (3, 4, 5, 2):
        with pytest.raises(Replay):
            window.check(seq)
    window.accept(9)
    window.accept(7)
    with pytest.raises(Replay):
        window.check(6)  # 9 - 6 >= 3
    with pytest.raises(ValueError, match=r"1\.\.4096"):
        ReplayWindow(0)


def test_sequence_numbers_a_request_reply_protocol_can_match_on(
    parties: tuple[Identity, Identity, Registry],
) -> None:
    from tinylarge.secure.wire import parse

    device, server = handshake(*parties)
    assert server.last_opened_seq is None
    for expected in range(3):
        assert device.next_seq == expected
        wire = device.seal(1, b"frame")
        assert parse(wire, 1 << 20)[0].seq == expected  # what the header carries
        server.open(wire)
        assert server.last_opened_seq == expected
    with pytest.raises(SecurityError):
        server.open(wire)  # a replay is refused and leaves the last accepted number alone
    assert server.last_opened_seq == 2
