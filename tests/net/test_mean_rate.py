"""The mean-rate link model: seconds and joules to send and receive n bytes, by hand, and the
same model behind the simulator's offload estimate and session charges."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tinylarge.net import LinkSettings, RadioEnergyModel, attach_devices, radio_profile
from tinylarge.net.energy import tx_draw_w
from tinylarge.net.mean_rate import MeanRateLink, mean_link_rates_bps
from tinylarge.net.uplink import efficiency_fn

SLOT = 1e-3


def _link() -> MeanRateLink:
    # device 0: 1 Mbit/s up, 2 Mbit/s down; device 1: out of range; device 2: no downlink
    return MeanRateLink(
        np.array([1e6, 0.0, 1e6]), np.array([2e6, 0.0, 0.0]), slot_s=SLOT, tx_draw_w=0.8,
        rx_power_w=0.2,
    )  # fmt: skip


def test_send_and_receive_by_hand() -> None:
    link = _link()
    # 300 B = 2400 bits at 1 Mbit/s = 2.4 ms -> 3 whole slots; at 2 Mbit/s 1.2 ms -> 2 slots
    seconds, joules = link.send(300, [0])
    assert seconds.tolist() == [pytest.approx(3e-3)] and joules.tolist() == [pytest.approx(2.4e-3)]
    seconds, joules = link.receive(300, [0])
    assert seconds.tolist() == [pytest.approx(2e-3)] and joules.tolist() == [pytest.approx(4e-4)]
    # every device, no bytes: nothing on air, nothing spent, even without a link
    seconds, joules = link.send(0)
    assert seconds.tolist() == [0.0, 0.0, 0.0] and joules.tolist() == [0.0, 0.0, 0.0]
    # bytes over a rate of 0 never arrive
    seconds, joules = link.receive([10, 10, 10])
    assert np.isinf(seconds[1:]).all() and np.isinf(joules[1:]).all()
    assert link.reachable.tolist() == [True, False, False] and link.n_devices == 3


def test_sizes_broadcast_against_devices() -> None:
    link = _link()
    sizes = np.array([[125, 250, 500]])  # 1, 2, 4 slots at 1 Mbit/s
    seconds, joules = link.send(sizes, np.array([[0], [2]]))
    assert seconds.shape == (2, 3)
    np.testing.assert_allclose(seconds, [[1e-3, 2e-3, 4e-3]] * 2)
    np.testing.assert_allclose(joules, 0.8 * seconds)


def test_a_radio_that_draws_nothing_still_has_no_link() -> None:
    link = replace(_link(), rx_power_w=0.0)
    _, joules = link.receive(10, [1])
    assert np.isinf(joules).all()  # not NaN (0 W x inf s)


def test_of_cells_takes_the_energy_model_and_the_mean_rates() -> None:
    cells = attach_devices(np.random.default_rng(0), radio_profile("nb_iot"), 5)
    energy = RadioEnergyModel(pa_efficiency=0.25, circuit_power_w=0.05, rx_power_w=0.3)
    settings = LinkSettings(energy=energy)
    link = MeanRateLink.of_cells(cells, settings)
    profile = cells.profile
    se = efficiency_fn(profile, settings.spectral_efficiency)
    np.testing.assert_array_equal(
        link.uplink_bps, profile.uplink_bandwidth_hz * se(cells.uplink_mean_snr_db)
    )
    np.testing.assert_array_equal(link.downlink_bps, mean_link_rates_bps(cells, settings)[1])
    assert link.slot_s == profile.slot_s and link.rx_power_w == 0.3
    # TX power / PA efficiency + circuit: 23 dBm = 0.1995 W / 0.25 + 0.05 W
    assert link.tx_draw_w == pytest.approx(10**2.3 / 1000 / 0.25 + 0.05)
    assert link.tx_draw_w == float(tx_draw_w(23.0, pa_efficiency=0.25, circuit_power_w=0.05))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"uplink_bps": np.array([-1.0, 0.0, 0.0])}, "link rates must be finite and >= 0"),
        ({"downlink_bps": np.zeros(2)}, "1-D arrays of equal length"),
        ({"slot_s": 0.0}, "slot_s must be"),
        ({"tx_draw_w": float("nan")}, "tx_draw_w must be"),
        ({"rx_power_w": -0.1}, "rx_power_w must be"),
    ],
)
def test_bad_links_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(_link(), **change)  # type: ignore[arg-type]
