"""What crosses the broker: topics, the offload and reply payloads, and MQTT packet sizes.

Topics (``P`` = the deployment's prefix, default ``tinylarge``; ``D`` = a device id)::

    P/hello/D    device -> edge   handshake hello (`tinylarge.secure.handshake`), QoS 1
    P/welcome/D  edge -> device   handshake reply, QoS 1
    P/up/D       device -> edge   sealed FRAME: the int8 frame, nothing else, QoS 1
    P/down/D     edge -> device   sealed REPLY: request id, class, int8 logits, QoS 1
    P/model      edge -> devices  signed model bundle, retained, QoS 1
    P/edge       edge -> devices  the edge's boot id, retained (a new one: handshake again)

The request id is the low 32 bits of the FRAME's session sequence number (authenticated in its
header), so the offload's payload is the frame alone: exactly what the simulator charges. The
REPLY is `tinylarge.secure.messages.reply_payload_bytes` long. The MQTT framing around each
payload (fixed header, topic, packet id) is not part of the simulator's radio accounting: it
is reported beside it (`publish_packet_bytes`, MQTT 5.0 section 3.3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.secure.messages import REPLY_HEADER_BYTES, reply_payload_bytes
from tinylarge.secure.transport import publish_bytes

#: Logits travel as int8 at this fixed scale (0.25 per step, range -32 .. 31.75).
REPLY_LOGIT_SCALE = 0.25
_REPLY_HEAD = struct.Struct("<IB")
_TOPIC_KINDS = ("hello", "welcome", "up", "down")
_FORBIDDEN_IN_ID = ("/", "+", "#")


def check_device_id_for_topics(device_id: str) -> str:
    """``device_id`` if it can stand in a topic level; ``ValueError`` naming what is not allowed."""
    if not device_id or any(c in device_id for c in _FORBIDDEN_IN_ID) or "\0" in device_id:
        raise ValueError(
            f"device id {device_id!r} cannot stand in an MQTT topic level: it must be non-empty "
            "and contain no '/', '+', '#' or NUL"
        )
    return device_id


@dataclass(frozen=True)
class Topics:
    """The topic names of one deployment (see the module doc)."""

    prefix: str = "tinylarge"

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in ("+", "#")):
            raise ValueError(f"topic prefix {self.prefix!r} must be non-empty, without + or #")

    def hello(self, device_id: str) -> str:
        return f"{self.prefix}/hello/{device_id}"

    def welcome(self, device_id: str) -> str:
        return f"{self.prefix}/welcome/{device_id}"

    def up(self, device_id: str) -> str:
        return f"{self.prefix}/up/{device_id}"

    def down(self, device_id: str) -> str:
        return f"{self.prefix}/down/{device_id}"

    @property
    def model(self) -> str:
        return f"{self.prefix}/model"

    @property
    def edge(self) -> str:
        return f"{self.prefix}/edge"

    def parse(self, topic: str) -> tuple[str, str]:
        """``(kind, device_id)`` of a per-device topic; ``ValueError`` for anything else."""
        head, _, rest = topic.partition(f"{self.prefix}/")
        kind, _, device_id = rest.partition("/")
        if head or kind not in _TOPIC_KINDS or not device_id or "/" in device_id:
            raise ValueError(f"topic {topic!r} is not a per-device topic under {self.prefix!r}")
        return kind, device_id


def request_id(seq: int) -> int:
    """The request id of the FRAME with session sequence number ``seq``."""
    return seq & 0xFFFFFFFF


def encode_reply(request: int, answer: int, logits: npt.ArrayLike) -> bytes:
    """REPLY payload: request id (uint32 LE), class (uint8), int8 logits at `REPLY_LOGIT_SCALE`."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    q = np.clip(np.round(z / REPLY_LOGIT_SCALE), -128, 127).astype(np.int8)
    return _REPLY_HEAD.pack(request, answer) + q.tobytes()


def decode_reply(payload: bytes, num_classes: int) -> tuple[int, int, npt.NDArray[np.float32]]:
    """``(request id, class, logits)`` of a REPLY; ``ValueError`` unless it has the right size
    and a class in range."""
    expected = reply_payload_bytes(num_classes)
    if len(payload) != expected:
        raise ValueError(
            f"a reply for {num_classes} classes is {expected} bytes, got {len(payload)}"
        )
    request, answer = _REPLY_HEAD.unpack_from(payload)
    if answer >= num_classes:
        raise ValueError(f"reply class {answer} is not in [0, {num_classes})")
    logits = np.frombuffer(payload, np.int8, offset=REPLY_HEADER_BYTES).astype(np.float32)
    return request, answer, logits * np.float32(REPLY_LOGIT_SCALE)


def publish_packet_bytes(topic: str, payload_bytes: int, *, qos: int = 1) -> int:
    """Bytes on the TCP stream of an MQTT 5.0 PUBLISH without properties: fixed header (1 +
    remaining-length varint), topic (2 + UTF-8 length), packet id (2, QoS > 0), property length
    (1), payload (MQTT 5.0 sections 3.3.1-3.3.3; `tinylarge.secure.transport.publish_bytes`)."""
    return int(publish_bytes(len(topic.encode()), payload_bytes, qos=qos))
