"""User-space emulation of each device's 6G link for the hybrid language model's deployment.

As for the classification deployment (`tinylarge.deploy.link_emulator`), a device agent delays
its own messages by what `tinylarge.net` says its radio does: the device's steps from
`tinylarge.net.request_timeline.request_timeline` (sealing the request, opening the reply with
the security layer's per-byte cost) and the radio legs from `tinylarge.net.uplink.cells_legs`.
Every token of every device is planned as one request (``tokens_per_device`` per device);
a token a scheme keeps on the device leaves its entry unused, so the cell's queue is planned for
the busiest case (every token sent).

A token stream is a closed loop: a device drafts token ``k + 1`` only once token ``k`` is
final, so when its requests leave depends on the round trips before them. The plan places
token ``k`` of every device at ``k`` token periods, a period being the draft time, the sealing
and the mean round trip of a first plan made with no round trip (one fixed-point step); this
sets how the devices' requests meet on the cell's uplink, and the draws are per cell stream
(`tinylarge.net.draws`), so both plans see the same fading and HARQ outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.net.cell import CellDevices
from tinylarge.net.draws import stream_seed
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.net.request_timeline import RequestTimeline, request_timeline
from tinylarge.net.uplink import LinkSettings, Messages, cells_legs

FloatGrid = npt.NDArray[np.float64]
BoolGrid = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TokenLinkPlan:
    """Radio and device delays of every (device, token), arrays of shape (devices, tokens).

    Attributes
    ----------
    draft_s : float
        The device MCU's time to draft one token, s.
    seal_s : float
        Sealing one request on the device, s.
    uplink_s : ndarray of float64
        From the request leaving the device to its arrival at the edge, s (0 where ``lost``).
    outage : ndarray of bool
        No uplink at the device's SNR: it gets no grant and knows at once.
    lost : ndarray of bool
        Outage or HARQ failure: the request never reaches the edge.
    downlink_s : ndarray of float64
        From the reply leaving the edge to usable on the device (opened), s.
    reply_lost : ndarray of bool
        Downlink outage: the reply never arrives.
    """

    draft_s: float
    seal_s: float
    uplink_s: FloatGrid
    outage: BoolGrid
    lost: BoolGrid
    downlink_s: FloatGrid
    reply_lost: BoolGrid

    @property
    def shape(self) -> tuple[int, int]:
        """(devices, tokens per device)."""
        return (int(self.uplink_s.shape[0]), int(self.uplink_s.shape[1]))

    def device(self, index: int) -> TokenLinkPlan:
        """The plan of device ``index`` alone, as a (1, tokens) plan."""
        rows = slice(index, index + 1)
        return TokenLinkPlan(self.draft_s, self.seal_s, self.uplink_s[rows], self.outage[rows],
                             self.lost[rows], self.downlink_s[rows],
                             self.reply_lost[rows])  # fmt: skip


def _legs(
    seed: int,
    cells: CellDevices,
    settings: LinkSettings,
    timeline: RequestTimeline,
    device: npt.NDArray[np.int64],
    ready_s: FloatGrid,
) -> tuple[FloatGrid, BoolGrid, BoolGrid, FloatGrid, BoolGrid]:
    """Uplink delay, outage, lost, downlink delay (opened) and reply lost of messages ready
    at ``ready_s`` (flat arrays in the order of ``device``)."""
    messages = Messages(
        device,
        ready_s,
        timeline.wire_up,
        np.full(device.size, timeline.reply_wire_bytes, dtype=np.int64),
        np.zeros(device.size),
        np.zeros(device.size),
    )
    leg, reply = cells_legs(seed, cells, settings, messages)
    uplink = np.where(leg.sent_ok, leg.at_edge_s - ready_s, 0.0)
    return uplink, leg.outage, ~leg.sent_ok, timeline.opened_s(reply.delay_s), ~reply.ok


def plan_token_links(
    rng: np.random.Generator,
    cells: CellDevices,
    settings: LinkSettings,
    *,
    tokens_per_device: int,
    draft_s_per_token: float,
    request_bytes: int,
    reply_bytes: int,
    overhead: ProtocolOverhead | None = None,
) -> TokenLinkPlan:
    """The delays of every token's request and reply (see the module doc).

    Parameters
    ----------
    rng : numpy.random.Generator
        Gives the seed of the per-cell streams (one draw).
    cells : CellDevices
        The devices' cell and channels; device ``i`` of the deployment is device ``i`` here.
    settings : LinkSettings
    tokens_per_device : int
        Tokens each device generates (>= 1).
    draft_s_per_token : float
        The device MCU's time to draft one token, s (>= 0).
    request_bytes, reply_bytes : int
        Payload of a token request and of its reply, bytes (the session's header and tag are
        added from ``overhead``).
    overhead : ProtocolOverhead, optional
        The security layer's bytes and device time per message (default: none).
    """
    if tokens_per_device < 1 or not draft_s_per_token >= 0:
        raise ValueError(
            f"tokens_per_device must be >= 1 and draft_s_per_token >= 0, got "
            f"{tokens_per_device}, {draft_s_per_token}"
        )
    if request_bytes < 1 or reply_bytes < 1:
        raise ValueError(
            f"request_bytes and reply_bytes must be >= 1, got {request_bytes}, {reply_bytes}"
        )
    n, t = cells.n_devices, tokens_per_device
    device = np.repeat(np.arange(n, dtype=np.int64), t)
    k = np.tile(np.arange(t, dtype=np.float64), n)
    timeline = request_timeline(
        np.ones(n * t, dtype=np.bool_), request_bytes, np.zeros(n * t), seconds_per_mac=0.0,
        joules_per_mac=0.0, reply_bytes=reply_bytes, overhead=overhead,
    )  # fmt: skip
    seal_s = float(timeline.seal_s[0])
    local_s = draft_s_per_token + seal_s
    seed = stream_seed(rng)
    up, _, lost, down, reply_lost = _legs(seed, cells, settings, timeline, device,
                                          (k + 1) * local_s)  # fmt: skip
    delivered = ~lost & ~reply_lost
    round_trip = float(np.mean((up + down)[delivered])) if delivered.any() else 0.0
    ready = k * (local_s + round_trip) + local_s
    up, outage, lost, down, reply_lost = _legs(seed, cells, settings, timeline, device, ready)
    return TokenLinkPlan(draft_s_per_token, seal_s, up.reshape(n, t), outage.reshape(n, t),
                         lost.reshape(n, t), down.reshape(n, t),
                         reply_lost.reshape(n, t))  # fmt: skip
