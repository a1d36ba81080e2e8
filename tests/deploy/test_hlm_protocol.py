"""The hybrid language model's envelope: round trips, refusals, and its bytes on the wire
(the scheme's message + the envelope + the session's header and tag)."""

from __future__ import annotations

import struct

import pytest

from tinylarge.config.hybrid_lm_config import HYBRID_SCHEMES
from tinylarge.deploy.hlm_protocol import (
    OK,
    SYNC,
    ReplyEnvelope,
    TokenEnvelope,
    decode_reply,
    decode_request,
    lm_topics,
)
from tinylarge.integrate.hybrid_lm.wire import (
    ENVELOPE_BYTES,
    TokenReply,
    TokenRequest,
    encode,
    request_bytes,
)
from tinylarge.secure import Identity, MessageType, Registry, handshake
from tinylarge.secure.wire import overhead_bytes


@pytest.mark.parametrize("scheme", HYBRID_SCHEMES)
@pytest.mark.parametrize("full", [False, True])
def test_a_request_round_trips_with_its_scheme_flag_and_position(scheme: str, full: bool) -> None:
    envelope = TokenEnvelope(scheme, full, 2**32 - 1, b"\x01body")  # type: ignore[arg-type]
    payload = envelope.encode()
    assert len(payload) == ENVELOPE_BYTES + 5
    assert payload[0] == HYBRID_SCHEMES.index(scheme) | (0x80 if full else 0)  # type: ignore[arg-type]
    assert struct.unpack_from("<I", payload, 1)[0] == 2**32 - 1
    assert decode_request(payload) == envelope


def test_a_reply_round_trips_and_a_sync_carries_nothing() -> None:
    ok = ReplyEnvelope(OK, 17, b"\x03\x05\x00\x01")
    assert decode_reply(ok.encode()) == ok
    sync = ReplyEnvelope(SYNC, 3)
    assert decode_reply(sync.encode()) == sync
    assert len(sync.encode()) == ENVELOPE_BYTES


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x00\x00", "at least 5 bytes"),
        (bytes([len(HYBRID_SCHEMES)]) + bytes(4), "scheme index"),
        (bytes([0x7F]) + bytes(4), "scheme index"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_request(payload)


@pytest.mark.parametrize(
    "payload", [b"\x00\x00", bytes([2, 0, 0, 0, 0]), bytes([OK, 0, 0, 0, 0]),
                bytes([SYNC, 0, 0, 0, 0, 9])],
)  # fmt: skip
def test_malformed_replies_are_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_reply(payload)


def test_fields_out_of_range_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="position"):
        TokenEnvelope("hlm", False, -1, b"").encode()
    with pytest.raises(ValueError, match="unknown scheme"):
        TokenEnvelope("nope", False, 0, b"").encode()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        ReplyEnvelope(7, 0).encode()


def test_topics_live_under_the_prefix_and_parse_back() -> None:
    topics = lm_topics("run-1")
    assert topics.up("device-00001") == "run-1/lm/up/device-00001"
    assert topics.parse("run-1/lm/down/device-00001") == ("down", "device-00001")
    assert topics.edge == "run-1/lm/edge"


def test_a_sealed_token_request_is_the_schemes_bytes_the_envelope_and_the_overhead() -> None:
    vocab, kept, payload = 1024, (5, 6, 7), bytes(2048)
    device, edge = Identity.generate("device-00042"), Identity.generate("edge")
    registry = Registry()
    registry.enroll(device.device_id, device.public_key)
    device_session, edge_session = handshake(device, edge, registry)
    body = encode(TokenRequest(kept, 9, payload), vocab)
    envelope = TokenEnvelope("hlm", False, 40, body)
    wire = device_session.seal(MessageType.TOKEN_REQUEST, envelope.encode())
    expected = request_bytes(len(kept), len(payload), vocab)
    assert len(wire) == overhead_bytes(device.device_id) + ENVELOPE_BYTES + expected
    assert edge_session.open(wire) == (MessageType.TOKEN_REQUEST, envelope.encode())
    reply = ReplyEnvelope(OK, 43, encode(TokenReply(11, True), vocab)).encode()
    down = edge_session.seal(MessageType.TOKEN_REPLY, reply)
    assert decode_reply(device_session.open(down)[1]).decided == 43
