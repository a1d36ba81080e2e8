"""The edge's batch service time fitted to measured batches (simulator and running edge)."""

from __future__ import annotations

import numpy as np
import pytest

from tinylarge.net.edge_service import fit_batch_service


def test_fit_by_hand() -> None:
    sizes = np.array([1, 2, 4, 8])
    assert fit_batch_service(sizes, 0.001 + 0.0005 * sizes) == pytest.approx((0.001, 0.0005))
    # two measured batch sizes (the simulator's timing at 1 and max_batch): the line through them
    assert fit_batch_service([1, 64], [0.002, 0.0335]) == pytest.approx((0.0015, 0.0005))
    # one size: all of it per item
    assert fit_batch_service([4, 4], [0.002, 0.004]) == pytest.approx((0.0, 0.00075))
    # larger batches measured faster (noise): a constant time per batch, the mean
    assert fit_batch_service([1, 2, 3], [0.003, 0.002, 0.001]) == pytest.approx((0.002, 0.0))
    # a line that would start below 0: through the origin, sum(s t) / sum(s^2)
    setup, per_item = fit_batch_service([1, 2], [0.001, 0.004])
    assert setup == 0.0 and per_item == pytest.approx((0.001 + 0.008) / 5)


def test_fit_needs_batches() -> None:
    with pytest.raises(ValueError, match="same non-zero length"):
        fit_batch_service(np.zeros(0, np.int64), np.zeros(0))
    with pytest.raises(ValueError, match="sizes >= 1"):
        fit_batch_service([0, 1], [0.1, 0.2])
