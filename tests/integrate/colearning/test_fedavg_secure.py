"""FedAvg / FedProx with an injected secure sum: same model as plain FedAvg within the
encoding's step, the protocol's bytes charged, and a failed round leaves the model as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.integrate.colearning.colearning_fixtures import CLASSES, SHAPE, easy_data, links

from tinylarge.integrate.colearning.contract import FloatArray, SecureSumResult
from tinylarge.integrate.colearning.fedavg import FedAvg, FedProx
from tinylarge.integrate.colearning.update_compression import state_bytes
from tinylarge.models.registry import build_model
from tinylarge.secure.secagg import SecAggAborted, SecAggPlus


def tiny() -> torch.nn.Module:
    return build_model("tiny_cnn", SHAPE, CLASSES, {"width": 3}, seed=0)


class ExactSum:
    """A reference secure sum: the exact float64 sum, every client included, fixed costs."""

    name = "exact"

    def secure_sum(self, vectors: FloatArray, rng: np.random.Generator) -> SecureSumResult:
        n = vectors.shape[0]
        ones = np.ones(n, dtype=np.int64)
        return SecureSumResult(
            total=vectors.sum(axis=0),
            included=np.ones(n, dtype=bool),
            bytes_up=1000 * ones,
            bytes_down=500 * ones,
            messages_up=4 * ones,
            messages_down=4 * ones,
            device_energy_j=np.full(n, 0.01),
            error_bound=0.0,
        )


def run(secure_sum: object, rounds: int = 2, **options: object) -> FedAvg:
    scheme = FedAvg(
        tiny(),
        easy_data(n_devices=6),
        links(6),
        clients_per_round=6,
        samples_per_client=40,
        secure_sum=secure_sum,  # type: ignore[arg-type]
        seed=3,
        **options,  # type: ignore[arg-type]
    )
    scheme.run(rounds)
    return scheme


def test_exact_secure_sum_gives_plain_fedavg() -> None:
    plain, secure = run(None), run(ExactSum())
    for key, value in plain.model.state_dict().items():
        assert torch.allclose(value.double(), secure.model.state_dict()[key].double(), atol=1e-6)


def test_protocol_bytes_and_energy_replace_the_plain_upload() -> None:
    data, budget = easy_data(n_devices=6), links(6)
    scheme = FedAvg(tiny(), data, budget, clients_per_round=6, samples_per_client=40, seed=3)
    down = state_bytes(scheme.model.state_dict())
    plain = scheme.round(1)
    scheme = FedAvg(
        tiny(), data, budget, clients_per_round=6, samples_per_client=40, seed=3,
        secure_sum=ExactSum(),
    )  # fmt: skip
    record = scheme.round(1)
    assert record.bytes_up == 6 * 1000 and record.bytes_down == 6 * (down + 500)
    # by hand (1 Mbit/s up, 1 ms slots, 0.5 W TX): 1,000 B take 8 slots instead of the plain
    # upload's 11 (1,312 B); the model (+500 B) still fits 2 downlink slots; + 0.01 J compute
    assert record.device_energy_j == pytest.approx(
        plain.device_energy_j + 6 * (0.01 + (8 - 11) * 1e-3 * 0.5)
    )
    assert record.extra["secure_aggregation_bytes_per_client"] == 1500
    assert record.extra["secure_aggregation_plain_bytes_per_client"] == plain.bytes_up / 6
    assert record.extra["secure_aggregation_dropped"] == 0


@pytest.mark.parametrize("dropout", [0.0, 0.1, 0.3])
def test_secagg_plus_within_the_step_of_plain_fedavg(dropout: float) -> None:
    protocol = SecAggPlus(num_shares=5, threshold_fraction=0.4, dropout_fraction=dropout)
    scheme = FedProx(
        tiny(), easy_data(n_devices=10), links(10), clients_per_round=10,
        samples_per_client=40, seed=1, secure_sum=protocol,
    )  # fmt: skip
    record = scheme.round(1)
    dropped = round(dropout * 10)
    assert record.extra["secure_aggregation_dropped"] == dropped
    # mean = S / R with |error of S|, |error of R| <= m step / 2 over m included clients and
    # R = m (every client holds 40 samples), |update| <= 8 (the clip range):
    # |error| <= (m step / 2)(1 + 8) / (R - m step / 2)
    m, step = 10 - dropped, protocol.encoding.step
    bound = (m * step / 2) * (1 + 8.0) / (m - m * step / 2)
    assert 0 < record.extra["secure_aggregation_max_abs_error"] <= bound + 1e-6  # + float32


def test_an_aborted_round_leaves_the_model_unchanged() -> None:
    protocol = SecAggPlus(num_shares=5, threshold_fraction=0.8, dropout_fraction=0.5)
    scheme = FedAvg(
        tiny(), easy_data(n_devices=6), links(6), clients_per_round=6, samples_per_client=40,
        seed=3, secure_sum=protocol, server_momentum=0.5,
    )  # fmt: skip
    before = {k: v.clone() for k, v in scheme.model.state_dict().items()}
    with pytest.raises(SecAggAborted, match="no sum was released and the model is unchanged"):
        scheme.round(1)
    after = scheme.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert scheme.velocity == {}


def test_secure_sum_needs_the_mean_of_uncompressed_updates() -> None:
    with pytest.raises(ValueError, match="aggregator = 'mean' and compression = 'none'"):
        run(ExactSum(), compression="int8")
    with pytest.raises(ValueError, match="aggregator = 'mean' and compression = 'none'"):
        run(ExactSum(), aggregator="median")
