"""Attacks on hand examples, DP-FedAvg clipping/noise, and the RDP accountant's reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.integrate.colearning.colearning_fixtures import CLASSES, SHAPE, easy_data, links

from tinylarge.integrate.colearning.fedavg import FedAvg, clip_updates
from tinylarge.models.registry import build_model
from tinylarge.secure.attacks import Attack, alie_z
from tinylarge.secure.privacy import dp_epsilon, rdp_epsilon

DELTA = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "n": torch.tensor([1, 1, 1])}
BAD = torch.tensor([False, False, True])
RNG = np.random.default_rng(0)


def test_sign_flip_and_scaling_touch_only_malicious_rows() -> None:
    out = Attack("sign_flip", 2.0).poison_updates(DELTA, BAD, RNG)
    torch.testing.assert_close(out["w"], torch.tensor([[1.0, 2.0], [3.0, 4.0], [-10.0, -12.0]]))
    assert torch.equal(out["n"], DELTA["n"])
    out = Attack("scaling", 10.0).poison_updates(DELTA, BAD, RNG)
    torch.testing.assert_close(out["w"][2], torch.tensor([50.0, 60.0]))


def test_alie_sends_mean_minus_z_std_of_the_honest_updates() -> None:
    z = alie_z(3, 1)  # s = 3 // 2 + 1 - 1 = 1: z = Phi^-1(2/3)
    assert z == pytest.approx(0.430727, abs=1e-6)
    out = Attack("alie").poison_updates(DELTA, BAD, RNG)
    torch.testing.assert_close(out["w"][2], torch.tensor([2.0 - z, 3.0 - z]))  # std 1 per coord


def test_label_flip_and_gaussian() -> None:
    y = torch.tensor([[0, 3, 1]])
    assert Attack("label_flip").poison_labels(y, 4).tolist() == [[3, 0, 2]]
    out = Attack("gaussian", 0.5).poison_updates(DELTA, BAD, np.random.default_rng(1))
    assert torch.equal(out["w"][:2], DELTA["w"][:2]) and not torch.equal(out["w"][2], DELTA["w"][2])
    with pytest.raises(ValueError, match="unknown attack 'flip'"):
        Attack("flip")


def test_clipping_bounds_every_update_norm() -> None:
    out = clip_updates(DELTA, 5.0)
    norms = out["w"].norm(dim=1)
    assert norms.max() <= 5.0 + 1e-6
    torch.testing.assert_close(out["w"][0], DELTA["w"][0])  # norm 2.24 < 5: unchanged


def test_sign_flip_attackers_hurt_the_mean_more_than_the_median() -> None:
    def final(aggregator: str, attacked: bool) -> float:
        model = build_model("tiny_cnn", SHAPE, CLASSES, {"width": 3}, seed=0)
        scheme = FedAvg(model, easy_data(n_train=800, n_devices=10), links(10),
                        clients_per_round=10, samples_per_client=80, lr=0.1, local_epochs=2,
                        aggregator=aggregator, attack=Attack("sign_flip", 3.0) if attacked
                        else None, malicious=[0, 1, 2] if attacked else None, seed=0)  # fmt: skip
        return scheme.run(5)[-1].accuracy

    assert final("mean", True) < final("median", True) - 0.2
    assert final("median", True) > final("median", False) - 0.15


def test_rdp_accountant_reproduces_the_opacus_reference() -> None:
    # Opacus's RDP accountant:
    # (q 1e-5, sigma 1, 10 steps) + (q 1e-4, sigma 3, 4 steps), orders 2..32
    eps, order = rdp_epsilon([(1e-5, 1.0, 10), (1e-4, 3.0, 4)], 1e-5, orders=list(range(2, 33)))
    assert eps == pytest.approx(0.336, abs=5e-4) and order == 23
    more_noise, _ = dp_epsilon(2.0, 0.1, 100, 1e-5)
    less_noise, _ = dp_epsilon(1.0, 0.1, 100, 1e-5)
    assert more_noise < less_noise
    with pytest.raises(ValueError, match="noise_multiplier > 0"):
        dp_epsilon(0.0, 0.1, 10, 1e-5)


def test_orders_the_accountant_leaves_out_do_not_spam_the_terminal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    # q 0.2, sigma 1: the accountant's series fails to converge for orders 1.1-1.7 (the main
    # job's security stage), and it logs a warning per order through absl
    with caplog.at_level(logging.WARNING):
        eps, order = dp_epsilon(1.0, 0.2, 30, 1e-5)
    assert not [r for r in caplog.records if r.name == "absl"]
    assert order >= 2 and 0 < eps < 20
    assert logging.getLogger("absl").level == logging.NOTSET  # restored
