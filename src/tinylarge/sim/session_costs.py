"""What protocol layers add to a policy's run: the security layer's totals (`SecurityCost`) and
the session set-ups it charges to the devices (`charge_sessions`); the message transport's
totals (`TransportCost`) and the connection set-ups it charges (`charge_connections`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.net.mean_rate import MeanRateLink
from tinylarge.net.overhead import ProtocolOverhead

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SecurityCost:
    """What a protocol layer added to a policy's run (all requests together).

    ``message_overhead_bytes``: headers and tags of requests and replies; ``handshake_bytes``:
    both flights of every session set-up; ``crypto_energy_j``: the devices' AEAD and public-key
    work (inside the outcome's compute energy); ``handshake_radio_energy_j``: sending and
    receiving the set-ups (inside its radio energy); ``handshakes``: set-ups charged (amortized:
    fractional when the run is shorter than a session's lifetime); ``bytes_per_message``:
    header + tag of one message.
    """

    message_overhead_bytes: int
    handshake_bytes: float
    crypto_energy_j: float
    handshake_radio_energy_j: float
    handshakes: float
    bytes_per_message: int = 0

    def summary(self, n_requests: int) -> dict[str, float | int]:
        n = max(n_requests, 1)
        return {
            "overhead_bytes_per_inference": self.message_overhead_bytes / n,
            "handshake_bytes_per_inference": self.handshake_bytes / n,
            "crypto_energy_j_per_inference": self.crypto_energy_j / n,
            "handshake_radio_energy_j_per_inference": self.handshake_radio_energy_j / n,
            "handshakes": self.handshakes,
        }


def charge_sessions(
    overhead: ProtocolOverhead,
    device: IntArray,
    arrival_s: FloatArray,
    offload: npt.NDArray[np.bool_],
    link: MeanRateLink,
    compute_j: FloatArray,
    radio_j: FloatArray,
    *,
    lifetime_s: float | None,
    duration_s: float | None,
) -> tuple[float, float, float]:
    """Charge a session set-up to the first offload of every device (that offloads and can
    reach the edge) in every session lifetime, in place on ``compute_j`` / ``radio_j``; scaled
    by ``duration_s / lifetime_s`` when the run is shorter than one lifetime.

    Returns the handshakes charged, their compute energy (J) and their radio energy (J): both
    flights at the device's mean link rates (``link``).
    """
    if not overhead.secures:
        return 0.0, 0.0, 0.0
    if lifetime_s is not None and not lifetime_s > 0:
        raise ValueError(f"session_lifetime_s must be > 0, got {lifetime_s}")
    devices, at = _first_offloads(device, arrival_s, offload, link, lifetime_s)
    share = 1.0
    if lifetime_s is not None and duration_s is not None:
        share = min(1.0, duration_s / lifetime_s)
    _, up_j = link.send(overhead.session_up_bytes, devices)
    _, down_j = link.receive(overhead.session_down_bytes, devices)
    radio = share * (up_j + down_j)
    compute_j[at] += share * overhead.session_device_j
    radio_j[at] += radio
    return (
        share * devices.size,
        share * overhead.session_device_j * devices.size,
        float(radio.sum()),
    )


def _first_offloads(
    device: IntArray,
    arrival_s: FloatArray,
    offload: npt.NDArray[np.bool_],
    link: MeanRateLink,
    lifetime_s: float | None,
) -> tuple[IntArray, IntArray]:
    """The devices that offload and can reach the edge, and the request index of their first
    offload in every window of ``lifetime_s`` (None: the whole run), in matching order."""
    sent = np.flatnonzero(offload)
    window = (
        np.zeros(sent.size, dtype=np.int64)
        if lifetime_s is None
        else np.floor(arrival_s[sent] / lifetime_s).astype(np.int64)
    )
    windows = int(window.max(initial=0)) + 1
    keys, first = np.unique(device[sent] * windows + window, return_index=True)
    devices = keys // windows
    reach = link.reachable[devices]
    return devices[reach], sent[first[reach]]


@dataclass(frozen=True)
class TransportCost:
    """What the message transport added to a policy's run (all requests together).

    ``framing_bytes``: what its framing (packet headers, records) added to the requests and
    delivered replies; ``connection_bytes``: both directions of every connection set-up;
    ``connection_energy_j``: the devices' work in them (inside the outcome's compute energy);
    ``connection_radio_energy_j``: sending and receiving them (inside its radio energy);
    ``connections``: set-ups charged (one per device that offloads and reaches the edge);
    ``round_trips_per_connection``: before a connection carries its first message.
    """

    framing_bytes: int
    connection_bytes: int
    connection_energy_j: float
    connection_radio_energy_j: float
    connections: int
    round_trips_per_connection: int

    def summary(self, n_requests: int) -> dict[str, float | int]:
        n = max(n_requests, 1)
        return {
            "framing_bytes_per_inference": self.framing_bytes / n,
            "connection_bytes_per_inference": self.connection_bytes / n,
            "connection_energy_j_per_inference": self.connection_energy_j / n,
            "connection_radio_energy_j_per_inference": self.connection_radio_energy_j / n,
            "connections": self.connections,
            "round_trips_per_connection": self.round_trips_per_connection,
        }


def charge_connections(
    overhead: ProtocolOverhead,
    device: IntArray,
    offload: npt.NDArray[np.bool_],
    link: MeanRateLink,
    compute_j: FloatArray,
    radio_j: FloatArray,
) -> tuple[int, float, float]:
    """Charge one connection set-up to the first offload of every device (that offloads and
    can reach the edge), in place on ``compute_j`` / ``radio_j``: the device's work, and both
    directions at its mean link rates (``link``). Returns the connections charged, their
    compute energy (J) and their radio energy (J)."""
    if not overhead.transport_enabled:
        return 0, 0.0, 0.0
    devices, at = _first_offloads(device, np.zeros(device.size), offload, link, None)
    _, up_j = link.send(overhead.connection_up_bytes, devices)
    _, down_j = link.receive(overhead.connection_down_bytes, devices)
    radio = np.asarray(up_j + down_j, np.float64)
    compute_j[at] += overhead.connection_device_j
    radio_j[at] += radio
    return int(devices.size), overhead.connection_device_j * devices.size, float(radio.sum())
