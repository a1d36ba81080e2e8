"""Messages over the cell: uplink to the edge, (batched) edge service, downlink reply.

Vectorized over messages (arrays in, arrays out). The model, per message ``i`` sent by device
``d`` in cell ``c`` at time ``A``:

1. **Slot alignment**: transmission can start at the next slot boundary ``t0``.
2. **Scheduling**: the messages of a cell that start in the same slot share its uplink band
   (``equal``: 1/n each; ``proportional_fair``: PF throughput with multi-user diversity, see
   `tinylarge.net.link.proportional_fair_rate_bps`). A device's power is concentrated on its
   share, so its SNR is the full-band SNR + fast fading - 10 log10(share).
3. **Outage**: a link SNR below the profile's minimum (or a rate of 0) means the message is not
   sent; it is counted and gets no latency.
4. **Rate and airtime**: share x bandwidth x spectral efficiency (CQI table or truncated
   Shannon), airtime rounded up to whole slots; HARQ retransmissions at the target BLER.
5. **Cell uplink queue**: the messages starting in one slot form a group that holds the band
   until its longest member (airtime x transmissions + retransmission round trips) is done;
   groups of a cell are served first-in first-out (exact Lindley recursion in
   `tinylarge.net.queues`), so a message waits for the backlog of earlier slots.
6. **Edge**: after propagation (and backhaul to the cloud, when set) the request joins the
   edge server's batching queue (`tinylarge.net.batching.batch_queue`): one server for all
   cells, or one at each base station (``EdgeServiceModel.sites``).
7. **Reply**: the downlink reply goes at the full downlink rate (the base station's downlink is
   not the bottleneck for small replies; no downlink queue).

Device energy = radio (TX during the uplink airtime of every transmission, RX during the reply,
connected idle while waiting for the reply, and the sleep time given per message) + the compute
energy given per message (e.g. the tiny model's MCU estimate).

Fast fading and HARQ outcomes come from one random stream per cell (`tinylarge.net.draws`), so
a scenario's cells can be split into shards (`tinylarge.net.shards`, on Ray with
`tinylarge.sim.ray_shards`) with results identical to one process.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Literal

import numpy as np
import numpy.typing as npt

from tinylarge.net.cell import CellDevices
from tinylarge.net.draws import (
    MessageDraws,
    cell_poisson_arrivals,
    cell_runs,
    draw_messages,
    stream_seed,
)
from tinylarge.net.edge_service import EdgeServiceModel, edge_queue
from tinylarge.net.energy import RadioEnergyModel, message_energy_j
from tinylarge.net.fading import FadingKind, fading_gain_db
from tinylarge.net.latency import harq_rtt_s, propagation_delay_s, slot_alignment_s
from tinylarge.net.link import (
    airtime_s,
    equal_share,
    outage,
    proportional_fair_rate_bps,
    spectral_efficiency,
)
from tinylarge.net.message_stats import MessageResult, MessageStats
from tinylarge.net.profiles import RadioProfile
from tinylarge.net.queues import fifo_queue_grouped
from tinylarge.net.shards import (
    ShardRunner,
    cell_shard_bounds,
    merge_by_index,
    run_in_process,
    shard_messages,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class LinkSettings:
    """How the link is abstracted (see the module docstring)."""

    spectral_efficiency: Literal["cqi", "shannon"] = "cqi"
    scheduler: Literal["equal", "proportional_fair"] = "equal"
    fading: FadingKind = "rayleigh"
    rician_k_db: float = 3.0
    bler_target: float = 0.1
    max_transmissions: int = 4
    backhaul_s: float = 0.0
    energy: RadioEnergyModel = field(default_factory=RadioEnergyModel)


def efficiency_fn(
    profile: RadioProfile, method: Literal["cqi", "shannon"]
) -> Callable[[FloatArray], FloatArray]:
    """SNR (dB) -> spectral efficiency (b/s/Hz) with the profile's CQI table, cap, minimum SNR
    and repetitions."""
    return partial(
        spectral_efficiency,
        method=method,
        cqi_table=profile.cqi_table,
        max_spectral_efficiency=profile.max_spectral_efficiency,
        snr_min_db=profile.min_snr_db,
        max_repetitions=profile.max_repetitions,
    )


def _uplink_rate(
    cells: CellDevices,
    settings: LinkSettings,
    device: IntArray,
    group: IntArray,
    fading_db: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Share, link SNR (dB, on the share) and rate (b/s) of every message (``group``: its
    (cell, slot) group)."""
    profile = cells.profile
    active = np.ones(device.size, dtype=np.bool_)
    share = equal_share(group, active)
    se_fn = efficiency_fn(profile, settings.spectral_efficiency)
    mean_snr = cells.uplink_mean_snr_db[device] - 10.0 * np.log10(share)
    link_snr = mean_snr + fading_db
    if settings.scheduler == "proportional_fair":
        rate = proportional_fair_rate_bps(
            cells.uplink_mean_snr_db[device],
            group,
            active,
            bandwidth_hz=profile.uplink_bandwidth_hz,
            spectral_efficiency_fn=se_fn,
        )
    else:
        rate = share * profile.uplink_bandwidth_hz * se_fn(link_snr)
    return share, link_snr, np.asarray(rate, dtype=np.float64)


def _slot_groups(
    slot_index: IntArray, cell: IntArray, n_cells: int
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Group messages by (slot, cell): each message's group id, one member of each group, the
    sort order by group and where each group starts in it.

    A stable sort of the key slot x n_cells + cell: messages come roughly in time order, so the
    key is nearly sorted and the sort cheap.
    """
    key = slot_index * n_cells + cell
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    first = np.ones(key.size, dtype=np.bool_)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    group_of = np.empty(key.size, dtype=np.int64)
    group_of[order] = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    return group_of, order[starts], order, starts


@dataclass(frozen=True)
class UplinkLeg:
    """Per-message uplink outcome (arrays of shape (n,)): steps 1-5 and the way to the edge.

    ``at_edge_s`` is when the message reaches the edge server (start + queue wait + busy +
    propagation + backhaul); meaningless where not ``sent_ok``.
    """

    start_s: FloatArray
    snr_db: FloatArray
    outage: BoolArray
    sent_ok: BoolArray  # not in outage and HARQ succeeded
    share: FloatArray
    rate_bps: FloatArray
    airtime_s: FloatArray
    transmissions: IntArray
    busy_s: FloatArray
    queue_wait_s: FloatArray
    propagation_s: FloatArray
    at_edge_s: FloatArray


@dataclass(frozen=True)
class DownlinkLeg:
    """Per-message reply outcome: whether the downlink can carry it and how long it takes from
    leaving the edge to arriving on the device (backhaul + propagation + airtime), s."""

    ok: BoolArray
    airtime_s: FloatArray
    delay_s: FloatArray


def link_draws(
    seed: int, cells: CellDevices, settings: LinkSettings, device: IntArray
) -> MessageDraws:
    """The random draws of messages sent by ``device``, from their cells' streams
    (`tinylarge.net.draws`): the same for a message whatever other messages are drawn."""
    return draw_messages(
        seed,
        cells.topology.cell[device],
        fading=settings.fading,
        rician_k_db=settings.rician_k_db,
        bler=settings.bler_target,
        max_transmissions=settings.max_transmissions,
    )


def uplink_leg(
    draws: MessageDraws,
    cells: CellDevices,
    settings: LinkSettings,
    device: IntArray,
    arrival_s: FloatArray,
    bytes_up: IntArray,
) -> UplinkLeg:
    """Slot alignment, scheduling, fading, outage, HARQ and the cell's FIFO uplink queue of
    every message (fading and HARQ outcomes from ``draws``, see `link_draws`)."""
    n = device.size
    profile = cells.profile
    slot = profile.slot_s
    cell = cells.topology.cell[device].astype(np.int64)
    start = arrival_s + slot_alignment_s(arrival_s, slot)
    slot_index = np.rint(start / slot).astype(np.int64)
    group_of, group_first, group_order, group_starts = _slot_groups(
        slot_index, cell, cells.topology.n_cells
    )
    share, link_snr, rate = _uplink_rate(
        cells, settings, device, group_of, fading_gain_db(draws.uplink_fading)
    )
    in_outage = outage(link_snr, profile.min_snr_db) | (rate <= 0)
    tx, delivered = draws.transmissions, draws.harq_ok
    air = np.where(in_outage, 0.0, airtime_s(8 * bytes_up, np.where(in_outage, 1.0, rate), slot))
    rtt = float(harq_rtt_s(slot))
    busy = np.where(in_outage, 0.0, air * tx + (tx - 1) * rtt)
    # Cell uplink: one group per (cell, slot) holds the band for its longest member; groups of a
    # cell are served FIFO.
    group_busy = np.maximum.reduceat(busy[group_order], group_starts) if n else np.zeros(0)
    queue = fifo_queue_grouped(cell[group_first], start[group_first], group_busy)
    wait = queue.wait_s[group_of]
    propagation = propagation_delay_s(cells.topology.d_2d_m[device])
    return UplinkLeg(
        start_s=start,
        snr_db=link_snr,
        outage=in_outage,
        sent_ok=delivered & ~in_outage,
        share=share,
        rate_bps=rate,
        airtime_s=air,
        transmissions=tx,
        busy_s=busy,
        queue_wait_s=wait,
        propagation_s=propagation,
        at_edge_s=start + wait + busy + propagation + settings.backhaul_s,
    )


def downlink_leg(
    draws: MessageDraws,
    cells: CellDevices,
    settings: LinkSettings,
    device: IntArray,
    bytes_down: IntArray,
    propagation_s: FloatArray,
) -> DownlinkLeg:
    """The reply at the full downlink rate with fast fading (from ``draws``)."""
    profile = cells.profile
    dl_snr = cells.downlink_mean_snr_db[device] + fading_gain_db(draws.downlink_fading)
    dl_rate = profile.downlink_bandwidth_hz * efficiency_fn(profile, settings.spectral_efficiency)(
        dl_snr
    )
    ok = dl_rate > 0
    air = np.where(ok, airtime_s(8 * bytes_down, np.where(ok, dl_rate, 1.0), profile.slot_s), 0.0)
    return DownlinkLeg(ok=ok, airtime_s=air, delay_s=settings.backhaul_s + propagation_s + air)


@dataclass(frozen=True)
class Messages:
    """Validated per-message inputs of `send_messages` (arrays of shape (n,))."""

    device: IntArray
    arrival_s: FloatArray
    bytes_up: IntArray
    bytes_down: IntArray
    compute_energy_j: FloatArray
    sleep_time_s: FloatArray

    def take(self, index: IntArray) -> Messages:
        return Messages(*(getattr(self, f.name)[index] for f in fields(self)))


def _finish(
    cells: CellDevices,
    settings: LinkSettings,
    m: Messages,
    leg: UplinkLeg,
    reply: DownlinkLeg,
    edge_wait: FloatArray,
    edge_done: FloatArray,
) -> MessageResult:
    """Latency and energy of every message once its legs and edge departure are known."""
    delivered = leg.sent_ok & reply.ok
    done = edge_done + reply.delay_s
    latency = np.where(delivered, done - m.arrival_s, np.nan)
    idle = np.where(delivered, np.nan_to_num(latency) - leg.busy_s - reply.airtime_s, 0.0)
    energy = message_energy_j(
        leg.airtime_s * leg.transmissions,
        cells.profile.device_tx_power_dbm,
        model=settings.energy,
        rx_time_s=reply.airtime_s,
        idle_time_s=np.maximum(idle, 0.0),
        sleep_time_s=m.sleep_time_s,
        compute_energy_j=m.compute_energy_j,
    )
    return MessageResult(
        device=m.device,
        arrival_s=m.arrival_s,
        snr_db=leg.snr_db,
        outage=leg.outage,
        delivered=delivered,
        share=leg.share,
        rate_bps=leg.rate_bps,
        airtime_s=leg.airtime_s,
        transmissions=leg.transmissions,
        uplink_queue_wait_s=leg.queue_wait_s,
        edge_wait_s=edge_wait,
        latency_s=latency,
        energy_j=np.asarray(energy, dtype=np.float64),
        bytes_up=np.where(leg.outage, 0, m.bytes_up).astype(np.int64),
        bytes_down=np.where(delivered, m.bytes_down, 0).astype(np.int64),
    )


def cells_messages(
    seed: int, cells: CellDevices, settings: LinkSettings, edge: EdgeServiceModel, m: Messages
) -> MessageResult:
    """Every step for messages whose edge queue is theirs alone (the whole run, or a shard of
    cells with an edge server per cell)."""
    leg, reply = cells_legs(seed, cells, settings, m)
    cell = cells.topology.cell[m.device]
    edge_wait, edge_done = edge_queue(edge, leg.at_edge_s, leg.sent_ok, cell)
    return _finish(cells, settings, m, leg, reply, edge_wait, edge_done)


def cells_legs(
    seed: int, cells: CellDevices, settings: LinkSettings, m: Messages
) -> tuple[UplinkLeg, DownlinkLeg]:
    """The uplink and downlink legs of messages (a shard's, when the edge is shared and its
    queue runs later over every shard's arrivals)."""
    draws = link_draws(seed, cells, settings, m.device)
    leg = uplink_leg(draws, cells, settings, m.device, m.arrival_s, m.bytes_up)
    return leg, downlink_leg(draws, cells, settings, m.device, m.bytes_down, leg.propagation_s)


def send_messages(
    rng: np.random.Generator,
    cells: CellDevices,
    settings: LinkSettings,
    edge: EdgeServiceModel,
    *,
    device: npt.ArrayLike,
    arrival_s: npt.ArrayLike,
    bytes_up: npt.ArrayLike,
    bytes_down: npt.ArrayLike,
    compute_energy_j: npt.ArrayLike = 0.0,
    sleep_time_s: npt.ArrayLike = 0.0,
    shards: int = 1,
    runner: ShardRunner | None = None,
) -> MessageResult:
    """Send one uplink message per element and its reply; return per-message outcomes.

    Parameters
    ----------
    device : int array, shape (n,)
        Sending device (index into ``cells``).
    arrival_s : float array, shape (n,)
        When the message is ready on the device, s (any order).
    bytes_up, bytes_down : int, scalar or shape (n,)
        Uplink payload and downlink reply sizes, bytes.
    compute_energy_j : float, scalar or shape (n,)
        On-device compute energy attributed to the message, J.
    sleep_time_s : float, scalar or shape (n,)
        Time in power-saving sleep attributed to the message (e.g. the device's idle time
        between messages), s; charged at the energy model's sleep power.
    shards : int
        Split the cells into this many shards of contiguous cells with about as many messages
        each (`tinylarge.net.shards`), run by ``runner`` (default: one after the other in this
        process; `tinylarge.sim.ray_shards.ray_runner` runs them as Ray tasks). Cells are
        independent given their messages: each shard runs the uplink legs, the replies and,
        with an edge server per cell, the edge queue of its cells; a shared edge queues every
        message in this process. The result is identical for any number of shards.

    Notes
    -----
    Every random draw comes from ``rng`` through one seed for per-cell streams
    (`tinylarge.net.draws`).
    """
    dev = np.asarray(device, dtype=np.int64)
    arrival = np.asarray(arrival_s, dtype=np.float64)
    if dev.ndim != 1 or arrival.shape != dev.shape:
        raise ValueError(
            f"device and arrival_s must be 1-D of the same length, got {dev.shape} and "
            f"{arrival.shape}"
        )
    if dev.size and (dev.min() < 0 or dev.max() >= cells.n_devices):
        raise ValueError(f"device indices must be in [0, {cells.n_devices}), got {dev.max()}")
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    n = dev.size
    m = Messages(
        dev,
        arrival,
        np.broadcast_to(np.asarray(bytes_up, dtype=np.int64), (n,)),
        np.broadcast_to(np.asarray(bytes_down, dtype=np.int64), (n,)),
        np.broadcast_to(np.asarray(compute_energy_j, dtype=np.float64), (n,)),
        np.broadcast_to(np.asarray(sleep_time_s, dtype=np.float64), (n,)),
    )
    seed = stream_seed(rng)
    cell = cells.topology.cell[dev]
    parts = shard_messages(cell, cells.topology.n_cells, shards)
    run = runner or run_in_process
    if edge.sites == "per_cell":
        if len(parts) == 1:
            return cells_messages(seed, cells, settings, edge, m)
        results = run(cells_messages, (seed, cells, settings, edge), [(m.take(p),) for p in parts])
        return merge_by_index(results, parts, n)
    if len(parts) == 1:
        leg, reply = cells_legs(seed, cells, settings, m)
    else:
        legs = run(cells_legs, (seed, cells, settings), [(m.take(p),) for p in parts])
        leg = merge_by_index([up for up, _ in legs], parts, n)
        reply = merge_by_index([down for _, down in legs], parts, n)
    edge_wait, edge_done = edge_queue(edge, leg.at_edge_s, leg.sent_ok, cell)
    return _finish(cells, settings, m, leg, reply, edge_wait, edge_done)


def poisson_arrivals(
    rng: np.random.Generator, n_devices: int, rate_hz: float, duration_s: float
) -> tuple[IntArray, FloatArray]:
    """Poisson message arrivals of every device over ``duration_s``: (device, time), by time.

    Equivalent to one Poisson process of rate ``n_devices x rate_hz`` whose points pick a
    device uniformly (superposition/thinning of independent Poisson processes).
    """
    if n_devices < 1 or not rate_hz > 0 or not duration_s > 0:
        raise ValueError(
            f"need n_devices >= 1, rate_hz > 0, duration_s > 0; got {n_devices}, {rate_hz}, "
            f"{duration_s}"
        )
    n = int(rng.poisson(n_devices * rate_hz * duration_s))
    times = np.sort(rng.uniform(0.0, duration_s, n))
    return rng.integers(0, n_devices, n).astype(np.int64), times


def cells_traffic_stats(
    arrival_seed: int,
    link_seed: int,
    cells: CellDevices,
    settings: LinkSettings,
    edge: EdgeServiceModel,
    cell_ids: npt.ArrayLike,
    *,
    rate_hz: float,
    duration_s: float,
    bytes_up: int,
    bytes_down: int,
    compute_energy_j: float = 0.0,
    sleep_time_s: float = 0.0,
    block_messages: int = 2**17,
    by_cell: tuple[IntArray, IntArray, IntArray] | None = None,
) -> MessageStats:
    """Poisson traffic of the cells ``cell_ids`` (`cell_poisson_arrivals`) sent over them with
    an edge server per cell, as statistics: a shard of a run too large to hold per message.

    The cells go through in blocks of about ``block_messages`` expected messages, so memory is
    bounded by a block (not by the shard) and a block's arrays stay in the CPU's caches (about
    4x faster than 10^7 messages at once on a 32 MiB-L3 machine, `benchmarks/bench_scale.py`).
    With the seeds the network stage draws (``stream_seed`` for the arrivals, then for the link),
    the merged statistics of any split of the cells are those of the whole run. ``by_cell``:
    ``cell_runs(cells.topology.cell)``, computed once for all shards (else by every shard).
    """
    if edge.sites != "per_cell":
        raise ValueError(
            "a shard can only finish its messages with an edge server per cell "
            f"(EdgeServiceModel.sites='per_cell'), got sites={edge.sites!r}"
        )
    if block_messages < 1:
        raise ValueError(f"block_messages must be >= 1, got {block_messages}")
    ids = np.asarray(cell_ids, dtype=np.int64)
    device_cell = cells.topology.cell
    if by_cell is None:
        by_cell = cell_runs(device_cell)
    expected = (
        np.bincount(device_cell, minlength=cells.topology.n_cells)[ids] * rate_hz * duration_s
    )
    blocks = cell_shard_bounds(expected, max(1, int(np.ceil(expected.sum() / block_messages))))
    parts = []
    for lo, hi in itertools.pairwise(blocks.tolist()):
        device, arrival = cell_poisson_arrivals(
            arrival_seed, device_cell, ids[lo:hi], rate_hz=rate_hz, duration_s=duration_s,
            by_cell=by_cell,
        )  # fmt: skip
        n = device.size
        m = Messages(
            device,
            arrival,
            np.full(n, bytes_up, dtype=np.int64),
            np.full(n, bytes_down, dtype=np.int64),
            np.full(n, compute_energy_j),
            np.full(n, sleep_time_s),
        )
        parts.append(MessageStats.of(cells_messages(link_seed, cells, settings, edge, m)))
    return MessageStats.merge(parts).compact()
