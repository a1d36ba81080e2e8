"""Token streams over the 6G cell: every device generates text one token at a time, and each
token that goes to the edge waits for its reply before the next one starts.

A hybrid language model is a closed loop per device, not a stream of independent requests:
token ``t + 1`` is drafted only once token ``t`` is final. The simulation steps all devices
together, token by token. At step ``t`` device ``d`` is ready at ``now[d]``; it drafts (the
draft LM's MACs at the MCU's time and energy per MAC; none for LLM-only), seals its request
when the scheme sends one (`tinylarge.net.request_timeline`), and the requests of the step go
through the cell and the edge's batching queue together (`tinylarge.net.uplink.send_messages`:
slot alignment, scheduling, HARQ, the uplink queue, the edge's batches, the downlink reply).
A device in outage (no uplink at its SNR: it gets no grant, so it knows at once) sends
nothing: with a draft model it keeps its draft unverified (``fallback``), without one
(LLM-only) it waits its reply deadline and the token is counted as timed out. A message sent
whose reply does not come within ``deploy.reply_deadline_s`` (HARQ failure, queueing) costs
the device the deadline; a drafted token is then kept unverified, and counted as timed out.

Requests of different steps do not share one uplink or edge queue (each step is one call):
with devices in lock-step this is what happens; when their phases drift apart it
underestimates queueing slightly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.net.cell import CellDevices
from tinylarge.net.edge_service import EdgeServiceModel
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.net.request_timeline import request_timeline
from tinylarge.net.uplink import LinkSettings, send_messages

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TokenSchedule:
    """What one scheme does at every position of a token trace (arrays of shape (n,)).

    Attributes
    ----------
    upload : ndarray of bool
        Whether the token at this position is sent to the edge.
    payload_up : ndarray of int64
        Request payload when sent, bytes (before the protocol's header and tag).
    reply_bytes : int
        Reply payload, bytes.
    draft_macs : int
        MACs the device spends drafting one token (0: no on-device model, e.g. LLM-only).
    """

    upload: BoolArray
    payload_up: IntArray
    reply_bytes: int
    draft_macs: int

    def __post_init__(self) -> None:
        if self.upload.shape != self.payload_up.shape or self.upload.ndim != 1:
            raise ValueError(
                f"upload and payload_up must be 1-d arrays of one length, got shapes "
                f"{self.upload.shape} and {self.payload_up.shape}"
            )
        if self.upload.size == 0:
            raise ValueError("a token schedule needs at least one position")


@dataclass(frozen=True)
class TokenStreams:
    """Every device's tokens (arrays of shape (devices, tokens)).

    Attributes
    ----------
    latency_s : ndarray
        From the moment the device starts on the token to the token being final, s.
    energy_j : ndarray
        Device energy of the token (drafting, sealing, radio, opening the reply), J.
    uploaded, timed_out : ndarray of bool
        Sent to the edge; no reply within the deadline (sent, or LLM-only in outage).
    fallback : ndarray of bool
        The scheme would have sent the token, but the device was in outage and kept its draft.
    bytes_up, bytes_down : ndarray of int64
        The token's messages each way, bytes (header and tag included, HARQ not).
    transport_bytes_up, transport_bytes_down : ndarray of int64, optional
        On air each way: those messages in the transport's framing (MQTT packets, TLS
        records), bytes; None without a transport (the same as the messages).
    """

    latency_s: FloatArray
    energy_j: FloatArray
    uploaded: BoolArray
    timed_out: BoolArray
    fallback: BoolArray
    bytes_up: IntArray
    bytes_down: IntArray
    transport_bytes_up: IntArray | None = None
    transport_bytes_down: IntArray | None = None

    def summary(self) -> dict[str, Any]:
        """Per-token figures over all devices (`HybridLmFigures` keys)."""
        per_device_s = self.latency_s.sum(axis=1)
        n = self.latency_s.size
        return {
            "tokens_per_s": float(np.mean(self.latency_s.shape[1] / per_device_s)),
            "p50_token_latency_s": float(np.percentile(self.latency_s, 50)),
            "p99_token_latency_s": float(np.percentile(self.latency_s, 99)),
            "mean_token_latency_s": float(self.latency_s.mean()),
            "sent_fraction": float(self.uploaded.mean()),
            "timed_out_fraction": float(self.timed_out.mean()),
            "fallback_fraction": float(self.fallback.mean()),
            "bytes_up_per_token": float(self.bytes_up.sum() / n),
            "bytes_down_per_token": float(self.bytes_down.sum() / n),
            "bytes_per_token": float((self.bytes_up.sum() + self.bytes_down.sum()) / n),
            "device_energy_per_token_j": float(self.energy_j.sum() / n),
            **self._transport_summary(n),
        }

    def _transport_summary(self, n: int) -> dict[str, float]:
        up = self.bytes_up if self.transport_bytes_up is None else self.transport_bytes_up
        down = self.bytes_down if self.transport_bytes_down is None else self.transport_bytes_down
        return {
            "transport_bytes_up_per_token": float(up.sum() / n),
            "transport_bytes_down_per_token": float(down.sum() / n),
        }


@dataclass(frozen=True)
class TokenLink:
    """What a sent token goes through: the cell, its link settings, the edge's batching
    server (its service time is the target LM's verification), the reply deadline (s) and the
    protocol overhead (None: none; the security layer and / or the deployment's transport,
    `tinylarge.sim.security_costs.message_overhead`)."""

    cells: CellDevices
    settings: LinkSettings
    edge: EdgeServiceModel
    reply_deadline_s: float
    overhead: ProtocolOverhead | None = None


def stream_positions(n_positions: int, devices: int, tokens: int) -> IntArray:
    """Which trace position each device's token is: device ``d`` reads ``tokens`` consecutive
    positions from an offset spread evenly over the trace (wrapping around), shape
    (devices, tokens)."""
    if n_positions < 1 or devices < 1 or tokens < 1:
        raise ValueError(
            f"positions, devices and tokens must be >= 1, got {n_positions}, {devices}, {tokens}"
        )
    start = (np.arange(devices) * n_positions) // devices
    return (start[:, None] + np.arange(tokens)[None, :]) % n_positions


def simulate_token_streams(
    rng: np.random.Generator,
    schedule: TokenSchedule,
    link: TokenLink,
    *,
    tokens_per_device: int,
    seconds_per_mac: float,
    joules_per_mac: float,
) -> TokenStreams:
    """Every device of ``link.cells`` generates ``tokens_per_device`` tokens under
    ``schedule`` (see the module doc); the MCU's ``seconds_per_mac`` and ``joules_per_mac``
    price the drafting and the protocol's sealing."""
    devices = link.cells.n_devices
    positions = stream_positions(schedule.upload.size, devices, tokens_per_device)
    shape = (devices, tokens_per_device)
    latency, energy = np.zeros(shape), np.zeros(shape)
    uploaded, timed_out = np.zeros(shape, np.bool_), np.zeros(shape, np.bool_)
    fallback = np.zeros(shape, np.bool_)
    bytes_up, bytes_down = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    wire_up, wire_down = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    now = np.zeros(devices)
    every = np.arange(devices)
    for t in range(tokens_per_device):
        pos = positions[:, t]
        timeline = request_timeline(
            schedule.upload[pos], schedule.payload_up[pos], np.full(devices, schedule.draft_macs),
            seconds_per_mac=seconds_per_mac, joules_per_mac=joules_per_mac,
            reply_bytes=schedule.reply_bytes, overhead=link.overhead,
        )  # fmt: skip
        took, spent = timeline.compute_s.copy(), timeline.compute_j.copy()
        sent = np.flatnonzero(schedule.upload[pos])
        if sent.size:
            result = send_messages(
                rng, link.cells, link.settings, link.edge, device=every[sent],
                arrival_s=timeline.ready_s(now)[sent], bytes_up=timeline.wire_up[sent],
                bytes_down=timeline.reply_wire_bytes,
            )  # fmt: skip
            ok = result.delivered & (result.latency_s + timeline.open_s <= link.reply_deadline_s)
            local = result.outage & (schedule.draft_macs > 0)  # keeps its draft at once
            wait = np.where(ok, timeline.opened_s(result.latency_s), link.reply_deadline_s)
            took[sent] += np.where(local, 0.0, wait)
            spent[sent] += result.energy_j + np.where(ok, timeline.open_j, 0.0)
            on_air = ~result.outage
            uploaded[sent, t], timed_out[sent, t] = on_air, ~ok & ~local
            fallback[sent, t] = local
            bytes_up[sent, t] = np.where(on_air, timeline.sealed_up[sent], 0)
            bytes_down[sent, t] = np.where(result.delivered, timeline.reply_sealed_bytes, 0)
            wire_up[sent, t] = np.where(on_air, timeline.wire_up[sent], 0)
            wire_down[sent, t] = np.where(result.delivered, timeline.reply_wire_bytes, 0)
        latency[:, t], energy[:, t] = took, spent
        now += took
    framed = link.overhead is not None and link.overhead.transport_enabled
    return TokenStreams(latency, energy, uploaded, timed_out, fallback, bytes_up, bytes_down,
                        wire_up if framed else None, wire_down if framed else None)  # fmt: skip
