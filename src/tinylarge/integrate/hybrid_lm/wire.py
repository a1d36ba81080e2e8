"""The hybrid schemes' messages between a device and the edge, byte-exact.

The edge keeps one decoding state per device. A request carries the tokens the edge has not
seen yet: the prompt (first request), then the tokens the device kept without sending them
(U-HLM's skipped drafts); the edge appends its own replies itself.

- `TokenRequest` (HLM, U-HLM, CU-HLM): kept tokens, the draft token and its distribution
  (`tinylarge.integrate.hybrid_lm.payload`).
- `LlmRequest` (LLM only): kept tokens; the edge samples the next token from its model.
- `TokenReply`: the token the edge decided and whether it is the device's draft.

Layout (little-endian; a token id takes ``w = token_bytes(V)`` bytes: 2 when the vocabulary
has at most 65,536 tokens, else 4; ``n`` is an unsigned LEB128 varint, the shortest form:
one byte for up to 127 kept tokens, the usual case)::

    TokenRequest  0x01 | n: varint | n kept ids | draft id | payload (the rest, >= 1 byte)
    LlmRequest    0x02 | n: varint | n kept ids
    TokenReply    0x03 | token id | accepted: 0x00 or 0x01

Sizes: `request_bytes`, `llm_request_bytes` and `reply_bytes` (equal to the encoded lengths;
the simulator's byte accounting uses them). `decode` raises ``ValueError`` saying what is
wrong with a malformed or hostile message: unknown type, truncated, trailing bytes, a count
that does not match, an id outside the vocabulary, an accepted flag other than 0 or 1.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Message type bytes.
TOKEN_REQUEST, LLM_REQUEST, TOKEN_REPLY = 0x01, 0x02, 0x03
#: Most kept tokens one request carries (the count is a varint of at most 32 bits).
MAX_KEPT = 0xFFFF_FFFF
#: Largest vocabulary the wire carries (ids are at most uint32).
MAX_VOCAB = 1 << 32
#: The deployment's envelope around every request and reply (`tinylarge.deploy.hlm_protocol`:
#: a scheme or status byte and the uint32 sequence position that keeps the edge in step with
#: the device), bytes. The simulator charges it on every message too.
ENVELOPE_BYTES = 5


@dataclass(frozen=True)
class TokenRequest:
    """A draft token sent for verification.

    Attributes
    ----------
    kept : tuple of int
        Tokens the edge has not seen (the prompt, or drafts kept unsent since the last
        request), in order.
    draft : int
        The draft token, drawn from the payload's distribution.
    payload : bytes
        The draft distribution (`tinylarge.integrate.hybrid_lm.payload`), non-empty.
    """

    kept: tuple[int, ...]
    draft: int
    payload: bytes


@dataclass(frozen=True)
class LlmRequest:
    """LLM only: a request for the next token; ``kept`` as in `TokenRequest`."""

    kept: tuple[int, ...]


@dataclass(frozen=True)
class TokenReply:
    """The edge's token; ``accepted`` says it is the device's draft (always False for
    LLM only)."""

    token: int
    accepted: bool


Message = TokenRequest | LlmRequest | TokenReply


def token_bytes(vocab: int) -> int:
    """Bytes of one token id on the wire for a vocabulary of ``vocab`` tokens (2 or 4)."""
    if not 1 <= vocab <= MAX_VOCAB:
        raise ValueError(f"the vocabulary size must lie in 1..{MAX_VOCAB}, got {vocab}")
    return 2 if vocab <= 1 << 16 else 4


def _check_kept(kept: int) -> None:
    if not 0 <= kept <= MAX_KEPT:
        raise ValueError(f"a request carries 0..{MAX_KEPT} kept tokens, got {kept}")


def varint(value: int) -> bytes:
    """Unsigned LEB128 of ``value`` (7 bits a byte, low first, high bit = more follows)."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """`varint` lengths of non-negative integers, elementwise."""
    sizes = np.ones(values.shape, dtype=np.int64)
    for i in range(1, 5):
        sizes += values >= 1 << (7 * i)
    return sizes


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """The varint at ``offset`` and the offset after it; ``ValueError`` when it is cut
    short, longer than 5 bytes, above 2^32 - 1 or not in its shortest form."""
    value = 0
    for i in range(5):
        if offset + i >= len(data):
            raise ValueError("the message ends inside its kept-token count")
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if (i and byte == 0) or value > MAX_KEPT:
                raise ValueError("the kept-token count is not a shortest varint of <= 32 bits")
            return value, offset + i + 1
    raise ValueError("the kept-token count is longer than 5 bytes")


def request_bytes(kept: int, payload_bytes: int, vocab: int) -> int:
    """Bytes of a `TokenRequest` with ``kept`` kept tokens and a payload of ``payload_bytes``."""
    _check_kept(kept)
    if payload_bytes < 1:
        raise ValueError(f"a token request's payload has at least 1 byte, got {payload_bytes}")
    return 1 + len(varint(kept)) + (kept + 1) * token_bytes(vocab) + payload_bytes


def request_sizes(kept: np.ndarray, payload_bytes: np.ndarray, vocab: int) -> np.ndarray:
    """`request_bytes` elementwise over arrays of kept counts and payload sizes, int64."""
    k = np.asarray(kept, dtype=np.int64)
    b = np.asarray(payload_bytes, dtype=np.int64)
    if k.size and (k.min() < 0 or k.max() > MAX_KEPT):
        raise ValueError(f"a request carries 0..{MAX_KEPT} kept tokens")
    if b.size and b.min() < 1:
        raise ValueError("a token request's payload has at least 1 byte")
    return np.asarray(1 + _varint_sizes(k) + (k + 1) * token_bytes(vocab) + b, dtype=np.int64)


def llm_request_bytes(kept: int, vocab: int) -> int:
    """Bytes of an `LlmRequest` with ``kept`` tokens."""
    _check_kept(kept)
    return 1 + len(varint(kept)) + kept * token_bytes(vocab)


def reply_bytes(vocab: int) -> int:
    """Bytes of a `TokenReply`."""
    return 1 + token_bytes(vocab) + 1


def _ids(tokens: Sequence[int], vocab: int) -> bytes:
    bad = [t for t in tokens if not 0 <= t < vocab]
    if bad:
        raise ValueError(f"token id {bad[0]} is outside the vocabulary 0..{vocab - 1}")
    code = "H" if token_bytes(vocab) == 2 else "I"
    return struct.pack(f"<{len(tokens)}{code}", *tokens)


def encode(message: Message, vocab: int) -> bytes:
    """The bytes of ``message`` (module docstring); ``ValueError`` for a field out of range."""
    if isinstance(message, TokenReply):
        return bytes([TOKEN_REPLY]) + _ids([message.token], vocab) + bytes([message.accepted])
    _check_kept(len(message.kept))
    if isinstance(message, LlmRequest):
        return bytes([LLM_REQUEST]) + varint(len(message.kept)) + _ids(message.kept, vocab)
    if not message.payload:
        raise ValueError("a token request's payload must not be empty")
    head = bytes([TOKEN_REQUEST]) + varint(len(message.kept))
    return head + _ids([*message.kept, message.draft], vocab) + message.payload


def _read_ids(data: bytes, offset: int, count: int, vocab: int) -> tuple[int, ...]:
    width = token_bytes(vocab)
    if len(data) < offset + count * width:
        raise ValueError(
            f"the message ends after {len(data)} bytes, before its {count} token id(s) of "
            f"{width} bytes"
        )
    code = "H" if width == 2 else "I"
    ids = struct.unpack_from(f"<{count}{code}", data, offset)
    bad = [t for t in ids if t >= vocab]
    if bad:
        raise ValueError(f"token id {bad[0]} is outside the vocabulary 0..{vocab - 1}")
    return tuple(ids)


def _decode_reply(data: bytes, vocab: int) -> TokenReply:
    if len(data) != reply_bytes(vocab):
        raise ValueError(f"a token reply has {reply_bytes(vocab)} bytes, got {len(data)}")
    (token,) = _read_ids(data, 1, 1, vocab)
    if data[-1] not in (0, 1):
        raise ValueError(f"the accepted flag must be 0 or 1, got {data[-1]}")
    return TokenReply(token, bool(data[-1]))


def decode(data: bytes, vocab: int) -> Message:
    """The message in ``data``; ``ValueError`` saying what is wrong with a malformed one."""
    if not data:
        raise ValueError("an empty message")
    kind = data[0]
    if kind == TOKEN_REPLY:
        return _decode_reply(data, vocab)
    if kind not in (TOKEN_REQUEST, LLM_REQUEST):
        raise ValueError(f"unknown message type {kind:#04x}")
    count, start = _read_varint(data, 1)
    if kind == LLM_REQUEST:
        if len(data) != llm_request_bytes(count, vocab):
            raise ValueError(
                f"an LLM request with {count} kept tokens has {llm_request_bytes(count, vocab)} "
                f"bytes, got {len(data)}"
            )
        return LlmRequest(_read_ids(data, start, count, vocab))
    ids = _read_ids(data, start, count + 1, vocab)
    payload = data[start + (count + 1) * token_bytes(vocab) :]
    if not payload:
        raise ValueError("a token request ends before its payload")
    return TokenRequest(ids[:-1], ids[-1], payload)
