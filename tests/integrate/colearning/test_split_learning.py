"""Split learning and SplitFed: exact split gradients, quantized messages, byte accounting by
hand, the averaging identity, learning on an easy task, argument checks."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from tests.integrate.colearning.colearning_fixtures import links

from tinylarge.data.partition import Partition, partition_iid
from tinylarge.integrate.colearning.contract import FederatedData, LinkBudget
from tinylarge.integrate.colearning.split_learning import SplitFed, SplitLearning
from tinylarge.integrate.colearning.split_training_step import (
    cut_model,
    split_backward,
    split_train_step,
    transfer_bytes,
)
from tinylarge.integrate.inference.split_computing import quantize_activation
from tinylarge.models.blocks import BlockModel
from tinylarge.models.registry import build_model

SHAPE = (2, 32)
CLASSES = 4
Scheme = type[SplitLearning] | type[SplitFed]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny shapes gain nothing from threads, and on a shared 2-core machine two intra-op
    threads can spin for tens of seconds while the other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model(num_classes: int = CLASSES) -> BlockModel:
    net = build_model("tiny_cnn", SHAPE, num_classes, {"width": 3}, seed=0)
    assert isinstance(net, BlockModel)
    return net


def batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=gen), torch.randint(0, CLASSES, (n,), generator=gen)


def data_by_sizes(x: torch.Tensor, y: torch.Tensor, sizes: list[int]) -> FederatedData:
    """Device d holds the next ``sizes[d]`` samples of ``x``, in order; test set = ``x``."""
    partition = Partition(
        indices=np.arange(sum(sizes), dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
    )
    xs, ys = x.numpy().astype(np.float32), y.numpy().astype(np.int64)
    return FederatedData(xs, ys, xs, ys, partition, CLASSES)


def grads(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("cut", [1, 2])
def test_float_split_gradients_equal_the_unsplit_model(cut: int) -> None:
    x, y = batch(6, seed=1)
    whole = model()
    torch.nn.functional.cross_entropy(whole.train()(x), y).backward()
    split = model()
    device_part, server_part = cut_model(split, cut)
    step = split_backward(
        device_part, server_part, x, y, num_classes=CLASSES, activation_bits=None,
        gradient_bits=None,
    )  # fmt: skip
    expected, got = grads(whole), grads(split)
    assert got.keys() == expected.keys() and len(got) == len(list(whole.parameters()))
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], msg=key)
    assert step.activation_bytes == 4 * step.activation[0].numel() * 6  # float32 up
    # and a train step (on a fresh copy: one forward pass) is one SGD step of the unsplit model
    torch.optim.SGD(whole.parameters(), lr=0.1).step()
    stepped = model()
    split_train_step(
        *cut_model(stepped, cut), x, y, lr=0.1, num_classes=CLASSES, activation_bits=None,
        gradient_bits=None,
    )  # fmt: skip
    for key, value in whole.state_dict().items():  # weights and batch-norm statistics
        torch.testing.assert_close(stepped.state_dict()[key], value, msg=key)


def test_quantized_messages_are_exactly_the_quantizer_and_bytes_match_by_hand() -> None:
    x, y = batch(5, seed=2)
    device_part, server_part = cut_model(model(), 2)
    device_ref, server_ref = copy.deepcopy(device_part), copy.deepcopy(server_part)
    step = split_backward(
        device_part, server_part, x, y, num_classes=CLASSES, activation_bits=8, gradient_bits=6
    )
    h = device_ref.train()(x)
    sent_up = quantize_activation(h.detach(), 8)
    assert torch.equal(step.activation, sent_up)
    assert not torch.equal(sent_up, h.detach())  # the quantizer did change the values
    received = sent_up.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(server_ref.train()(received), y)
    (server_grad,) = torch.autograd.grad(loss, received)
    sent_down = quantize_activation(server_grad, 6)
    assert torch.equal(step.gradient, sent_down)
    # straight-through: the device backpropagates the received (quantized) gradient
    device_grads = torch.autograd.grad(h, list(device_ref.parameters()), sent_down)
    for p, expected in zip(device_part.parameters(), device_grads, strict=True):
        assert p.grad is not None
        torch.testing.assert_close(p.grad, expected)
    # cut 2 of tiny_cnn width 3 on (2, 32): activation (6, 8) = 48 values per sample
    assert step.activation.shape == (5, 6, 8)
    assert step.activation_bytes == 5 * (48 * 8 // 8 + 8)  # 8-bit payload + 8 B header
    assert step.gradient_bytes == 5 * (48 * 6 // 8 + 8)  # 6-bit payload + header
    assert step.label_bytes == 5  # 4 classes: 1 byte per label
    assert (step.bytes_up, step.bytes_down) == (285, 220)


@pytest.mark.parametrize("scheme", [SplitLearning, SplitFed])
def test_round_bytes_airtime_and_energy_by_hand(scheme: Scheme) -> None:
    x, y = batch(16, seed=3)
    data = data_by_sizes(x, y, [10, 6])
    sl = scheme(
        model(), data, links(2), cut=1, clients_per_round=2, local_epochs=2,
        samples_per_client=8, batch_size=3, activation_bits=8, gradient_bits=4, seed=0,
    )  # fmt: skip
    record = sl.round(1)
    # cut 1: activation (3, 16) = 48 values: up 48 + 8 header + 1 label = 57 B, down 24 + 8 = 32
    # device part = conv 3x2x7 + batch norm (weight, bias, mean, var: 4 x 3) = 54 floats;
    # batch norm's integer step counter is not sent
    assert transfer_bytes(sl.device_part) == 4 * 54
    passes = [8 * 2, 6 * 2]  # device 0 uses 8 of its 10 samples, device 1 all 6; 2 epochs
    up = [n * 57 + 216 for n in passes]  # [1128, 900]
    down = [n * 32 + 216 for n in passes]  # [728, 600]
    assert (record.bytes_up, record.bytes_down, record.clients) == (sum(up), sum(down), 2)
    assert record.extra["model_bytes"] == 4 * 216
    assert record.extra["smashed_bytes"] == sum(up) + sum(down) - 4 * 216
    # 1 ms slots carry 125 B up, 1250 B down: 1128 B -> 10 slots, 900 B -> 8, downs 1 each
    up_s, down_s = 0.010 + 0.008, 0.001 + 0.001
    assert record.airtime_s == pytest.approx(up_s + down_s)
    # conv of block 0: 3 x 32 outputs x 2 x 7 = 1,344 MACs forward; training = 3x forward
    compute_j = 3 * 1344 * sum(passes) * 1e-9
    assert record.device_energy_j == pytest.approx(0.5 * up_s + 0.2 * down_s + compute_j)
    assert 0.0 <= record.accuracy <= 1.0 and np.isfinite(record.extra["train_loss"])


@pytest.mark.parametrize("bits", [None, 8])
def test_identical_clients_average_to_one_client(bits: int | None) -> None:
    x, y = batch(16, seed=4)
    args: dict[str, Any] = {
        "local_epochs": 1, "samples_per_client": 16, "batch_size": 16, "lr": 0.2,
        "activation_bits": bits, "gradient_bits": bits, "seed": 0,
    }  # fmt: skip
    twins = data_by_sizes(torch.cat([x, x]), torch.cat([y, y]), [16, 16])
    single = data_by_sizes(x, y, [16])
    one = SplitFed(model(), single, links(1), clients_per_round=1, **args)
    one.round(1)
    two = SplitFed(model(), twins, links(2), clients_per_round=2, **args)
    two.round(1)
    for key, value in one.model.state_dict().items():
        torch.testing.assert_close(two.model.state_dict()[key], value, msg=key)
    # sequential server training (SFLV2) sees the first client's update: no identity
    v2 = SplitFed(model(), twins, links(2), clients_per_round=2, variant="v2", **args)
    v2.round(1)
    w_one, w_v2 = one.device_part[0][0].weight, v2.device_part[0][0].weight
    assert not torch.allclose(w_v2, w_one, rtol=0, atol=1e-6)
    if bits is None:  # one full-batch client = one SGD step of the unsplit model
        whole = model()
        torch.nn.functional.cross_entropy(whole.train()(x), y).backward()
        torch.optim.SGD(whole.parameters(), lr=0.2).step()
        for key, value in whole.state_dict().items():
            torch.testing.assert_close(one.model.state_dict()[key], value, msg=key)
        # vanilla SL hands the device part on: two identical clients = two SGD steps
        sl = SplitLearning(model(), twins, links(2), clients_per_round=2, **args)
        sl.round(1)
        whole.zero_grad()
        torch.nn.functional.cross_entropy(whole.train()(x), y).backward()
        torch.optim.SGD(whole.parameters(), lr=0.2).step()
        for key, value in whole.state_dict().items():
            torch.testing.assert_close(sl.model.state_dict()[key], value, msg=key)


def test_splitfed_weights_clients_by_their_sample_counts() -> None:
    x, y = batch(16, seed=8)
    args: dict[str, Any] = {
        "local_epochs": 1, "samples_per_client": 16, "batch_size": 16, "lr": 0.2,
        "activation_bits": 8, "gradient_bits": 8, "clients_per_round": 2, "seed": 0,
    }  # fmt: skip
    both = SplitFed(model(), data_by_sizes(x, y, [10, 6]), links(2), **args)
    both.round(1)
    alone = []
    for part in (slice(0, 10), slice(10, 16)):
        own = data_by_sizes(x[part], y[part], [part.stop - part.start])
        scheme = SplitFed(model(), own, links(1), **args)
        scheme.round(1)
        alone.append(scheme.model.state_dict())
    for key, value in both.model.state_dict().items():
        if value.dtype.is_floating_point:
            expected = (10 * alone[0][key] + 6 * alone[1][key]) / 16
            torch.testing.assert_close(value, expected, msg=key)


def easy_task(n_train: int, n_test: int, n_devices: int, seed: int) -> FederatedData:
    """Class c shifts channel 0 by (c - 1.5): separable by the mean of channel 0."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = rng.integers(0, CLASSES, n).astype(np.int64)
    x = rng.normal(0.0, 0.5, (n, *SHAPE)).astype(np.float32)
    x[:, 0, :] += (y[:, None] - 1.5).astype(np.float32)
    partition = partition_iid(n_train, n_devices, rng)
    return FederatedData(x[:n_train], y[:n_train], x[n_train:], y[n_train:], partition, CLASSES)


@pytest.mark.parametrize("scheme", [SplitLearning, SplitFed])
def test_a_few_rounds_learn_an_easy_task(scheme: Scheme) -> None:
    data = easy_task(192, 128, n_devices=4, seed=5)
    original = copy.deepcopy(model().state_dict())
    start = model()
    sl = scheme(
        start, data, links(4), clients_per_round=4, samples_per_client=48, batch_size=16,
        local_epochs=2, lr=0.2, seed=1,
    )  # fmt: skip
    records = sl.run(4)
    assert [r.round for r in records] == [1, 2, 3, 4]
    assert records[-1].accuracy > max(0.6, records[0].accuracy)  # chance: 0.25
    assert records[-1].extra["train_loss"] < records[0].extra["train_loss"]
    for key, value in start.state_dict().items():  # the caller's model is untouched
        assert torch.equal(value, original[key]), key
    again = scheme(
        model(), data, links(4), clients_per_round=4, samples_per_client=48, batch_size=16,
        local_epochs=2, lr=0.2, seed=1,
    )  # fmt: skip
    assert again.round(1) == records[0]  # same seed, same round


BAD: list[tuple[dict[str, Any], str]] = [
    ({"cut": 0}, "cut"),
    ({"cut": 4}, "cut"),
    ({"clients_per_round": 0}, "clients_per_round"),
    ({"local_epochs": 0}, "local_epochs"),
    ({"samples_per_client": 0}, "samples_per_client"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"activation_bits": 1}, "activation_bits"),
    ({"activation_bits": True}, "activation_bits"),
    ({"gradient_bits": 17}, "gradient_bits"),
    ({"seed": -1}, "seed"),
]


@pytest.mark.parametrize("scheme", [SplitLearning, SplitFed])
@pytest.mark.parametrize(("kwargs", "word"), BAD)
def test_bad_arguments_name_the_argument(scheme: Scheme, kwargs: dict[str, Any], word: str) -> None:
    x, y = batch(8, seed=6)
    with pytest.raises(ValueError, match=word):
        scheme(model(), data_by_sizes(x, y, [4, 4]), links(2), **kwargs)


def test_bad_models_links_variant_and_round() -> None:
    x, y = batch(8, seed=7)
    data = data_by_sizes(x, y, [4, 4])
    with pytest.raises(ValueError, match="BlockModel"):
        SplitFed(torch.nn.Linear(2, 2), data, links(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="3 logits"):
        SplitFed(model(num_classes=3), data, links(2))
    with pytest.raises(ValueError, match="links describe 3 devices"):
        SplitFed(model(), data, links(3))
    dead = LinkBudget(np.zeros(2), np.full(2, 1e7), 1e-3, 0.5, 0.2, 1e-9)
    with pytest.raises(ValueError, match="reachable"):
        SplitLearning(model(), data, dead)
    with pytest.raises(ValueError, match="variant"):
        SplitFed(model(), data, links(2), variant="v3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="round number"):
        SplitFed(model(), data, links(2)).round(0)
