"""The device's steps in each request's timeline, shared by the simulator and the link emulator.

A request arrives on its device at ``arrival_s``. The device computes (the policy's MACs at the
MCU's time and energy per MAC) and, when it offloads, seals the message (the protocol overhead's
per-byte time and energy, `tinylarge.net.overhead.ProtocolOverhead`); the message leaves at
``arrival_s + compute_s`` (`RequestTimeline.ready_s`) with the overhead's header and tag
(``sealed_up``), on air in the overhead's transport framing if any (``wire_up``). The uplink
leg, the edge and the downlink leg follow (`tinylarge.net.uplink`: all simulated by
``send_messages``, or the legs alone around a real edge in the link emulator); the reply,
``reply_wire_bytes`` on air, is usable once the device has opened it
(`RequestTimeline.opened_s`: ``open_s`` later).

`tinylarge.sim.engine.run_policy` and `tinylarge.deploy.link_emulator.plan_links` both build
their requests' device steps here, so the simulator and the deployment charge the same times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.net.overhead import ProtocolOverhead

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RequestTimeline:
    """The device's part of every request (arrays of shape (m,), in request order).

    Attributes
    ----------
    payload_up : ndarray of int64
        Payload the request sends, bytes (0 where it stays on the device).
    sealed_up : ndarray of int64
        The message carrying it: payload + the overhead's header and tag, bytes.
    wire_up : ndarray of int64
        What that message puts on air: in the overhead's transport framing if it has one (e.g.
        an MQTT packet in TLS records), else the message, bytes.
    inference_s, inference_j : ndarray of float64
        The device's inference (its MACs), s and J.
    seal_s, seal_j : ndarray of float64
        Sealing the message (0 where nothing is sent), s and J.
    compute_s, compute_j : ndarray of float64
        Inference + sealing: the device's time and energy before the message leaves.
    reply_sealed_bytes : int
        A reply's message (payload, header and tag), bytes.
    reply_wire_bytes : int
        A reply on air (the message in the transport's framing, if any), bytes.
    open_s, open_j : float
        The device's time (s) and energy (J) to open (check and decrypt) a reply.
    """

    payload_up: IntArray
    sealed_up: IntArray
    wire_up: IntArray
    inference_s: FloatArray
    inference_j: FloatArray
    seal_s: FloatArray
    seal_j: FloatArray
    compute_s: FloatArray
    compute_j: FloatArray
    reply_sealed_bytes: int
    reply_wire_bytes: int
    open_s: float
    open_j: float

    def ready_s(self, arrival_s: npt.ArrayLike) -> FloatArray:
        """When each request's message leaves the device: arrival + compute and sealing, s."""
        return np.asarray(np.asarray(arrival_s, dtype=np.float64) + self.compute_s)

    def opened_s(self, reply_at_device_s: npt.ArrayLike) -> FloatArray:
        """When a reply that reached the device at ``reply_at_device_s`` is usable (opened), s
        (any time origin: a delay in, a delay out)."""
        return np.asarray(np.asarray(reply_at_device_s, dtype=np.float64) + self.open_s)


def request_timeline(
    offload: npt.ArrayLike,
    bytes_up: npt.ArrayLike,
    device_macs: npt.ArrayLike,
    *,
    seconds_per_mac: float,
    joules_per_mac: float,
    reply_bytes: int,
    overhead: ProtocolOverhead | None = None,
) -> RequestTimeline:
    """The device steps of every request (see the module doc).

    Parameters
    ----------
    offload : array_like of bool, shape (m,)
        Whether each request sends a message.
    bytes_up : int or array_like of int, broadcast to (m,)
        Payload of an offloaded request, bytes (ignored where not offloaded).
    device_macs : array_like of int or float, shape (m,)
        MACs the device runs for each request.
    seconds_per_mac, joules_per_mac : float
        The device MCU's time (s) and energy (J) per MAC.
    reply_bytes : int
        Payload of a reply, bytes.
    overhead : ProtocolOverhead, optional
        The protocol layer every message goes through (default: none).
    """
    ov = overhead or ProtocolOverhead()
    payload_up = np.where(np.asarray(offload, dtype=np.bool_), bytes_up, 0).astype(np.int64)
    macs = np.asarray(device_macs)
    inference_s = np.asarray(macs * seconds_per_mac, dtype=np.float64)
    inference_j = np.asarray(macs * joules_per_mac, dtype=np.float64)
    seal_s, seal_j = ov.device_time_s(payload_up), ov.device_energy_j(payload_up)
    return RequestTimeline(
        payload_up=payload_up,
        sealed_up=ov.sealed_bytes(payload_up),
        wire_up=np.asarray(ov.wire_bytes(payload_up), dtype=np.int64),
        inference_s=inference_s,
        inference_j=inference_j,
        seal_s=seal_s,
        seal_j=seal_j,
        compute_s=inference_s + seal_s,
        compute_j=inference_j + seal_j,
        reply_sealed_bytes=int(ov.sealed_bytes(reply_bytes)),
        reply_wire_bytes=int(ov.wire_bytes(reply_bytes, down=True)),
        open_s=float(ov.device_time_s(reply_bytes, down=True)),
        open_j=float(ov.device_energy_j(reply_bytes, down=True)),
    )
