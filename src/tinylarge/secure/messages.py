"""Message types of everything the simulator (or a deployment) exchanges through a session.

The type is the wire header's second byte (`tinylarge.secure.wire`), bound to the message by
the AEAD, so a receiver knows authentically what it got. Each kind's payload size is what the
simulator accounts for it; the session adds `tinylarge.secure.wire.overhead_bytes` to each.
"""

from __future__ import annotations

from enum import IntEnum

#: Bytes of a REPLY before its logits: the request's id (uint32: the low 32 bits of the
#: request's sequence number) and the answered class (uint8).
REPLY_HEADER_BYTES = 5


def reply_payload_bytes(num_classes: int) -> int:
    """Payload bytes of the edge's REPLY to an offload: request id, class, one int8 logit per
    class (what `tinylarge.deploy` sends and the simulator charges)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return REPLY_HEADER_BYTES + num_classes


class MessageType(IntEnum):
    """What a protected message carries (who sends it)."""

    #: An offloaded int8 frame (device -> edge), one byte per value.
    FRAME = 1
    #: The edge's answer to an offload (edge -> device).
    REPLY = 2
    #: Split inference / split learning: the device part's quantized activations (up).
    SPLIT_ACTIVATION = 3
    #: Split learning: the gradient of the activations (down).
    SPLIT_GRADIENT = 4
    #: Federated learning: a client's (compressed) model update (up).
    FEDERATED_UPDATE = 5
    #: Federated learning / split learning: the global model or the device part (down).
    GLOBAL_MODEL = 6
    #: Federated distillation: features, logits and labels (up).
    DISTILL_UPLOAD = 7
    #: Federated distillation: the server's soft targets (down).
    SOFT_TARGETS = 8
    #: A signed model bundle (`tinylarge.secure.bundle`) pushed over the air (down).
    MODEL_BUNDLE = 9
    #: Hybrid language model: a draft token to verify, or a request for the next token (up;
    #: `tinylarge.deploy.hlm_protocol` around `tinylarge.integrate.hybrid_lm.wire`).
    TOKEN_REQUEST = 10
    #: Hybrid language model: the edge's token (down).
    TOKEN_REPLY = 11
