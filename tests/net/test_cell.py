"""Devices attached to cells: taking a subset keeps each device's channel."""

from __future__ import annotations

import numpy as np

from tinylarge.net import attach_devices, radio_profile


def test_take_keeps_the_chosen_devices_and_their_channels_in_order() -> None:
    cells = attach_devices(np.random.default_rng(3), radio_profile("redcap"), 6, n_cells=3)
    part = cells.take([4, 1])
    assert part.n_devices == 2
    for name in ("path_loss_db", "los", "uplink_mean_snr_db", "downlink_mean_snr_db"):
        np.testing.assert_array_equal(getattr(part, name), getattr(cells, name)[[4, 1]])
    for name in ("x_m", "y_m", "cell", "d_2d_m", "h_ut_m", "indoor"):
        np.testing.assert_array_equal(
            getattr(part.topology, name), getattr(cells.topology, name)[[4, 1]]
        )
    np.testing.assert_array_equal(part.topology.cell_x_m, cells.topology.cell_x_m)
