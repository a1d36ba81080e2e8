"""The trace-driven engine: request drawing and the per-request accounting by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tinylarge.data.partition import Partition
from tinylarge.integrate.inference.baselines import LargeOnly, TinyOnly
from tinylarge.integrate.inference.contract import Trace
from tinylarge.net import (
    EdgeServiceModel,
    LinkSettings,
    attach_devices,
    radio_profile,
    send_messages,
)
from tinylarge.sim.engine import DeviceCompute, OffloadPath, Requests, draw_requests, run_policy

NO_FADING = LinkSettings(fading="none", bler_target=0.0, max_transmissions=1)
EDGE = EdgeServiceModel(setup_s=0.001, per_item_s=0.0005, max_batch=8, max_wait_s=None)
COMPUTE = DeviceCompute(seconds_per_mac=1e-8, joules_per_mac=2e-9)


def _trace() -> Trace:
    # 3 classes; tiny right on samples 0, 1; large right on 0, 2, 3.
    tiny = np.array([[5, 0, 0], [0, 5, 0], [5, 0, 0], [0, 5, 0]], dtype=np.float32)
    large = np.array([[5, 0, 0], [5, 0, 0], [0, 0, 5], [0, 0, 5]], dtype=np.float32)
    return Trace(tiny_logits=tiny, large_logits=large, y=np.array([0, 1, 2, 2]))


def _cells(snr_db: float, n: int):  # type: ignore[no-untyped-def]
    cells = attach_devices(np.random.default_rng(0), radio_profile("redcap"), n)
    snr = np.full(n, snr_db)
    return replace(cells, uplink_mean_snr_db=snr, downlink_mean_snr_db=snr + 10)


def _path(cells, overhead=None) -> OffloadPath:  # type: ignore[no-untyped-def]
    """The tests' offload path: no fading, a 1.5 ms edge, 8-byte replies."""
    return OffloadPath(cells, NO_FADING, EDGE, COMPUTE, reply_bytes=8, overhead=overhead)


def test_tiny_only_costs_compute_and_answers_with_the_tiny_model() -> None:
    requests = Requests(np.array([0, 1, 0, 1]), np.array([0.0, 0.1, 0.2, 0.3]), np.arange(4))
    out = run_policy(
        np.random.default_rng(0), TinyOnly(tiny_macs=1000), _trace(), requests,
        _path(_cells(10.0, 2)), deadline_s=1e-5 + 1e-12,
    )  # fmt: skip
    assert out.correct.tolist() == [True, True, False, False]
    np.testing.assert_allclose(out.latency_s, 1000 * 1e-8)
    np.testing.assert_allclose(out.compute_energy_j, 1000 * 2e-9)
    assert out.radio_energy_j.sum() == 0 and out.bytes_up.sum() == 0
    s = out.summary()
    assert s["accuracy"] == 0.5 and s["offload_fraction"] == 0.0
    assert s["energy_j_per_inference"] == pytest.approx(2e-6)
    assert s["deadline_met_fraction"] == 1.0


def test_large_only_accounting_matches_the_network_model_by_hand() -> None:
    cells = _cells(10.0, 2)
    device, arrival = np.array([0, 1, 0, 1]), np.array([0.0, 0.01, 0.02, 0.03])
    requests = Requests(device, arrival, np.arange(4))
    out = run_policy(
        np.random.default_rng(0), LargeOnly(frame_bytes=256), _trace(), requests,
        _path(cells), deadline_s=0.004,
    )  # fmt: skip
    direct = send_messages(
        np.random.default_rng(0), cells, NO_FADING, EDGE,
        device=device, arrival_s=arrival, bytes_up=256, bytes_down=8,
    )  # fmt: skip
    assert out.correct.tolist() == [True, False, True, True]
    np.testing.assert_allclose(out.latency_s, direct.latency_s)
    np.testing.assert_allclose(out.radio_energy_j, direct.energy_j)
    assert out.compute_energy_j.sum() == 0
    assert out.summary()["bytes_up_per_inference"] == 256.0
    assert out.deadline_met.tolist() == (direct.latency_s <= 0.004).tolist()


def test_failed_offload_without_an_on_device_answer_is_wrong_and_late() -> None:
    requests = Requests(np.array([0]), np.array([0.0]), np.array([0]))
    out = run_policy(
        np.random.default_rng(0), LargeOnly(frame_bytes=256), _trace(), requests,
        _path(_cells(-40.0, 1)), deadline_s=1.0,
    )  # fmt: skip
    assert not out.delivered[0] and not out.correct[0] and not out.deadline_met[0]
    assert np.isinf(out.latency_s[0])


def test_requests_draw_test_samples_like_their_device_data() -> None:
    # Device 0 holds training samples of SNR -10 dB, device 1 of +20 dB.
    partition = Partition(indices=np.array([0, 1, 2, 3]), offsets=np.array([0, 2, 4]))
    train_snr = np.array([-10.0, -10.0, 20.0, 20.0])
    test_snr = np.array([20.0, -10.0, 20.0, -10.0, 0.0])
    req = draw_requests(
        np.random.default_rng(1), partition, train_snr, test_snr,
        rate_per_device_hz=50.0, duration_s=10.0,
    )  # fmt: skip
    assert abs(req.device.size - 1000) < 5 * np.sqrt(1000)
    assert np.all(np.diff(req.arrival_s) >= 0)
    np.testing.assert_array_equal(test_snr[req.sample], np.where(req.device == 0, -10.0, 20.0))
    with pytest.raises(ValueError, match="rate_per_device_hz and duration_s must be > 0"):
        draw_requests(np.random.default_rng(1), partition, train_snr, test_snr,
                      rate_per_device_hz=0.0, duration_s=1.0)  # fmt: skip


def test_resource_limits_keep_late_or_costly_offloads_on_the_device() -> None:
    from tinylarge.integrate.inference.baselines import Oracle
    from tinylarge.sim.engine import ResourceLimits, estimate_offload_cost

    cells = _cells(10.0, 2)
    requests = Requests(np.array([0, 1, 0, 1]), np.array([0.0, 0.01, 0.02, 0.03]), np.arange(4))
    # A deadline no offload can meet: the oracle answers with the tiny model everywhere.
    tight = ResourceLimits(deadline_s=1e-4)
    out = run_policy(np.random.default_rng(0), Oracle(256, 1000), _trace(), requests,
                     _path(cells), deadline_s=1.0, limits=tight)  # fmt: skip
    assert not out.offloaded.any() and out.bytes_up.sum() == 0
    assert out.correct.tolist() == [True, True, False, False]  # the tiny model's answers
    # A budget for one offload per device: each device's second request stays local (no answer).
    decision = LargeOnly(256).decide(_trace(), requests.sample, np.random.default_rng(0))
    _, energy = estimate_offload_cost(decision, requests, _path(cells))
    budget = ResourceLimits(energy_budget_j=1.5 * float(energy[0]))
    out = run_policy(np.random.default_rng(0), LargeOnly(256), _trace(), requests,
                     _path(cells), deadline_s=1.0, limits=budget)  # fmt: skip
    assert out.offloaded.tolist() == [True, True, False, False]
    assert out.correct.tolist() == [True, False, False, False]


def test_protocol_overhead_is_charged_per_message_and_one_session_per_device() -> None:
    from tinylarge.net.mean_rate import mean_link_rates_bps
    from tinylarge.net.overhead import ProtocolOverhead

    cells = _cells(10.0, 3)
    # devices 0 and 1 offload (twice each), device 2 never talks
    device, arrival = np.array([0, 1, 0, 1]), np.array([0.0, 0.01, 0.02, 0.03])
    requests = Requests(device, arrival, np.arange(4))
    ov = ProtocolOverhead(
        message_bytes=39, device_s_per_byte=1e-7, device_j_per_byte=1e-9,
        session_up_bytes=112, session_down_bytes=98, session_device_s=0.08,
        session_device_j=3e-3,
    )  # fmt: skip
    out = run_policy(np.random.default_rng(0), LargeOnly(256), _trace(), requests,
                     _path(cells, ov), deadline_s=1.0)  # fmt: skip
    direct = send_messages(
        np.random.default_rng(0), cells, NO_FADING, EDGE, device=device,
        arrival_s=arrival + 295 * 1e-7, bytes_up=295, bytes_down=47,
    )  # fmt: skip
    assert out.bytes_up.tolist() == [295] * 4  # 256 + 39 on air
    # seal 295 B before sending, open the 47-byte reply after it arrives
    np.testing.assert_allclose(out.latency_s, direct.latency_s + 295e-7 + 47e-7)
    up, down = mean_link_rates_bps(cells, NO_FADING)
    slot = cells.profile.slot_s
    tx_draw_w = 10 ** (cells.profile.device_tx_power_dbm / 10) / 1000 / 0.3 + 0.1  # PA, circuit
    hs_radio = tx_draw_w * slot * np.ceil(8 * 112 / (up[0] * slot)) + (
        NO_FADING.energy.rx_power_w * slot * np.ceil(8 * 98 / (down[0] * slot))
    )
    crypto = (295 + 47) * 1e-9
    first = np.array([3e-3, 3e-3, 0, 0])  # the session is charged to each device's first offload
    np.testing.assert_allclose(out.compute_energy_j, crypto + first)
    np.testing.assert_allclose(
        out.radio_energy_j, direct.energy_j + np.where(first > 0, hs_radio, 0)
    )
    sec = out.summary()["security"]
    assert sec["handshakes"] == 2
    assert sec["overhead_bytes_per_inference"] == 2 * 39
    assert sec["handshake_bytes_per_inference"] == pytest.approx(2 * 210 / 4)
    assert sec["crypto_energy_j_per_inference"] == pytest.approx(crypto + 6e-3 / 4)
    # no protocol at all and an all-zero one cost the same
    plain = run_policy(np.random.default_rng(0), LargeOnly(256), _trace(), requests,
                       _path(cells), deadline_s=1.0)  # fmt: skip
    zero = run_policy(np.random.default_rng(0), LargeOnly(256), _trace(), requests,
                      _path(cells, ProtocolOverhead()), deadline_s=1.0)  # fmt: skip
    np.testing.assert_array_equal(plain.latency_s, zero.latency_s)
    np.testing.assert_array_equal(plain.radio_energy_j, zero.radio_energy_j)
    assert "security" not in plain.summary() and zero.summary()["security"]["handshakes"] == 0


def test_handshakes_follow_the_session_lifetime_and_are_amortized_over_short_runs() -> None:
    from tinylarge.net.overhead import ProtocolOverhead

    cells = _cells(10.0, 2)
    # device 0 offloads at 0, 0.5 and 1.2 s, device 1 at 0.3 s
    requests = Requests(np.array([0, 1, 0, 0]), np.array([0.0, 0.3, 0.5, 1.2]), np.arange(4))
    ov = ProtocolOverhead(message_bytes=10, session_up_bytes=100, session_device_j=1e-3)

    def run(lifetime: float, duration: float):  # type: ignore[no-untyped-def]
        return run_policy(np.random.default_rng(0), LargeOnly(256), _trace(), requests,
                          _path(cells, ov), deadline_s=1.0, session_lifetime_s=lifetime,
                          duration_s=duration)  # fmt: skip

    # 1 s sessions over a 2 s run: device 0 sets up at 0 s and again at 1.2 s, device 1 once
    short = run(1.0, 2.0)
    assert short.security is not None and short.security.handshakes == 3
    setup = short.compute_energy_j - run(1.0, 2.0).compute_energy_j.min()
    assert (setup > 0).tolist() == [True, True, False, True]
    # 10 s sessions over a 2 s run: each device pays a fifth of one handshake
    long = run(10.0, 2.0)
    assert long.security is not None and long.security.handshakes == pytest.approx(0.4)
    assert long.security.crypto_energy_j == pytest.approx(
        short.security.crypto_energy_j - 3e-3 + 0.4e-3
    )
    with pytest.raises(ValueError, match="session_lifetime_s must be > 0"):
        run(0.0, 2.0)


def test_the_offload_estimate_is_the_mean_rate_link_model() -> None:
    """Compute + sealing + one slot + uplink airtime + a batch of one + reply airtime + opening;
    energy: compute, crypto and the radio of `MeanRateLink.send` / ``receive``."""
    from tinylarge.net.mean_rate import MeanRateLink
    from tinylarge.net.overhead import ProtocolOverhead
    from tinylarge.sim.engine import estimate_offload_cost

    cells = _cells(10.0, 2)
    cells = replace(cells, uplink_mean_snr_db=np.array([10.0, -30.0]))  # device 1: no uplink
    requests = Requests(np.array([0, 1]), np.array([0.0, 0.0]), np.arange(2))
    ov = ProtocolOverhead(message_bytes=40, device_s_per_byte=1e-7, device_j_per_byte=1e-9)
    decision = LargeOnly(256).decide(_trace(), requests.sample, np.random.default_rng(0))
    latency, energy = estimate_offload_cost(decision, requests, _path(cells, ov))
    link = MeanRateLink.of_cells(cells, NO_FADING)
    up_s, up_j = link.send(296, [0])
    down_s, down_j = link.receive(48, [0])
    crypto_s, crypto_j = (296 + 48) * 1e-7, (296 + 48) * 1e-9
    slot = cells.profile.slot_s
    assert latency[0] == pytest.approx(crypto_s + slot + up_s[0] + 0.0015 + down_s[0])
    assert energy[0] == pytest.approx(crypto_j + up_j[0] + down_j[0])
    assert np.isinf(latency[1]) and np.isinf(energy[1])  # out of range: never offloaded


def test_transport_framing_goes_on_air_and_one_connection_per_device_is_charged() -> None:
    from tinylarge.net.mean_rate import MeanRateLink
    from tinylarge.net.overhead import ProtocolOverhead, combine
    from tinylarge.secure.transport import MqttFraming, publish_bytes, tls_record_bytes

    cells = _cells(10.0, 3)
    # devices 0 and 1 offload twice each, device 2 never talks
    device, arrival = np.array([0, 1, 0, 1]), np.array([0.0, 0.01, 0.02, 5.0])
    requests = Requests(device, arrival, np.arange(4))
    security = ProtocolOverhead(message_bytes=39)
    transport = ProtocolOverhead(
        framing=MqttFraming(20, 22, qos=1, tls=True), connection_up_bytes=1200,
        connection_down_bytes=2400, connection_round_trips=3, connection_device_j=0.02,
    )  # fmt: skip
    both = combine(security, transport)
    out = run_policy(np.random.default_rng(0), LargeOnly(256), _trace(), requests,
                     _path(cells, both), deadline_s=1.0, session_lifetime_s=1.0)  # fmt: skip
    on_air = int(tls_record_bytes(publish_bytes(20, 295, qos=1)))
    reply_on_air = int(tls_record_bytes(publish_bytes(22, 47, qos=1)))
    assert out.bytes_up.tolist() == [295] * 4  # the message
    assert out.wire_bytes_up.tolist() == [on_air] * 4  # what the radio carried
    direct = send_messages(
        np.random.default_rng(0), cells, NO_FADING, EDGE, device=device,
        arrival_s=arrival, bytes_up=on_air, bytes_down=reply_on_air,
    )  # fmt: skip
    link = MeanRateLink.of_cells(cells, NO_FADING)
    _, up_j = link.send(1200, np.array([0, 1]))
    _, down_j = link.receive(2400, np.array([0, 1]))
    first = np.array([True, True, False, False])  # once per device, whatever the lifetime
    np.testing.assert_allclose(
        out.radio_energy_j, direct.energy_j + np.where(first, np.tile(up_j + down_j, 2), 0)
    )
    np.testing.assert_allclose(out.compute_energy_j, np.where(first, 0.02, 0.0))
    s = out.summary()
    assert s["transport_bytes_up_per_inference"] == on_air
    t = s["transport"]
    assert t["connections"] == 2 and t["round_trips_per_connection"] == 3
    assert t["connection_bytes_per_inference"] == 2 * 3600 / 4
    assert t["framing_bytes_per_inference"] == ((on_air - 295) * 4 + (reply_on_air - 47) * 4) / 4
    assert s["security"]["overhead_bytes_per_inference"] == 2 * 39
