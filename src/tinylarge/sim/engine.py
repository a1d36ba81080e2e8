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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.data import Partition
from tinylarge.integrate.inference.contract import Decision, Policy, Trace
from tinylarge.integrate.inference.resource_limits import apply_resource_limits
from tinylarge.net import CellDevices, EdgeServiceModel, LinkSettings, airtime_s, send_messages
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.net.shards import ShardRunner
from tinylarge.net.uplink import efficiency_fn
from tinylarge.sim.session_costs import SecurityCost, SessionLinks, charge_sessions

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


def mean_link_rates_bps(
    cells: CellDevices, settings: LinkSettings
) -> tuple[FloatArray, FloatArray]:
    """Each device's uplink and downlink rate at its mean SNR over the whole band, bit/s.

    What a device can know before sending (no fast fading, no other devices); 0 out of range.
    """
    profile = cells.profile
    se_fn = efficiency_fn(profile, settings.spectral_efficiency)
    up = profile.uplink_bandwidth_hz * se_fn(cells.uplink_mean_snr_db)
    down = profile.downlink_bandwidth_hz * se_fn(cells.downlink_mean_snr_db)
    return np.asarray(up, dtype=np.float64), np.asarray(down, dtype=np.float64)


def transmit_power_w(cells: CellDevices, settings: LinkSettings) -> float:
    """Power the device draws while transmitting: TX power / PA efficiency + TX circuit, W."""
    energy_model = settings.energy
    return float(
        10.0 ** (cells.profile.device_tx_power_dbm / 10.0) / 1000.0 / energy_model.pa_efficiency
        + energy_model.circuit_power_w
    )


def estimate_offload_cost(
    decision: Decision,
    requests: Requests,
    *,
    cells: CellDevices,
    settings: LinkSettings,
    edge: EdgeServiceModel,
    compute: DeviceCompute,
    reply_bytes: int,
    overhead: ProtocolOverhead | None = None,
) -> tuple[FloatArray, FloatArray]:
    """What a device can predict before sending: latency (s) and energy (J) of each offload.

    From the device's mean uplink/downlink SNR (no fast fading, no other devices): one slot of
    alignment, the airtime at the whole-band rate, one edge batch of one, the reply's airtime;
    energy = compute + TX power / PA efficiency + circuit over the airtime + RX of the reply.
    With ``overhead``, messages carry its bytes and the device seals / opens them (its session
    set-up, paid once, is not in a per-request estimate). Requests the device cannot reach the
    edge with (rate 0) get infinite cost.
    """
    ov = overhead or ProtocolOverhead()
    profile = cells.profile
    up_all, down_all = mean_link_rates_bps(cells, settings)
    up_rate, dl_rate = up_all[requests.device], down_all[requests.device]
    ok = (up_rate > 0) & (dl_rate > 0)
    payload = np.where(decision.offload, decision.bytes_up, 0)
    up_air = airtime_s(8 * ov.wire_bytes(payload), np.where(ok, up_rate, 1.0), profile.slot_s)
    dl_air = airtime_s(8 * ov.wire_bytes(reply_bytes), np.where(ok, dl_rate, 1.0), profile.slot_s)
    crypto_s = ov.device_time_s(payload) + ov.device_time_s(reply_bytes)
    crypto_j = ov.device_energy_j(payload) + ov.device_energy_j(reply_bytes)
    compute_s = decision.device_macs * compute.seconds_per_mac + crypto_s
    latency = compute_s + profile.slot_s + up_air + edge.setup_s + edge.per_item_s + dl_air
    energy = (
        decision.device_macs * compute.joules_per_mac
        + crypto_j
        + transmit_power_w(cells, settings) * up_air
        + settings.energy.rx_power_w * dl_air
    )
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

    @property
    def payload_bytes_up(self) -> IntArray:
        """Uplink payload of each request without the protocol's header and tag, bytes."""
        if self.security is None:
            return self.bytes_up
        return self.bytes_up - np.where(self.offloaded, self.security.bytes_per_message, 0)

    def summary(self) -> dict[str, Any]:
        """Accuracy, offload fraction, latency percentiles, energy and bytes per inference."""
        answered = np.isfinite(self.latency_s)
        lat = self.latency_s[answered]
        pct = {f"p{q}": float(np.percentile(lat, q)) if lat.size else None for q in (50, 95, 99)}
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
            "deadline_met_fraction": float(self.deadline_met.mean()) if self.correct.size else 0.0,
            **({"security": self.security.summary(n)} if self.security is not None else {}),
        }


def run_policy(
    rng: np.random.Generator,
    policy: Policy,
    trace: Trace,
    requests: Requests,
    *,
    cells: CellDevices,
    settings: LinkSettings,
    edge: EdgeServiceModel,
    compute: DeviceCompute,
    reply_bytes: int,
    deadline_s: float,
    limits: ResourceLimits | None = None,
    overhead: ProtocolOverhead | None = None,
    session_lifetime_s: float | None = None,
    duration_s: float | None = None,
    shards: int = 1,
    runner: ShardRunner | None = None,
) -> PolicyOutcome:
    """Decide every request with ``policy`` and cost it on the device and the network.

    With ``limits``, offloads predicted (`estimate_offload_cost`) to miss the deadline or to
    overdraw a device's energy budget stay on the device before anything is sent. With
    ``overhead`` (e.g. the security layer's), messages and devices pay it as the module doc
    says, and the outcome's ``security`` records what it added; ``bytes_up`` is then what is
    on air (payload + header + tag). A session lasts ``session_lifetime_s`` (None: the whole
    run); a run of ``duration_s`` shorter than that pays ``duration_s / session_lifetime_s`` of
    each handshake (amortized), a longer one a new handshake per lifetime. ``shards`` and
    ``runner`` split the offloads' network costing by cell (`send_messages`; same result).
    """
    if not deadline_s > 0:
        raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
    decision = policy.decide(trace, requests.sample, rng, device=requests.device)
    if limits is not None and decision.offload.any():
        latency_est, energy_est = estimate_offload_cost(
            decision,
            requests,
            cells=cells,
            settings=settings,
            edge=edge,
            compute=compute,
            reply_bytes=reply_bytes,
            overhead=overhead,
        )
        decision = apply_resource_limits(
            decision,
            latency_s=latency_est if limits.deadline_s is not None else None,
            deadline_s=limits.deadline_s,
            energy_j=energy_est if limits.energy_budget_j is not None else None,
            energy_budget_j=limits.energy_budget_j,
            device=requests.device if limits.energy_budget_j is not None else None,
        )
    ov = overhead or ProtocolOverhead()
    y = trace.y[requests.sample]
    payload_up = np.where(decision.offload, decision.bytes_up, 0).astype(np.int64)
    wire_up = ov.wire_bytes(payload_up)
    wire_reply = int(ov.wire_bytes(reply_bytes))
    seal_s, seal_j = ov.device_time_s(payload_up), ov.device_energy_j(payload_up)
    open_s, open_j = float(ov.device_time_s(reply_bytes)), float(ov.device_energy_j(reply_bytes))
    compute_s = decision.device_macs * compute.seconds_per_mac + seal_s
    compute_j = decision.device_macs * compute.joules_per_mac + seal_j
    latency = compute_s.astype(np.float64)
    radio_j = np.zeros(y.size)
    delivered = np.zeros(y.size, dtype=np.bool_)
    sent = np.flatnonzero(decision.offload)
    if sent.size:
        messages = send_messages(
            rng,
            cells,
            settings,
            edge,
            device=requests.device[sent],
            arrival_s=requests.arrival_s[sent] + compute_s[sent],
            bytes_up=wire_up[sent],
            bytes_down=wire_reply,
            shards=shards,
            runner=runner,
        )
        delivered[sent] = messages.delivered
        radio_j[sent] = messages.energy_j
        # The device opens (checks and decrypts) a reply that arrives.
        compute_j[sent] += np.where(messages.delivered, open_j, 0.0)
        latency[sent] = np.where(
            messages.delivered, compute_s[sent] + messages.latency_s + open_s, np.nan
        )
    security = None
    if overhead is not None:
        up_bps, down_bps = mean_link_rates_bps(cells, settings)
        handshakes, handshake_j, handshake_radio_j = charge_sessions(
            ov,
            requests.device,
            requests.arrival_s,
            decision.offload,
            SessionLinks(
                up_bps, down_bps, cells.profile.slot_s, transmit_power_w(cells, settings),
                settings.energy.rx_power_w,
            ),
            compute_j,
            radio_j,
            lifetime_s=session_lifetime_s,
            duration_s=duration_s,
        )  # fmt: skip
        replies = int(delivered.sum())
        security = SecurityCost(
            message_overhead_bytes=int(wire_up.sum() - payload_up.sum())
            + replies * (wire_reply - reply_bytes),
            handshake_bytes=handshakes * (ov.session_up_bytes + ov.session_down_bytes),
            crypto_energy_j=float(seal_j.sum()) + replies * open_j + handshake_j,
            handshake_radio_energy_j=handshake_radio_j,
            handshakes=handshakes,
            bytes_per_message=ov.message_bytes,
        )
    answer = np.where(
        decision.offload & delivered, decision.prediction, decision.fallback_prediction
    )
    failed = decision.offload & ~delivered
    # A failed offload falls back to the on-device answer at once (if there is one).
    has_fallback = decision.fallback_prediction >= 0
    latency = np.where(failed & has_fallback, compute_s, latency)
    latency = np.where(answer < 0, np.inf, latency)
    correct = answer == y
    return PolicyOutcome(
        name=policy.name,
        correct=correct,
        offloaded=decision.offload,
        delivered=delivered,
        bytes_up=wire_up,
        latency_s=latency,
        compute_energy_j=compute_j.astype(np.float64),
        radio_energy_j=radio_j,
        deadline_met=np.isfinite(latency) & (latency <= deadline_s),
        security=security,
    )
