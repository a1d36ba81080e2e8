"""The trace-driven engine: requests of many devices, a policy's decisions, the network's cost.

Model outputs are computed once per test sample (a `tinylarge.integrate.inference.contract.Trace`);
each
device issues Poisson requests that draw test samples matching its own data (the same SNR, or
the same class, as a random training sample of the device: a device far from the base station
sees low-SNR frames); the policy decides per request; offloaded requests go through
`tinylarge.net.send_messages` (uplink queue, edge batching, reply); the device's compute is
costed per multiply-accumulate from the tiny model's MCU estimate. Everything is arrays.

Outcome per request: correct, offloaded, delivered, bytes up/down, latency_s, energy_j (compute +
radio), deadline met. A request answered nowhere (offload failed and no on-device answer) is
wrong and misses its deadline.

A `tinylarge.net.overhead.ProtocolOverhead` (the security layer's, `tinylarge.secure.costs`)
adds its header and tag to every offloaded message and to every reply, the device's time and
energy to seal the request and open the reply, and one session set-up (handshake) per device
that offloads at all: its public-key work and its two flights at the device's mean link rates,
charged to the device's first offload. The set-up is off the latency path (a device opens its
session when it attaches, before its first request).

When the overhead has a transport (`tinylarge.secure.transport`: MQTT packets, TLS records), the
radio carries each message in its framing (``transport_bytes_up``; ``bytes_up`` stays the
message: payload + header + tag), the device protects the records too, and each device pays
one connection set-up (its handshake bytes both ways at its mean link rates and its public-key
work) at its first offload, off the latency path like the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.data import Partition
from tinylarge.integrate.inference.contract import Decision, Policy, Trace
from tinylarge.integrate.inference.resource_limits import apply_resource_limits
from tinylarge.net import CellDevices, EdgeServiceModel, LinkSettings, send_messages
from tinylarge.net.mean_rate import MeanRateLink
from tinylarge.net.message_stats import percentile_summary
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.net.request_timeline import RequestTimeline, request_timeline
from tinylarge.net.shards import ShardRunner
from tinylarge.sim.session_costs import (
    SecurityCost,
    TransportCost,
    charge_connections,
    charge_sessions,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Requests:
    """Requests of all devices, by time: issuing device, time (s) and test sample drawn."""

    device: IntArray
    arrival_s: FloatArray
    sample: IntArray


@dataclass(frozen=True)
class DeviceCompute:
    """On-device compute cost, linear in multiply-accumulates (from the MCU estimate)."""

    seconds_per_mac: float
    joules_per_mac: float

    @classmethod
    def from_footprint(cls, macs: int, latency_s: float, energy_j: float) -> DeviceCompute:
        """From one model's MACs, latency and energy on the target MCU."""
        if macs < 1:
            raise ValueError(f"macs must be >= 1, got {macs}")
        return cls(latency_s / macs, energy_j / macs)


def draw_requests(
    rng: np.random.Generator,
    partition: Partition,
    train_key: npt.ArrayLike,
    test_key: npt.ArrayLike,
    *,
    rate_per_device_hz: float,
    duration_s: float,
) -> Requests:
    """Poisson requests of every device; each draws a test sample like the device's own data.

    ``train_key``/``test_key`` (e.g. per-sample SNR in dB, or the class) tie the two sets: a
    request picks a random training sample of its device and then a random test sample with the
    same key (if the test set has none with that key, any test sample).
    """
    n_devices = partition.n_devices
    if not rate_per_device_hz > 0 or not duration_s > 0:
        raise ValueError(
            f"rate_per_device_hz and duration_s must be > 0, got {rate_per_device_hz}, {duration_s}"
        )
    train_key = np.asarray(train_key)
    test_key = np.asarray(test_key)
    n = int(rng.poisson(n_devices * rate_per_device_hz * duration_s))
    arrival = np.sort(rng.uniform(0.0, duration_s, n))
    device = rng.integers(0, n_devices, n).astype(np.int64)
    sizes = partition.sizes[device]
    if np.any(sizes == 0):
        raise ValueError("every device that issues requests needs at least one training sample")
    own = partition.offsets[device] + (rng.random(n) * sizes).astype(np.int64)
    key = train_key[partition.indices[own]]
    order = np.argsort(test_key, kind="stable")
    sorted_key = test_key[order]
    lo = np.searchsorted(sorted_key, key, side="left")
    hi = np.searchsorted(sorted_key, key, side="right")
    missing = hi == lo
    lo = np.where(missing, 0, lo)
    hi = np.where(missing, test_key.size, hi)
    pick = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    return Requests(device, arrival, order[pick].astype(np.int64))


@dataclass(frozen=True)
class ResourceLimits:
    """Resource awareness: offloads predicted to miss ``deadline_s`` or to overdraw a device's
    ``energy_budget_j`` (over the whole run) stay on the device (`apply_resource_limits`)."""

    deadline_s: float | None = None
    energy_budget_j: float | None = None


@dataclass(frozen=True)
class OffloadPath:
    """What an offloaded request goes through, from the device's compute to the edge's reply.

    Attributes
    ----------
    cells : CellDevices
        The devices' cells: radio profile, positions, path loss, mean SNRs.
    settings : LinkSettings
        How the cell's link is modelled (spectral efficiency, scheduler, fading, HARQ).
    edge : EdgeServiceModel
        The edge's batching server (service time, largest batch, batching wait).
    compute : DeviceCompute
        The device's compute cost per multiply-accumulate (s, J).
    reply_bytes : int
        Payload of the edge's reply, bytes.
    overhead : ProtocolOverhead, optional
        The protocol's (e.g. the security layer's) bytes per message and device work.
    """

    cells: CellDevices
    settings: LinkSettings
    edge: EdgeServiceModel
    compute: DeviceCompute
    reply_bytes: int
    overhead: ProtocolOverhead | None = None


def _device_steps(decision: Decision, path: OffloadPath) -> RequestTimeline:
    """The device's steps of every request of ``decision`` (`request_timeline`)."""
    return request_timeline(
        decision.offload,
        decision.bytes_up,
        decision.device_macs,
        seconds_per_mac=path.compute.seconds_per_mac,
        joules_per_mac=path.compute.joules_per_mac,
        reply_bytes=path.reply_bytes,
        overhead=path.overhead,
    )


def estimate_offload_cost(
    decision: Decision, requests: Requests, path: OffloadPath
) -> tuple[FloatArray, FloatArray]:
    """What a device can predict before sending: latency (s) and energy (J) of each offload.

    The device's steps of the request timeline (`tinylarge.net.request_timeline`: compute,
    sealing, opening the reply) and its mean-rate link (`tinylarge.net.mean_rate`: whole-band
    airtime at its mean SNR, no fast fading, no other devices): one slot of alignment, the
    uplink airtime, one edge batch of one, the reply's airtime; energy = compute + crypto +
    TX draw over the uplink airtime + RX power over the reply's. With ``overhead``, messages
    carry its bytes and the device seals / opens them (its session set-up, paid once, is not
    in a per-request estimate). Requests the device cannot reach the edge with (rate 0) get
    infinite cost.
    """
    timeline = _device_steps(decision, path)
    link = MeanRateLink.of_cells(path.cells, path.settings)
    ok = link.reachable[requests.device]
    up_air, up_j = link.send(timeline.wire_up, requests.device)
    dl_air, dl_j = link.receive(timeline.reply_wire_bytes, requests.device)
    crypto_s = timeline.seal_s + timeline.open_s  # sealing the request, opening the reply
    crypto_j = timeline.seal_j + timeline.open_j
    latency = (
        timeline.inference_s + crypto_s + path.cells.profile.slot_s + up_air
        + path.edge.setup_s + path.edge.per_item_s + dl_air
    )  # fmt: skip
    energy = timeline.inference_j + crypto_j + up_j + dl_j
    return np.where(ok, latency, np.inf), np.where(ok, energy, np.inf)


@dataclass(frozen=True)
class PolicyOutcome:
    """Per-request outcome of one policy (arrays of shape (n_requests,))."""

    name: str
    correct: npt.NDArray[np.bool_]
    offloaded: npt.NDArray[np.bool_]
    delivered: npt.NDArray[np.bool_]
    bytes_up: IntArray
    latency_s: FloatArray
    compute_energy_j: FloatArray
    radio_energy_j: FloatArray
    deadline_met: npt.NDArray[np.bool_]
    security: SecurityCost | None = None
    #: what each request put on air through the transport's framing (None: no transport,
    #: the same as ``bytes_up``), bytes
    transport_bytes_up: IntArray | None = None
    transport: TransportCost | None = None

    @property
    def wire_bytes_up(self) -> IntArray:
        """Uplink bytes on air of each request: through the transport if any, bytes."""
        return self.bytes_up if self.transport_bytes_up is None else self.transport_bytes_up

    @property
    def payload_bytes_up(self) -> IntArray:
        """Uplink payload of each request without the protocol's header and tag, bytes."""
        if self.security is None:
            return self.bytes_up
        return self.bytes_up - np.where(self.offloaded, self.security.bytes_per_message, 0)

    def summary(self) -> dict[str, Any]:
        """Accuracy, offload fraction, latency percentiles, energy and bytes per inference."""
        answered = np.isfinite(self.latency_s)
        pct = percentile_summary(self.latency_s[answered])
        n = max(self.correct.size, 1)
        return {
            "requests": int(self.correct.size),
            "accuracy": float(self.correct.mean()) if self.correct.size else 0.0,
            "offload_fraction": float(self.offloaded.mean()) if self.correct.size else 0.0,
            "delivered_fraction_of_offloaded": float(self.delivered[self.offloaded].mean())
            if self.offloaded.any()
            else None,
            "latency_s": pct,
            "energy_j_per_inference": float(
                (self.compute_energy_j.sum() + self.radio_energy_j.sum()) / n
            ),
            "compute_energy_j_per_inference": float(self.compute_energy_j.sum() / n),
            "radio_energy_j_per_inference": float(self.radio_energy_j.sum() / n),
            "bytes_up_per_inference": float(self.bytes_up.sum() / n),
            "transport_bytes_up_per_inference": float(self.wire_bytes_up.sum() / n),
            "deadline_met_fraction": float(self.deadline_met.mean()) if self.correct.size else 0.0,
            **({"security": self.security.summary(n)} if self.security is not None else {}),
            **({"transport": self.transport.summary(n)} if self.transport is not None else {}),
        }


def run_policy(
    rng: np.random.Generator,
    policy: Policy,
    trace: Trace,
    requests: Requests,
    path: OffloadPath,
    *,
    deadline_s: float,
    limits: ResourceLimits | None = None,
    session_lifetime_s: float | None = None,
    duration_s: float | None = None,
    shards: int = 1,
    runner: ShardRunner | None = None,
) -> PolicyOutcome:
    """Decide every request with ``policy`` and cost it on the device and the network.

    ``path`` is what an offload goes through (`OffloadPath`). With ``limits``, offloads
    predicted (`estimate_offload_cost`) to miss the deadline or to overdraw a device's
    energy budget stay on the device before anything is sent. With ``overhead`` (e.g. the
    security layer's), messages and devices pay it as the module doc says, and the outcome's
    ``security`` records what it added; ``bytes_up`` is then the message (payload + header +
    tag); with a transport in the overhead, ``transport_bytes_up`` is what is on air and
    ``transport`` what the transport added. A session lasts ``session_lifetime_s`` (None:
    the whole run); a run of ``duration_s`` shorter than that pays ``duration_s /
    session_lifetime_s`` of each handshake (amortized), a longer one a new handshake per
    lifetime. ``shards`` and ``runner`` split the offloads' network costing by cell
    (`send_messages`; same result).
    """
    if not deadline_s > 0:
        raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
    decision = policy.decide(trace, requests.sample, rng, device=requests.device)
    if limits is not None and decision.offload.any():
        decision = _within_limits(decision, requests, limits, path)
    timeline = _device_steps(decision, path)
    sent = _send_offloads(
        rng, timeline, requests, decision.offload, path, shards=shards, runner=runner
    )
    security = transport = None
    overhead = path.overhead
    if overhead is not None and (overhead.secures or not overhead.transport_enabled):
        security = _charge_security(
            overhead, timeline, requests, decision.offload, sent,
            reply_bytes=path.reply_bytes, link=MeanRateLink.of_cells(path.cells, path.settings),
            lifetime_s=session_lifetime_s, duration_s=duration_s,
        )  # fmt: skip
    if overhead is not None and overhead.transport_enabled:
        transport = _charge_transport(
            overhead, timeline, requests, decision.offload, sent,
            MeanRateLink.of_cells(path.cells, path.settings),
        )  # fmt: skip
    return _outcome(policy.name, decision, trace.y[requests.sample], timeline, sent,
                    deadline_s=deadline_s, security=security, transport=transport)  # fmt: skip


def _within_limits(
    decision: Decision,
    requests: Requests,
    limits: ResourceLimits,
    path: OffloadPath,
) -> Decision:
    """``decision`` with the offloads predicted to break ``limits`` kept on the device."""
    latency_est, energy_est = estimate_offload_cost(decision, requests, path)
    return apply_resource_limits(
        decision,
        latency_s=latency_est if limits.deadline_s is not None else None,
        deadline_s=limits.deadline_s,
        energy_j=energy_est if limits.energy_budget_j is not None else None,
        energy_budget_j=limits.energy_budget_j,
        device=requests.device if limits.energy_budget_j is not None else None,
    )


@dataclass(frozen=True)
class _Sent:
    """What the network did with every request (arrays of shape (m,)): latency so far (s; the
    device's compute for requests kept local, NaN for lost replies), delivered, and the
    device's compute and radio energy (J; updated in place by the session charges)."""

    latency_s: FloatArray
    delivered: npt.NDArray[np.bool_]
    compute_j: FloatArray
    radio_j: FloatArray


def _send_offloads(
    rng: np.random.Generator,
    timeline: RequestTimeline,
    requests: Requests,
    offload: npt.NDArray[np.bool_],
    path: OffloadPath,
    *,
    shards: int,
    runner: ShardRunner | None,
) -> _Sent:
    """Send the offloads when their devices are done (`send_messages`); a delivered reply
    costs the device its opening time and energy."""
    n = offload.size
    latency = timeline.compute_s.astype(np.float64)
    compute_j = timeline.compute_j.copy()
    radio_j = np.zeros(n)
    delivered = np.zeros(n, dtype=np.bool_)
    sent = np.flatnonzero(offload)
    if sent.size:
        messages = send_messages(
            rng,
            path.cells,
            path.settings,
            path.edge,
            device=requests.device[sent],
            arrival_s=timeline.ready_s(requests.arrival_s)[sent],
            bytes_up=timeline.wire_up[sent],
            bytes_down=timeline.reply_wire_bytes,
            shards=shards,
            runner=runner,
        )
        delivered[sent] = messages.delivered
        radio_j[sent] = messages.energy_j
        # The device opens (checks and decrypts) a reply that arrives.
        compute_j[sent] += np.where(messages.delivered, timeline.open_j, 0.0)
        answered = timeline.opened_s(timeline.compute_s[sent] + messages.latency_s)
        latency[sent] = np.where(messages.delivered, answered, np.nan)
    return _Sent(latency, delivered, compute_j, radio_j)


def _charge_security(
    overhead: ProtocolOverhead,
    timeline: RequestTimeline,
    requests: Requests,
    offload: npt.NDArray[np.bool_],
    sent: _Sent,
    *,
    reply_bytes: int,
    link: MeanRateLink,
    lifetime_s: float | None,
    duration_s: float | None,
) -> SecurityCost:
    """Charge the session set-ups (in place on ``sent``'s energies) and total what the
    protocol added."""
    handshakes, handshake_j, handshake_radio_j = charge_sessions(
        overhead,
        requests.device,
        requests.arrival_s,
        offload,
        link,
        sent.compute_j,
        sent.radio_j,
        lifetime_s=lifetime_s,
        duration_s=duration_s,
    )
    replies = int(sent.delivered.sum())
    sealed_reply = timeline.reply_sealed_bytes
    return SecurityCost(
        message_overhead_bytes=int(timeline.sealed_up.sum() - timeline.payload_up.sum())
        + replies * (sealed_reply - reply_bytes),
        handshake_bytes=handshakes * (overhead.session_up_bytes + overhead.session_down_bytes),
        crypto_energy_j=float(timeline.seal_j.sum()) + replies * timeline.open_j + handshake_j,
        handshake_radio_energy_j=handshake_radio_j,
        handshakes=handshakes,
        bytes_per_message=overhead.message_bytes,
    )


def _charge_transport(
    overhead: ProtocolOverhead,
    timeline: RequestTimeline,
    requests: Requests,
    offload: npt.NDArray[np.bool_],
    sent: _Sent,
    link: MeanRateLink,
) -> TransportCost:
    """Charge the connection set-ups (in place on ``sent``'s energies) and total what the
    transport added."""
    connections, connect_j, connect_radio_j = charge_connections(
        overhead, requests.device, offload, link, sent.compute_j, sent.radio_j
    )
    replies = int(sent.delivered.sum())
    framing_reply = timeline.reply_wire_bytes - timeline.reply_sealed_bytes
    return TransportCost(
        framing_bytes=int(timeline.wire_up.sum() - timeline.sealed_up.sum())
        + replies * framing_reply,
        connection_bytes=connections * overhead.connection_bytes,
        connection_energy_j=connect_j,
        connection_radio_energy_j=connect_radio_j,
        connections=connections,
        round_trips_per_connection=overhead.connection_round_trips,
    )


def _outcome(
    name: str,
    decision: Decision,
    y: IntArray,
    timeline: RequestTimeline,
    sent: _Sent,
    *,
    deadline_s: float,
    security: SecurityCost | None,
    transport: TransportCost | None = None,
) -> PolicyOutcome:
    """Each request's answer: the edge's when its reply came, else the device's own at once
    (if it has one); no answer at all is wrong and never in time."""
    answer = np.where(
        decision.offload & sent.delivered, decision.prediction, decision.fallback_prediction
    )
    failed = decision.offload & ~sent.delivered
    # A failed offload falls back to the on-device answer at once (if there is one).
    has_fallback = decision.fallback_prediction >= 0
    latency = np.where(failed & has_fallback, timeline.compute_s, sent.latency_s)
    latency = np.where(answer < 0, np.inf, latency)
    return PolicyOutcome(
        name=name,
        correct=answer == y,
        offloaded=decision.offload,
        delivered=sent.delivered,
        bytes_up=timeline.sealed_up,
        latency_s=latency,
        compute_energy_j=sent.compute_j.astype(np.float64),
        radio_energy_j=sent.radio_j,
        deadline_met=np.isfinite(latency) & (latency <= deadline_s),
        security=security,
        transport_bytes_up=timeline.wire_up if transport is not None else None,
        transport=transport,
    )
