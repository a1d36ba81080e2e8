"""Wire messages: byte-exact round trips, sizes equal to the encoded lengths, the layout by
hand, and a clear ValueError for malformed or hostile bytes (never another exception)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylarge.integrate.hybrid_lm.wire import (
    MAX_KEPT,
    LlmRequest,
    Message,
    TokenReply,
    TokenRequest,
    decode,
    encode,
    llm_request_bytes,
    reply_bytes,
    request_bytes,
    request_sizes,
    token_bytes,
    varint,
)

MESSAGES: list[Message] = [
    TokenRequest((), 5, b"\x01"),
    TokenRequest((1, 2, 3), 0, bytes(range(40))),
    LlmRequest(()),
    LlmRequest((9, 0, 4)),
    TokenReply(7, True),
    TokenReply(0, False),
]


@pytest.mark.parametrize("vocab", [10, 65_536, 70_000])
@pytest.mark.parametrize("message", MESSAGES, ids=repr)
def test_round_trip_and_sizes(message: Message, vocab: int) -> None:
    data = encode(message, vocab)
    assert decode(data, vocab) == message
    if isinstance(message, TokenRequest):
        expected = request_bytes(len(message.kept), len(message.payload), vocab)
    elif isinstance(message, LlmRequest):
        expected = llm_request_bytes(len(message.kept), vocab)
    else:
        expected = reply_bytes(vocab)
    assert len(data) == expected


def test_layout_by_hand() -> None:
    assert encode(TokenRequest((3, 258), 1, b"\xaa\xbb"), 1024) == (
        b"\x01\x02" + struct.pack("<3H", 3, 258, 1) + b"\xaa\xbb"
    )
    assert encode(LlmRequest((70_001,)), 80_000) == b"\x02\x01" + struct.pack("<I", 70_001)
    assert encode(TokenReply(513, True), 1024) == b"\x03\x01\x02\x01"
    assert (token_bytes(65_536), token_bytes(65_537)) == (2, 4)
    assert reply_bytes(1024) == 4 and llm_request_bytes(0, 1024) == 2
    assert request_bytes(2, 2048, 1024) == 2 + 3 * 2 + 2048


@pytest.mark.parametrize(
    ("count", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
     (2**32 - 1, b"\xff\xff\xff\xff\x0f")],
)  # fmt: skip
def test_kept_count_is_a_leb128_varint(count: int, encoded: bytes) -> None:
    assert varint(count) == encoded
    assert request_bytes(count, 1, 10) == 1 + len(encoded) + (count + 1) * 2 + 1
    assert request_sizes(np.array([count]), np.array([1]), 10).tolist() == [
        request_bytes(count, 1, 10)
    ]
    if count < 1000:
        message = LlmRequest((0,) * count)
        assert encode(message, 10)[1 : 1 + len(encoded)] == encoded
        assert decode(encode(message, 10), 10) == message


def test_vectorized_request_sizes() -> None:
    kept, payload = np.array([0, 1, 5]), np.array([2048, 38, 38])
    sizes = request_sizes(kept, payload, 1024)
    pairs = zip(kept.tolist(), payload.tolist(), strict=True)
    assert sizes.tolist() == [request_bytes(k, b, 1024) for k, b in pairs]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x07", "unknown message type 0x07"),
        (b"\x01", "inside its kept-token count"),
        (b"\x01\x80", "inside its kept-token count"),
        (b"\x01\x80\x00\x01\x00\x01", "shortest varint"),
        (b"\x02\x80\x80\x80\x80\x10", "shortest varint of <= 32 bits"),
        (b"\x02\x80\x80\x80\x80\x80\x01", "longer than 5 bytes"),
        (b"\x01\x00", "before its 1 token id"),
        (b"\x01\x02\x01\x00", "before its 3 token id"),
        (b"\x01\x00\x01\x00", "before its payload"),
        (b"\x01\x00\x0b\x00\xff", "token id 11 is outside the vocabulary 0..9"),
        (b"\x02\x01\x01\x00\x00", "has 4 bytes, got 5"),
        (b"\x02\x02\x01\x00", "has 6 bytes, got 4"),
        (b"\x03\x01\x00\x02", "accepted flag must be 0 or 1"),
        (b"\x03\x01\x00", "has 4 bytes, got 3"),
        (b"\x03\x0a\x00\x01", "token id 10"),
    ],
)
def test_malformed_messages(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(data, 10)


def test_encode_refuses_fields_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode(TokenReply(10, False), 10)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode(TokenRequest((1, -1), 0, b"x"), 10)
    with pytest.raises(ValueError, match="payload must not be empty"):
        encode(TokenRequest((), 0, b""), 10)
    with pytest.raises(ValueError, match=f"0..{MAX_KEPT} kept tokens"):
        request_bytes(MAX_KEPT + 1, 1, 10)
    with pytest.raises(ValueError, match="vocabulary size"):
        token_bytes(0)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=40), vocab=st.sampled_from([1, 10, 300, 70_000]))
def test_hostile_bytes_raise_value_error_or_round_trip(data: bytes, vocab: int) -> None:
    try:
        message = decode(data, vocab)
    except ValueError:
        return
    assert encode(message, vocab) == data
