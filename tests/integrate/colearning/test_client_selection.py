"""Client selection and the aggregator registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.integrate.colearning.colearning_fixtures import links

from tinylarge.errors import CannotFitError
from tinylarge.integrate.colearning.aggregators import get_aggregator, register_aggregator
from tinylarge.integrate.colearning.client_selection import select_clients
from tinylarge.integrate.colearning.contract import LinkBudget


def test_uniform_picks_distinct_reachable_devices() -> None:
    budget = links(6, unreachable=(0, 3))
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = select_clients("uniform", rng, budget, 3)
        assert ids.size == 3 and np.unique(ids).size == 3
        assert not set(ids.tolist()) & {0, 3}
    assert select_clients("uniform", rng, budget, 10).tolist() == [1, 2, 4, 5]


def test_best_channel_picks_the_fastest_uplinks() -> None:
    base = links(5)
    budget = LinkBudget(
        uplink_bps=np.array([1e6, 5e6, 0.0, 3e6, 2e6]),
        downlink_bps=base.downlink_bps,
        slot_s=base.slot_s,
        tx_draw_w=base.tx_draw_w,
        rx_power_w=base.rx_power_w,
        joules_per_mac=base.joules_per_mac,
    )
    assert select_clients("best_channel", np.random.default_rng(0), budget, 2).tolist() == [1, 3]


def test_selection_errors_name_the_problem() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown client selection 'best'"):
        select_clients("best", rng, links(), 2)
    with pytest.raises(CannotFitError, match="no device can reach"):  # not a config error
        select_clients("uniform", rng, links(2, unreachable=(0, 1)), 1)
    with pytest.raises(ValueError, match=">= 1"):
        select_clients("uniform", rng, links(), 0)


def test_aggregator_registry() -> None:
    mean = get_aggregator("mean")
    out = mean({"w": torch.tensor([[0.0], [3.0]])}, [2, 1])
    torch.testing.assert_close(out["w"], torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"unknown aggregator .krum2.*known:.*mean"):
        get_aggregator("krum2")
    with pytest.raises(ValueError, match="already registered"):
        register_aggregator("mean", mean)
