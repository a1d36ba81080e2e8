"""Robust aggregators on hand examples, and their registration for co-learning."""

from __future__ import annotations

import pytest
import torch

from tinylarge.integrate.colearning.aggregators import get_aggregator
from tinylarge.secure.robust import (
    krum,
    krum_scores,
    median,
    multi_krum,
    norm_clipping,
    trimmed_mean,
)


def stacked(*rows: list[float]) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(rows), "steps": torch.tensor([4] * len(rows))}


HONEST = ([1.0, 2.0], [1.2, 1.8], [0.8, 2.2], [1.1, 2.1], [0.9, 1.9])
ATTACK = [-50.0, 80.0]


def test_median_of_known_vectors() -> None:
    out = median(stacked([1.0, 10.0], [3.0, -2.0], [2.0, 7.0]), [1, 1, 1])
    torch.testing.assert_close(out["w"], torch.tensor([2.0, 7.0]))
    assert int(out["steps"]) == 4  # step counters: plain mean
    even = median(stacked([1.0], [2.0], [3.0], [10.0]), [1, 1, 1, 1])
    torch.testing.assert_close(even["w"], torch.tensor([2.5]))


def test_trimmed_mean_drops_the_extremes_per_coordinate() -> None:
    out = trimmed_mean(stacked([0.0, 5.0], [1.0, 1.0], [2.0, 2.0], [100.0, 3.0], [3.0, -9.0]),
                       [1] * 5, trim=1)  # fmt: skip
    torch.testing.assert_close(out["w"], torch.tensor([2.0, 2.0]))
    with pytest.raises(ValueError, match="n > 2f"):
        trimmed_mean(stacked([0.0], [1.0]), [1, 1], trim=1)


def test_krum_picks_an_honest_client_and_multi_krum_excludes_the_attacker() -> None:
    rows = [*HONEST, ATTACK]
    out = krum(stacked(*rows), [1] * 6, byzantine=1)
    assert any(torch.equal(out["w"], torch.tensor(r)) for r in HONEST)
    scores = krum_scores(torch.tensor(rows, dtype=torch.float64), 1)
    assert int(scores.argmax()) == 5  # the attacker scores worst
    avg = multi_krum(stacked(*rows), [1] * 6, byzantine=1, keep=5)
    torch.testing.assert_close(avg["w"], torch.tensor(HONEST).mean(dim=0))
    with pytest.raises(ValueError, match=r"n >= 2f \+ 3"):
        krum(stacked(*HONEST[:4]), [1] * 4, byzantine=1)


def test_norm_clipping_bounds_the_attackers_pull() -> None:
    rows = [*HONEST, ATTACK]
    clipped = norm_clipping(stacked(*rows), [1] * 6)["w"]
    plain = torch.tensor(rows).mean(dim=0)
    honest = torch.tensor(HONEST).mean(dim=0)
    assert (clipped - honest).norm() < 0.2 < (plain - honest).norm()


def test_zero_weight_drops_a_client_and_names_are_registered() -> None:
    out = median(stacked([1.0], [2.0], [100.0]), [1, 1, 0])
    torch.testing.assert_close(out["w"], torch.tensor([1.5]))
    for name in ("median", "trimmed_mean", "krum", "multi_krum", "norm_clipping", "mean"):
        assert callable(get_aggregator(name))


def test_fedavg_runs_with_a_robust_aggregator() -> None:
    from tests.integrate.colearning.colearning_fixtures import CLASSES, SHAPE, easy_data, links

    from tinylarge.integrate.colearning.fedavg import FedAvg
    from tinylarge.models.registry import build_model

    model = build_model("tiny_cnn", SHAPE, CLASSES, {"width": 3}, seed=0)
    scheme = FedAvg(model, easy_data(), links(), clients_per_round=4, aggregator="trimmed_mean")
    record = scheme.round(1)
    assert record.clients == 4 and 0.0 <= record.accuracy <= 1.0
