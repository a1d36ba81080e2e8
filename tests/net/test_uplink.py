"""Messages over the cell: hand-computed latency and energy, sharing, backlog, outage."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from tinylarge.net import (
    EdgeServiceModel,
    LinkSettings,
    RadioEnergyModel,
    attach_devices,
    poisson_arrivals,
    radio_profile,
    send_messages,
    spectral_efficiency,
)
from tinylarge.net.cell import CellDevices

C_M_PER_S = 299_792_458.0


def _cells(snr_db: list[float], distance_m: float = 150.0) -> CellDevices:
    """Devices of the redcap profile in one cell with the given mean uplink/downlink SNRs."""
    cells = attach_devices(np.random.default_rng(0), radio_profile("redcap"), len(snr_db))
    topo = replace(cells.topology, d_2d_m=np.full(len(snr_db), distance_m))
    snr = np.asarray(snr_db, dtype=np.float64)
    return replace(cells, topology=topo, uplink_mean_snr_db=snr, downlink_mean_snr_db=snr + 10)


NO_FADING = LinkSettings(fading="none", bler_target=0.0, max_transmissions=1)
EDGE = EdgeServiceModel(setup_s=0.001, per_item_s=0.0005, max_batch=8, max_wait_s=None)


def _se(snr_db: float) -> float:
    p = radio_profile("redcap")
    return float(
        spectral_efficiency(
            np.array([snr_db]),
            method="cqi",
            cqi_table=p.cqi_table,
            max_spectral_efficiency=p.max_spectral_efficiency,
            snr_min_db=p.min_snr_db,
        )[0]
    )


def test_one_message_latency_and_energy_by_hand() -> None:
    p = radio_profile("redcap")
    cells = _cells([5.0])
    arrival = 0.0012  # 0.2 ms before the next 0.5 ms slot boundary (1.5 ms)
    out = send_messages(
        np.random.default_rng(1), cells, NO_FADING, EDGE,
        device=[0], arrival_s=[arrival], bytes_up=1000, bytes_down=100,
    )  # fmt: skip
    slot = p.slot_s
    up_rate = p.uplink_bandwidth_hz * _se(5.0)
    up_air = math.ceil(8000 / up_rate / slot) * slot
    dl_air = math.ceil(800 / (p.downlink_bandwidth_hz * _se(15.0)) / slot) * slot
    prop = 150.0 / C_M_PER_S
    edge_done = 0.0015 + up_air + prop + EDGE.setup_s + EDGE.per_item_s  # batch of 1: last arrival
    expected = edge_done + prop + dl_air - arrival
    assert out.delivered[0] and not out.outage[0]
    assert out.rate_bps[0] == pytest.approx(up_rate)
    assert out.airtime_s[0] == pytest.approx(up_air)
    assert out.latency_s[0] == pytest.approx(expected, rel=1e-9, abs=2e-9)  # 1 ns queue ticks
    model = RadioEnergyModel()
    tx_w = 10 ** (p.device_tx_power_dbm / 10) / 1000 / model.pa_efficiency + model.circuit_power_w
    idle_s = expected - up_air - dl_air
    energy = tx_w * up_air + model.rx_power_w * dl_air + model.idle_power_w * idle_s
    assert out.energy_j[0] == pytest.approx(energy, rel=1e-6)
    assert (out.bytes_up[0], out.bytes_down[0]) == (1000, 100)


def test_same_slot_messages_share_the_band_and_later_slots_wait_for_the_backlog() -> None:
    cells = _cells([5.0, 5.0, 5.0])
    big = 200_000  # bytes: several slots of airtime each
    out = send_messages(
        np.random.default_rng(2), cells, NO_FADING, EDGE,
        device=[0, 1, 2], arrival_s=[0.0, 0.0, 0.0006], bytes_up=big, bytes_down=10,
    )  # fmt: skip
    np.testing.assert_allclose(out.share, [0.5, 0.5, 1.0])
    # With half the band a device concentrates its power: +3 dB SNR on its share.
    np.testing.assert_allclose(out.snr_db[:2], 5.0 + 10 * np.log10(2))
    assert out.uplink_queue_wait_s[0] == out.uplink_queue_wait_s[1] == 0.0
    # The third message (next slot) waits until the first slot's group has finished.
    # It arrives at 0.6 ms and may start at the 1.0 ms slot boundary.
    assert out.uplink_queue_wait_s[2] == pytest.approx(max(out.airtime_s[:2]) - 0.001, abs=2e-9)


def test_outage_messages_are_counted_not_sent() -> None:
    cells = _cells([-30.0, 10.0])
    out = send_messages(
        np.random.default_rng(3), cells, NO_FADING, EDGE,
        device=[0, 1], arrival_s=[0.0, 0.0], bytes_up=100, bytes_down=10,
    )  # fmt: skip
    assert out.outage.tolist() == [True, False]
    assert out.delivered.tolist() == [False, True]
    assert math.isnan(out.latency_s[0]) and out.bytes_up[0] == 0 and out.airtime_s[0] == 0.0
    summary = out.summary()
    assert summary["outage_fraction"] == 0.5 and summary["delivered_fraction"] == 0.5


def test_harq_retransmissions_add_airtime_and_round_trips() -> None:
    cells = _cells([10.0] * 2000)
    settings = LinkSettings(fading="none", bler_target=0.5, max_transmissions=4)
    out = send_messages(
        np.random.default_rng(4), cells, settings, EDGE,
        device=np.arange(2000), arrival_s=np.arange(2000) * 0.01, bytes_up=100, bytes_down=10,
    )  # fmt: skip
    # P(delivered) = 1 - 0.5^4; mean transmissions of a truncated geometric(0.5) capped at 4.
    assert out.delivered.mean() == pytest.approx(1 - 0.5**4, abs=0.02)
    assert out.transmissions.mean() == pytest.approx(1 + 0.5 + 0.25 + 0.125, abs=0.05)


def test_bad_inputs_are_refused() -> None:
    cells = _cells([5.0])
    with pytest.raises(ValueError, match="same length"):
        send_messages(
            np.random.default_rng(0), cells, NO_FADING, EDGE,
            device=[0, 0], arrival_s=[0.0], bytes_up=1, bytes_down=1,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"device indices must be in \[0, 1\)"):
        send_messages(
            np.random.default_rng(0), cells, NO_FADING, EDGE,
            device=[3], arrival_s=[0.0], bytes_up=1, bytes_down=1,
        )  # fmt: skip
    with pytest.raises(ValueError, match="rate_hz > 0"):
        poisson_arrivals(np.random.default_rng(0), 10, 0.0, 1.0)


def test_poisson_arrivals_count_and_order() -> None:
    device, t = poisson_arrivals(np.random.default_rng(5), 1000, 2.0, 50.0)
    assert abs(t.size - 100_000) < 5 * math.sqrt(100_000)
    assert np.all(np.diff(t) >= 0) and t.max() <= 50.0
    assert np.bincount(device, minlength=1000).min() > 50


def test_sub_thz_path_loss_extrapolates_with_the_free_space_term() -> None:
    sub_thz = radio_profile("sub_thz")
    at_100 = sub_thz.model_copy(update={"carrier_ghz": 100.0})
    a = attach_devices(np.random.default_rng(6), sub_thz, 500)
    b = attach_devices(np.random.default_rng(6), at_100, 500)
    np.testing.assert_allclose(a.path_loss_db - b.path_loss_db, 20 * np.log10(1.4))


def test_backhaul_to_a_cloud_server_adds_its_delay_both_ways() -> None:
    cells = _cells([8.0, 12.0])
    kwargs = {"device": [0, 1], "arrival_s": [0.0, 0.003], "bytes_up": 300, "bytes_down": 30}
    edge = send_messages(np.random.default_rng(7), cells, NO_FADING, EDGE, **kwargs)
    cloud_settings = replace(NO_FADING, backhaul_s=0.01)
    cloud = send_messages(np.random.default_rng(7), cells, cloud_settings, EDGE, **kwargs)
    np.testing.assert_allclose(cloud.latency_s - edge.latency_s, 0.02, atol=2e-9)
