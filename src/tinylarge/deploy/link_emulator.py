"""User-space emulation of each device's 6G link, driven by the simulator's own network model.

Kernel ``netem`` is not available here, and it could not express per-device radio links anyway.
So a device agent delays its own messages by what `tinylarge.net` says its radio does: the
same functions (`tinylarge.net.request_timeline` for the device's steps,
`tinylarge.net.uplink.cells_legs` for the radio) with the same random draws as the simulator's
`run_policy`, over the same requests. Per request:

- ``compute_s``: the device's own time before anything leaves it, as the simulator charges it:
  the MCU's inference time (MACs x seconds per MAC of the footprint model) + sealing;
- ``uplink_s``: from ready to at the edge: slot alignment, the cell's FIFO airtime queue
  (cell-level contention: a burst queues on the air), airtime x HARQ transmissions, propagation,
  backhaul; ``lost``: outage or HARQ failure (the message never leaves the device's radio);
- ``downlink_s``: from leaving the edge to usable on the device: backhaul, propagation, airtime,
  opening; ``reply_lost``: downlink outage.

The edge, the broker and the agents in between are real; the sum is what the deployment
measures, so its difference from the simulator is the edge/MQTT/agent part alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.net.cell import CellDevices
from tinylarge.net.draws import stream_seed
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.net.request_timeline import request_timeline
from tinylarge.net.uplink import LinkSettings, Messages, cells_legs


@dataclass(frozen=True)
class LinkPlan:
    """Per-request radio and device delays of a schedule (arrays of shape (m,), s)."""

    compute_s: npt.NDArray[np.float64]
    uplink_s: npt.NDArray[np.float64]
    lost: npt.NDArray[np.bool_]
    downlink_s: npt.NDArray[np.float64]
    reply_lost: npt.NDArray[np.bool_]


def plan_links(
    rng: np.random.Generator,
    cells: CellDevices,
    settings: LinkSettings,
    *,
    device: npt.ArrayLike,
    arrival_s: npt.ArrayLike,
    offload: npt.ArrayLike,
    device_macs: npt.ArrayLike,
    seconds_per_mac: float,
    payload_bytes: int,
    reply_bytes: int,
    overhead: ProtocolOverhead | None = None,
) -> LinkPlan:
    """The delays of every request, as `tinylarge.sim.engine.run_policy` charges them.

    Both build the device's steps with `tinylarge.net.request_timeline.request_timeline` and
    the radio legs with `tinylarge.net.uplink.cells_legs`. ``rng`` must be the stream the
    simulator uses for the same policy after its decision (the fading and HARQ draws of the
    offloads, in request order), so both see the same radio. Entries of requests that are not
    offloaded have ``uplink_s = downlink_s = 0``.
    """
    dev = np.asarray(device, dtype=np.int64)
    off = np.asarray(offload, dtype=np.bool_)
    timeline = request_timeline(
        off,
        payload_bytes,
        np.asarray(device_macs, dtype=np.float64),
        seconds_per_mac=seconds_per_mac,
        joules_per_mac=0.0,
        reply_bytes=reply_bytes,
        overhead=overhead,
    )
    uplink = np.zeros(dev.size)
    downlink = np.zeros(dev.size)
    lost = np.zeros(dev.size, dtype=np.bool_)
    reply_lost = np.zeros(dev.size, dtype=np.bool_)
    sent = np.flatnonzero(off)
    if sent.size:
        ready = timeline.ready_s(arrival_s)[sent]
        messages = Messages(
            dev[sent],
            ready,
            timeline.wire_up[sent],
            np.full(sent.size, timeline.reply_wire_bytes, dtype=np.int64),
            np.zeros(sent.size),
            np.zeros(sent.size),
        )
        # the legs `send_messages` runs from the same stream for the same messages
        leg, reply = cells_legs(stream_seed(rng), cells, settings, messages)
        uplink[sent] = np.where(leg.sent_ok, leg.at_edge_s - ready, 0.0)
        lost[sent] = ~leg.sent_ok
        downlink[sent] = timeline.opened_s(reply.delay_s)
        reply_lost[sent] = ~reply.ok
    return LinkPlan(timeline.compute_s, uplink, lost, downlink, reply_lost)
