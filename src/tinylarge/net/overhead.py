"""What a protocol layer under the application (e.g. `tinylarge.secure`) adds to the traffic.

A neutral description the network costing uses without knowing which protocol produced it:
bytes added to every message, device time and energy per protected byte, and the one-off cost
of setting up a session (a handshake). ``ProtocolOverhead()`` is "no protocol": all zeros.
`tinylarge.secure.costs.protocol_overhead` builds the security layer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class ProtocolOverhead:
    """Per-message and per-session costs of a protocol layer.

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
    """

    message_bytes: int = 0
    device_s_per_byte: float = 0.0
    device_j_per_byte: float = 0.0
    session_up_bytes: int = 0
    session_down_bytes: int = 0
    session_device_s: float = 0.0
    session_device_j: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value!r}")
            if f.type == "int" and not isinstance(value, int | np.integer):
                raise ValueError(f"{f.name} must be an integer, got {value!r}")

    @property
    def enabled(self) -> bool:
        """Whether the protocol adds anything at all."""
        return any(getattr(self, f.name) for f in fields(self))

    def wire_bytes(self, payload_bytes: ArrayLike) -> IntArray:
        """Bytes on air of messages with these payloads; 0 stays 0 (no message is sent)."""
        p = np.asarray(payload_bytes, dtype=np.int64)
        if (p < 0).any():
            raise ValueError("payload_bytes must be >= 0")
        return np.where(p > 0, p + self.message_bytes, 0).astype(np.int64)

    def device_energy_j(self, payload_bytes: ArrayLike) -> FloatArray:
        """Device energy to protect (or check) messages with these payloads, J; 0 for none."""
        return np.asarray(self.wire_bytes(payload_bytes) * self.device_j_per_byte, np.float64)

    def device_time_s(self, payload_bytes: ArrayLike) -> FloatArray:
        """Device time to protect (or check) messages with these payloads, s; 0 for none."""
        return np.asarray(self.wire_bytes(payload_bytes) * self.device_s_per_byte, np.float64)
