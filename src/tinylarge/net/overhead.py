"""What protocol layers under the application (`tinylarge.secure`, the message transport) add
to the traffic.

A neutral description the network costing uses without knowing which protocol produced it:

- per message, the bytes a layer adds (``message_bytes``: a header and a tag) and the device's
  time and energy per protected byte;
- optionally a `Framing`: how a transport carries each (already protected) message on its byte
  stream, exactly, per direction (e.g. MQTT PUBLISH packets in TLS records), with the device's
  time and energy per byte of that stream;
- per session (renewed every session lifetime): a handshake's bytes and the device's work;
- per connection (once per device, when it first connects): the transport's set-up bytes, round
  trips and the device's work (e.g. a TLS handshake and an MQTT CONNECT).

``ProtocolOverhead()`` is "no protocol": all zeros, no framing. `combine` stacks a security
layer on a transport. `tinylarge.secure.costs.protocol_overhead` builds the security layer's,
`tinylarge.secure.transport.transport_overhead` the transport's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_SESSION_FIELDS = ("session_up_bytes", "session_down_bytes", "session_device_s", "session_device_j")
_CONNECTION_FIELDS = (
    "connection_up_bytes",
    "connection_down_bytes",
    "connection_round_trips",
    "connection_device_s",
    "connection_device_j",
)


@runtime_checkable
class Framing(Protocol):
    """How a transport carries one message on its byte stream.

    ``stream_bytes(message_bytes, down=...)`` gives, element-wise, the bytes on the stream of
    messages of ``message_bytes`` bytes (int64 array; > 0 in, > 0 out) sent by the device
    (``down=False``) or to it (``down=True``). ``device_s_per_byte`` and ``device_j_per_byte``
    are the device's time (s) and energy (J) per byte of that stream (e.g. its record
    encryption).
    """

    @property
    def device_s_per_byte(self) -> float: ...

    @property
    def device_j_per_byte(self) -> float: ...

    def stream_bytes(self, message_bytes: IntArray, *, down: bool) -> IntArray: ...


@dataclass(frozen=True)
class ProtocolOverhead:
    """Per-message, per-session and per-connection costs of protocol layers.

    Attributes
    ----------
    message_bytes : int
        Bytes every message carries besides its payload (header + authentication tag).
    device_s_per_byte, device_j_per_byte : float
        Device time (s) and energy (J) to protect or check one byte of a message (payload and
        header), e.g. an AEAD's cycles per byte on the device's MCU.
    session_up_bytes, session_down_bytes : int
        Bytes of the session set-up (handshake) the device sends / receives.
    session_device_s, session_device_j : float
        Device compute time (s) and energy (J) of one session set-up (its public-key operations).
    framing : Framing, optional
        How the transport carries each message (payload + ``message_bytes``) on its stream;
        None: the message is what is sent.
    connection_up_bytes, connection_down_bytes : int
        Bytes the device sends / receives to open its connection (once per device).
    connection_round_trips : int
        Round trips before the connection carries a message (not on any request's latency:
        a device connects when it attaches).
    connection_device_s, connection_device_j : float
        Device compute time (s) and energy (J) of opening the connection.
    """

    message_bytes: int = 0
    device_s_per_byte: float = 0.0
    device_j_per_byte: float = 0.0
    session_up_bytes: int = 0
    session_down_bytes: int = 0
    session_device_s: float = 0.0
    session_device_j: float = 0.0
    framing: Framing | None = None
    connection_up_bytes: int = 0
    connection_down_bytes: int = 0
    connection_round_trips: int = 0
    connection_device_s: float = 0.0
    connection_device_j: float = 0.0

    def __post_init__(self) -> None:
        if self.framing is not None and not isinstance(self.framing, Framing):
            raise ValueError(f"framing must be a Framing or None, got {self.framing!r}")
        for f in fields(self):
            if f.name == "framing":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value!r}")
            if f.type == "int" and not isinstance(value, int | np.integer):
                raise ValueError(f"{f.name} must be an integer, got {value!r}")

    @property
    def enabled(self) -> bool:
        """Whether the protocol adds anything at all."""
        return self.framing is not None or any(
            getattr(self, f.name) for f in fields(self) if f.name != "framing"
        )

    @property
    def secures(self) -> bool:
        """Whether a message layer (header, tag, per-byte work or sessions) is present."""
        return bool(
            self.message_bytes
            or self.device_s_per_byte
            or self.device_j_per_byte
            or self.session_enabled
        )

    @property
    def session_enabled(self) -> bool:
        """Whether session set-ups cost anything."""
        return any(getattr(self, name) for name in _SESSION_FIELDS)

    @property
    def transport_enabled(self) -> bool:
        """Whether a transport (framing or a connection set-up) is present."""
        return self.framing is not None or any(getattr(self, n) for n in _CONNECTION_FIELDS)

    @property
    def connection_bytes(self) -> int:
        """Both directions of one connection set-up, bytes."""
        return self.connection_up_bytes + self.connection_down_bytes

    def sealed_bytes(self, payload_bytes: ArrayLike) -> IntArray:
        """Messages with these payloads: payload + header and tag; 0 stays 0 (none sent)."""
        p = np.asarray(payload_bytes, dtype=np.int64)
        if (p < 0).any():
            raise ValueError("payload_bytes must be >= 0")
        return np.where(p > 0, p + self.message_bytes, 0).astype(np.int64)

    def wire_bytes(self, payload_bytes: ArrayLike, *, down: bool = False) -> IntArray:
        """Bytes sent for messages with these payloads: the sealed message in the transport's
        framing (if any) for the device's direction (``down``: to the device); 0 stays 0."""
        sealed = self.sealed_bytes(payload_bytes)
        if self.framing is None:
            return sealed
        framed = np.asarray(self.framing.stream_bytes(np.maximum(sealed, 1), down=down))
        return np.where(sealed > 0, framed, 0).astype(np.int64)

    def device_time_s(self, payload_bytes: ArrayLike, *, down: bool = False) -> FloatArray:
        """Device time to protect (or check) messages with these payloads, s; 0 for none: the
        message layer's per-byte work on the sealed message, the framing's on its stream."""
        out = self.sealed_bytes(payload_bytes) * self.device_s_per_byte
        if self.framing is not None:
            out = out + self.wire_bytes(payload_bytes, down=down) * self.framing.device_s_per_byte
        return np.asarray(out, np.float64)

    def device_energy_j(self, payload_bytes: ArrayLike, *, down: bool = False) -> FloatArray:
        """Device energy to protect (or check) messages with these payloads, J; 0 for none
        (as `device_time_s`)."""
        out = self.sealed_bytes(payload_bytes) * self.device_j_per_byte
        if self.framing is not None:
            out = out + self.wire_bytes(payload_bytes, down=down) * self.framing.device_j_per_byte
        return np.asarray(out, np.float64)


def combine(security: ProtocolOverhead, transport: ProtocolOverhead) -> ProtocolOverhead:
    """``security``'s messages carried by ``transport``: the message layer and sessions of
    the first, the framing and connection set-up of the second.

    ``ValueError`` if ``security`` has a transport part or ``transport`` a message layer (each
    must be what its name says)."""
    if security.transport_enabled:
        raise ValueError("security must have no framing and no connection costs")
    if transport.secures:
        raise ValueError("transport must have no message bytes, per-byte message costs or sessions")
    return replace(
        security,
        framing=transport.framing,
        **{name: getattr(transport, name) for name in _CONNECTION_FIELDS},
    )
