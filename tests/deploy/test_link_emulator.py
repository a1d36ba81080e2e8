"""The link emulation delays against the simulator's network model: by hand, and request by
request against `run_policy` (fading, HARQ, a burst that queues on the air, security bytes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tinylarge.deploy.link_emulator import plan_links
from tinylarge.integrate.inference.baselines import LargeOnly
from tinylarge.integrate.inference.contract import Trace
from tinylarge.net import EdgeServiceModel, LinkSettings, attach_devices, radio_profile
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.sim.engine import DeviceCompute, OffloadPath, Requests, run_policy

#: An edge that answers at once: the simulator's latency is then device + radio only.
INSTANT_EDGE = EdgeServiceModel(setup_s=0.0, per_item_s=0.0, max_batch=1, max_wait_s=0.0)


def _cells(n: int, snr_db: float | None = None):  # type: ignore[no-untyped-def]
    cells = attach_devices(np.random.default_rng(0), radio_profile("redcap"), n)
    if snr_db is None:
        return cells
    snr = np.full(n, snr_db)
    return replace(cells, uplink_mean_snr_db=snr, downlink_mean_snr_db=snr + 10)


def test_delays_by_hand_without_fading_or_retransmissions() -> None:
    cells = _cells(1, snr_db=10.0)
    slot = cells.profile.slot_s
    settings = LinkSettings(fading="none", bler_target=0.0, max_transmissions=1)
    plan = plan_links(
        np.random.default_rng(0), cells, settings, device=[0], arrival_s=[0.3 * slot],
        offload=[True], device_macs=[1000], seconds_per_mac=1e-6, payload_bytes=256,
        reply_bytes=13,
    )  # fmt: skip
    propagation = cells.topology.d_2d_m[0] / 299_792_458.0
    ready = 0.3 * slot + 1e-3
    aligned = np.ceil(ready / slot) * slot  # the next slot boundary
    from tinylarge.net.link import airtime_s
    from tinylarge.net.uplink import efficiency_fn

    se = efficiency_fn(cells.profile, "cqi")
    up_rate = cells.profile.uplink_bandwidth_hz * se(np.array([10.0]))[0]
    down_rate = cells.profile.downlink_bandwidth_hz * se(np.array([20.0]))[0]
    assert plan.compute_s[0] == pytest.approx(1e-3)
    assert plan.uplink_s[0] == pytest.approx(
        aligned - ready + airtime_s(8 * 256, up_rate, slot) + propagation
    )
    assert plan.downlink_s[0] == pytest.approx(propagation + airtime_s(8 * 13, down_rate, slot))
    assert not plan.lost[0] and not plan.reply_lost[0]


def test_every_request_gets_the_simulators_radio_delays() -> None:
    n_devices = 40
    cells = _cells(n_devices)  # real topology: a spread of SNRs, some far devices
    settings = LinkSettings(bler_target=0.3, max_transmissions=2)  # Rayleigh; 9 % HARQ fails
    rng = np.random.default_rng(3)
    m = 400
    device = rng.integers(0, n_devices, m)
    arrival = np.sort(np.concatenate([np.zeros(60), rng.uniform(0, 1.0, m - 60)]))  # a burst
    logits = np.eye(4)[rng.integers(0, 4, (2, m))]
    trace = Trace(tiny_logits=logits[0], large_logits=logits[1], y=rng.integers(0, 4, m))
    overhead = ProtocolOverhead(message_bytes=39, device_s_per_byte=2e-7, device_j_per_byte=1e-8)
    requests = Requests(device, arrival, np.arange(m))
    sim = run_policy(
        np.random.default_rng(11), LargeOnly(frame_bytes=256), trace, requests,
        OffloadPath(cells, settings, INSTANT_EDGE, DeviceCompute(0.0, 0.0), 13, overhead),
        deadline_s=1.0,
    )  # fmt: skip
    plan = plan_links(
        np.random.default_rng(11), cells, settings, device=device, arrival_s=arrival,
        offload=np.ones(m, bool), device_macs=np.zeros(m), seconds_per_mac=0.0,
        payload_bytes=256, reply_bytes=13, overhead=overhead,
    )  # fmt: skip
    ok = sim.delivered
    assert 0 < ok.sum() < m  # some outage or HARQ failures happen: both say which
    np.testing.assert_array_equal(ok, ~plan.lost & ~plan.reply_lost)
    emulated = plan.compute_s + plan.uplink_s + plan.downlink_s
    # equal up to the queues' 1 ns ticks
    np.testing.assert_allclose(emulated[ok], sim.latency_s[ok], rtol=0, atol=2e-9)
    # the burst queued on the air: the 60 simultaneous messages of the cell do not all leave
    # in the first slot
    assert np.ptp(plan.uplink_s[:60][~plan.lost[:60]]) > cells.profile.slot_s
