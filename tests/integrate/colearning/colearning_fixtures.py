"""Small shared inputs for co-learning tests: an easy synthetic task over a few devices."""

from __future__ import annotations

import numpy as np

from tinylarge.data.partition import partition_iid
from tinylarge.integrate.colearning.contract import FederatedData, LinkBudget

SHAPE = (2, 32)
CLASSES = 4


def easy_data(
    n_train: int = 400, n_test: int = 200, n_devices: int = 4, seed: int = 0
) -> FederatedData:
    """Classes separable by the mean of channel 0 (plus noise)."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, CLASSES, n).astype(np.int64)
        x = rng.normal(0.0, 0.5, (n, *SHAPE)).astype(np.float32)
        x[:, 0, :] += (y[:, None] - 1.5).astype(np.float32)
        return x, y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return FederatedData(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        partition=partition_iid(n_train, n_devices, rng),
        num_classes=CLASSES,
    )


def links(n_devices: int = 4, *, unreachable: tuple[int, ...] = ()) -> LinkBudget:
    up = np.full(n_devices, 1e6)
    down = np.full(n_devices, 1e7)
    up[list(unreachable)] = 0.0
    return LinkBudget(
        uplink_bps=up,
        downlink_bps=down,
        slot_s=1e-3,
        tx_draw_w=0.5,
        rx_power_w=0.2,
        joules_per_mac=1e-9,
    )
