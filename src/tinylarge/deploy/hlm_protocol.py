"""What the hybrid language model's deployment sends over the broker: its topics, and the
envelope around the scheme's messages (`tinylarge.integrate.hybrid_lm.wire`).

Topics (``P`` = the deployment's prefix, ``D`` = a device id) are those of the classification
deployment (`tinylarge.deploy.protocol.Topics`) under ``P/lm``::

    P/lm/hello/D    device -> edge   handshake hello, QoS 1
    P/lm/welcome/D  edge -> device   handshake reply, QoS 1
    P/lm/up/D       device -> edge   sealed TOKEN_REQUEST (below)
    P/lm/down/D     edge -> device   sealed TOKEN_REPLY (below)
    P/lm/edge       edge -> devices  the edge's boot id, retained (a new one: handshake again)

A device generates one sequence (its prompt, then its tokens), and the edge keeps one
target-model decoding state per device, fed with the tokens each request carries (the scheme's
kept tokens) and its own replies. The envelope says where in the sequence a request's tokens
go (``position``), so the edge can tell whether it is in step with the device; when it is not
(a restarted edge, a device that gave up on a reply and kept its own token), it answers SYNC,
and the device sends a FULL request: its kept tokens are then the end of its whole sequence,
and the edge starts a fresh state on them (as on a device's first request, which carries the
prompt).

Request payload (sealed as ``MessageType.TOKEN_REQUEST``)::

    offset  size  field
    0       1     scheme index in HYBRID_SCHEMES, | 0x80 for a FULL request
    1       4     position: uint32 LE, the sequence index of the first kept token
    5       ...   body: the scheme's TokenRequest or LlmRequest

The body's draft token (or, for LLM only, the token asked for) goes at sequence index
``decided = position + len(kept)``.

Reply payload (sealed as ``MessageType.TOKEN_REPLY``)::

    0       1     status: OK (0) or SYNC (1: send a FULL request)
    1       4     decided: uint32 LE, the sequence index of the token this reply decides
    5       ...   body: the scheme's TokenReply (OK), nothing (SYNC)

The envelope adds `ENVELOPE_BYTES` to each message besides the scheme's own bytes; the
session adds its header and tag (`tinylarge.secure.wire.overhead_bytes`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tinylarge.config.hybrid_lm_config import HYBRID_SCHEMES, HybridSchemeName
from tinylarge.deploy.protocol import Topics
from tinylarge.integrate.hybrid_lm.wire import ENVELOPE_BYTES

#: Reply status codes.
OK, SYNC = 0, 1
_FULL = 0x80
_HEAD = struct.Struct("<BI")
if _HEAD.size != ENVELOPE_BYTES:  # the simulator charges the shared figure
    raise ImportError(
        f"the envelope is {_HEAD.size} bytes, wire.ENVELOPE_BYTES says {ENVELOPE_BYTES}"
    )
_MAX_U32 = 0xFFFFFFFF


def lm_topics(prefix: str = "tinylarge") -> Topics:
    """The topics of the language-model deployment under ``prefix`` (module doc)."""
    return Topics(f"{prefix}/lm")


@dataclass(frozen=True)
class TokenEnvelope:
    """A device's token request: its scheme, FULL or not, where its kept tokens go and the
    scheme's request (``body``, `tinylarge.integrate.hybrid_lm.wire.encode`)."""

    scheme: HybridSchemeName
    full: bool
    position: int
    body: bytes

    def encode(self) -> bytes:
        """The request payload (module doc); ``ValueError`` for a field out of range."""
        if self.scheme not in HYBRID_SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}; schemes: {HYBRID_SCHEMES}")
        if not 0 <= self.position <= _MAX_U32:
            raise ValueError(f"position must lie in 0..{_MAX_U32}, got {self.position}")
        first = HYBRID_SCHEMES.index(self.scheme) | (_FULL if self.full else 0)
        return _HEAD.pack(first, self.position) + self.body


def decode_request(payload: bytes) -> TokenEnvelope:
    """A request payload as a `TokenEnvelope`; ``ValueError`` if it is shorter than the
    envelope or names no scheme."""
    if len(payload) < _HEAD.size:
        raise ValueError(f"a token request has at least {_HEAD.size} bytes, got {len(payload)}")
    first, position = _HEAD.unpack_from(payload)
    index = first & ~_FULL
    if index >= len(HYBRID_SCHEMES):
        raise ValueError(f"scheme index {index} is not in 0..{len(HYBRID_SCHEMES) - 1}")
    return TokenEnvelope(
        HYBRID_SCHEMES[index], bool(first & _FULL), position, payload[_HEAD.size :]
    )


@dataclass(frozen=True)
class ReplyEnvelope:
    """The edge's reply: ``OK`` with the scheme's reply (``body``), or ``SYNC`` (no body)."""

    status: int
    decided: int
    body: bytes = b""

    def encode(self) -> bytes:
        """The reply payload (module doc); ``ValueError`` for a field out of range."""
        if self.status not in (OK, SYNC) or not 0 <= self.decided <= _MAX_U32:
            raise ValueError(
                f"status must be OK (0) or SYNC (1) and decided in 0..{_MAX_U32}, got "
                f"{self.status}, {self.decided}"
            )
        return _HEAD.pack(self.status, self.decided) + self.body


def decode_reply(payload: bytes) -> ReplyEnvelope:
    """A reply payload as a `ReplyEnvelope`; ``ValueError`` if it is too short, has an
    unknown status, is an OK without a body or a SYNC with one."""
    if len(payload) < _HEAD.size:
        raise ValueError(f"a token reply has at least {_HEAD.size} bytes, got {len(payload)}")
    status, decided = _HEAD.unpack_from(payload)
    body = payload[_HEAD.size :]
    if status not in (OK, SYNC) or (status == SYNC) == bool(body):
        raise ValueError(
            f"reply status {status} with {len(body)} body bytes: expected OK (0) with the "
            "scheme's reply or SYNC (1) without one"
        )
    return ReplyEnvelope(status, decided, body)
