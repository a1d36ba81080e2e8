"""FedGKT: bytes on air, heterogeneous widths, quantized uploads, learning, KD from round 2."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from tests.integrate.colearning.colearning_fixtures import links

from tinylarge.data.partition import Partition, partition_iid
from tinylarge.integrate.colearning.contract import FederatedData, LinkBudget
from tinylarge.integrate.colearning.fed_gkt import FedGKT
from tinylarge.integrate.inference.split_computing import module_macs, quantize_activation
from tinylarge.models.tiny_cnn import tiny_cnn

CLASSES = 4


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: the tests' tiny tensors gain nothing from more on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def easy_arrays(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """4 classes told apart by the mean of channel 0 (-3, -1, 1, 3); channel 1 is noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n).astype(np.int64)
    x = rng.normal(size=(n, 2, length)).astype(np.float32)
    x[:, 0, :] += (2.0 * y - 3.0)[:, None].astype(np.float32)
    return x, y


def federated(
    n_train: int, n_devices: int, *, length: int = 32, partition: Partition | None = None
) -> FederatedData:
    x, y = easy_arrays(n_train, length, seed=1)
    x_test, y_test = easy_arrays(200, length, seed=2)
    part = partition or partition_iid(n_train, n_devices, np.random.default_rng(0))
    return FederatedData(x, y, x_test, y_test, part, CLASSES)


def test_bytes_airtime_and_energy_of_one_round_by_hand() -> None:
    # device 0 holds 12 samples, device 1 holds 22 of which samples_per_client=16 are used
    part = Partition(np.arange(34, dtype=np.int64), np.array([0, 12, 34], dtype=np.int64))
    data = federated(34, 2, length=30, partition=part)
    fed = FedGKT(
        data, links(2), client_widths=(4, 6), clients_per_round=2, samples_per_client=16,
        feature_bits=3, server_width=8,
    )  # fmt: skip
    record = fed.round(1)
    # input length 30 -> 15 -> 7 after two pooled blocks; channels 2w: (8, 7) and (12, 7)
    feat0 = math.ceil(8 * 7 * 3 / 8) + 8  # 21 + 8-byte scale/offset header = 29
    feat1 = math.ceil(12 * 7 * 3 / 8) + 8  # ceil(31.5) + 8 = 40
    per_sample_extra = 2 * CLASSES + 1  # float16 logits + 1-byte label
    up0, up1 = 12 * (feat0 + per_sample_extra), 16 * (feat1 + per_sample_extra)
    assert (up0, up1) == (12 * 38, 16 * 49)
    assert record.bytes_up == up0 + up1 == 1240
    assert record.bytes_down == (12 + 16) * 2 * CLASSES == 224
    assert record.clients == 2
    # airtime in whole 1 ms slots: up 3648 bit / 1 Mbit/s -> 4 slots, 6272 bit -> 7 slots;
    # down 384 bit and 512 bit at 10 Mbit/s -> 1 slot each
    assert record.airtime_s == pytest.approx((4 + 7 + 1 + 1) * 1e-3)
    radio = 0.5 * (4 + 7) * 1e-3 + 0.2 * 2 * 1e-3
    macs = [module_macs(tiny_cnn((2, 30), CLASSES, width=w), (2, 30)) for w in (4, 6)]
    compute = sum(1e-9 * m * n * (3 + 1) for m, n in zip(macs, (12, 16), strict=True))
    assert record.extra["compute_energy_j"] == pytest.approx(compute)
    assert record.device_energy_j == pytest.approx(radio + compute)


def test_float32_features_without_quantization_header() -> None:
    data = federated(20, 2)
    fed = FedGKT(data, links(2), client_widths=(4,), clients_per_round=2, feature_bits=None,
                 server_width=8)  # fmt: skip
    record = fed.round(1)
    assert record.bytes_up == 20 * (4 * 8 * 8 + 2 * CLASSES + 1)  # (2w=8, 32/4=8) float32


def test_heterogeneous_widths_train_together_with_one_adapter_each() -> None:
    data = federated(60, 3)
    fed = FedGKT(data, links(3), client_widths=(4, 5, 6), clients_per_round=3, server_width=8)
    before = {k: v.detach().clone() for k, v in fed.server.adapters.state_dict().items()}
    fed.round(1)
    assert {u.width for u in fed.last_uploads.values()} == {4, 5, 6}
    for d, upload in fed.last_uploads.items():
        assert fed.width(d) == (4, 5, 6)[d % 3]
        assert upload.features.shape[1:] == (2 * upload.width, 8)
    for width in (4, 5, 6):  # every adapter was trained on its width's features
        key = f"{width}.0.weight"
        assert not torch.equal(fed.server.adapters.state_dict()[key], before[key]), key
    assert 0.0 <= fed.server_accuracy() <= 1.0


@pytest.mark.parametrize("feature_blocks", [1, 3])
def test_images_and_other_feature_cuts(feature_blocks: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, CLASSES, 40).astype(np.int64)
    part = partition_iid(30, 2, rng)
    data = FederatedData(x[:30], y[:30], x[30:], y[30:], part, CLASSES)
    fed = FedGKT(data, links(2), client_widths=(3, 4), clients_per_round=2,
                 feature_blocks=feature_blocks, server_width=8)  # fmt: skip
    record = fed.round(1)
    shape = {1: (4, 4, 4), 3: (8, 1, 1)}[feature_blocks]  # width 4: 8x8 -> 4x4 -> 2x2 -> 1x1
    assert fed.last_uploads[1].features.shape[1:] == shape
    elements = {4: math.prod(shape), 3: math.prod(shape) * 3 // 4}  # width 3 has 3/4 channels
    per_sample = {w: e * 8 // 8 + 8 + 2 * CLASSES + 1 for w, e in elements.items()}  # 8 bits
    assert record.bytes_up == 15 * per_sample[3] + 15 * per_sample[4]  # 15 samples each


def test_uploaded_features_are_the_quantized_client_features() -> None:
    data = federated(40, 2)
    fed = FedGKT(data, links(2), client_widths=(4, 5), clients_per_round=2, feature_bits=4,
                 server_width=8)  # fmt: skip
    fed.round(1)
    for d, upload in fed.last_uploads.items():
        model = fed.device_model(d).eval()
        with torch.no_grad():
            x = torch.from_numpy(data.x_train[upload.indices])
            h = model.forward_until(x, 2)
            logits = model(x)
        torch.testing.assert_close(upload.features, quantize_activation(h, 4), rtol=0, atol=0)
        assert not torch.allclose(upload.features, h)  # really quantized: 16 levels per sample
        assert all(len(torch.unique(row)) <= 16 for row in upload.features)
        assert upload.logits.dtype == torch.float16
        torch.testing.assert_close(upload.logits, logits.half(), rtol=0, atol=0)
        np.testing.assert_array_equal(upload.labels.numpy(), data.y_train[upload.indices])
        np.testing.assert_array_equal(upload.indices, np.sort(data.partition.device(d)))


def test_a_few_rounds_learn_the_easy_task_on_devices_and_server() -> None:
    data = federated(480, 4)
    fed = FedGKT(data, links(4), client_widths=(4, 6), clients_per_round=4, local_epochs=3,
                 batch_size=16, server_width=16, seed=0)  # fmt: skip
    records = fed.run(3)
    assert [r.extra["kd_clients"] for r in records] == [0.0, 4.0, 4.0]
    assert records[-1].accuracy > 0.8  # chance: 0.25 (seeds 0-5 give 0.94-1.0)
    assert records[-1].extra["server_accuracy"] > 0.8  # (seeds 0-5: 0.88-1.0)
    assert records[-1].bytes_up > 0 and records[-1].bytes_down > 0


def _weights(fed: FedGKT, device: int) -> list[torch.Tensor]:
    return [p.detach().clone() for p in fed.device_model(device).parameters()]


def test_kd_from_server_soft_targets_is_used_from_round_two_only() -> None:
    data = federated(40, 2)
    args = {"client_widths": (4,), "clients_per_round": 2, "server_width": 8}
    plain, distilled = FedGKT(data, links(2), beta=0.0, **args), FedGKT(data, links(2), **args)
    for fed in (plain, distilled):
        fed.round(1)
    for a, b in zip(_weights(plain, 0), _weights(distilled, 0), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # round 1: labels only, same weights
    for fed in (plain, distilled):
        fed.round(2)
    diff = [
        not torch.equal(a, b)
        for a, b in zip(_weights(plain, 0), _weights(distilled, 0), strict=True)
    ]
    assert any(diff)


def test_same_seed_same_rounds() -> None:
    data = federated(60, 6)
    a, b = (FedGKT(data, links(6), clients_per_round=2, server_width=8, seed=5) for _ in "ab")
    assert a.round(1) == b.round(1)
    assert sorted(a.last_uploads) == sorted(b.last_uploads)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"client_widths": ()}, "client_widths"),
        ({"client_widths": (4, 0)}, "client_widths"),
        ({"feature_blocks": 4}, "feature_blocks"),
        ({"feature_blocks": 0}, "feature_blocks"),
        ({"server_width": 0}, "server_width"),
        ({"clients_per_round": 0}, "clients_per_round"),
        ({"local_epochs": 0}, "local_epochs"),
        ({"samples_per_client": 1}, "samples_per_client"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"server_epochs": 0}, "server_epochs"),
        ({"temperature": -1.0}, "temperature"),
        ({"beta": -0.5}, "beta"),
        ({"feature_bits": 1}, "feature_bits"),
        ({"feature_bits": 17}, "feature_bits"),
        ({"seed": -1}, "seed"),
        ({"local_epochs": True}, "local_epochs"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        FedGKT(federated(20, 2), links(2), **kwargs)  # type: ignore[arg-type]


def test_mismatched_links_and_unreachable_devices_fail_early() -> None:
    data = federated(20, 2)
    with pytest.raises(ValueError, match="links has 3 devices"):
        FedGKT(data, links(3))
    dead = LinkBudget(np.zeros(2), np.full(2, 1e7), 1e-3, 0.5, 0.2, 1e-9)
    with pytest.raises(ValueError, match="reachable"):
        FedGKT(data, dead)
    with pytest.raises(ValueError, match="number"):
        FedGKT(data, links(2)).round(0)
