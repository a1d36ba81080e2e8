"""Split computing: outputs per split point, MACs, activation bytes, split choice, policy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from tinylarge.integrate.inference.contract import Trace
from tinylarge.integrate.inference.split_computing import (
    QUANT_HEADER_BYTES,
    SplitPolicy,
    activation_bytes,
    activation_bytes_per_split,
    choose_split,
    cumulative_macs,
    device_macs_per_block,
    quantize_activation,
    split_k_distribution,
    split_logits_extra,
    split_logits_key,
    split_outputs,
)
from tinylarge.models.blocks import BlockModel
from tinylarge.models.registry import build_model
from tinylarge.net.mean_rate import MeanRateLink

INPUT_SHAPE = (2, 128)


@pytest.fixture(scope="module")
def resnet() -> BlockModel:
    model = build_model("large_resnet", INPUT_SHAPE, 8, {"width": 4}, seed=0)
    assert isinstance(model, BlockModel)
    return model.eval()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(256, *INPUT_SHAPE)).astype(np.float32)


def hand_model() -> BlockModel:
    blocks: list[nn.Module] = [
        nn.Conv1d(3, 4, 3, padding=1, bias=False),  # (3, 5) -> (4, 5)
        nn.Sequential(nn.Conv1d(4, 8, 3, stride=2, padding=1), nn.ReLU()),  # -> (8, 3)
        nn.Sequential(nn.Flatten(), nn.Linear(24, 10)),  # -> (10,)
    ]
    return BlockModel(blocks, nn.Linear(10, 2))


def test_every_split_point_matches_the_full_model(resnet: BlockModel, inputs: np.ndarray) -> None:
    with torch.no_grad():
        full = resnet(torch.from_numpy(inputs)).numpy()
    scale = np.abs(full).max()
    for k in range(len(resnet.blocks) + 1):
        errors = [np.abs(split_outputs(resnet, inputs, k, b) - full).max() for b in (2, 4, 8, 16)]
        assert all(a > b for a, b in itertools.pairwise(errors)), (k, errors)
        assert errors[-1] <= 1e-3 * scale, (k, errors)
        agree = np.mean(split_outputs(resnet, inputs, k, 16).argmax(1) == full.argmax(1))
        assert agree > 0.99, (k, agree)


def test_split_logits_extra_keys(resnet: BlockModel, inputs: np.ndarray) -> None:
    extra = split_logits_extra(resnet, inputs[:4], 8)
    assert list(extra) == [split_logits_key(k) for k in range(len(resnet.blocks) + 1)]
    assert extra["split_logits_k3"].shape == (4, 8)
    assert extra["split_logits_k3"].dtype == np.float32


def test_quantize_activation() -> None:
    h = torch.tensor([[0.0, 1.0, 0.5, 0.26], [2.0, 2.0, 2.0, 2.0]])
    q = quantize_activation(h, 2)  # levels 0, 1/3, 2/3, 1 on the first sample
    torch.testing.assert_close(q, torch.tensor([[0.0, 1.0, 2 / 3, 1 / 3], [2.0, 2.0, 2.0, 2.0]]))
    for bits in (1, 17):
        with pytest.raises(ValueError, match=r"2\.\.16"):
            quantize_activation(h, bits)


def test_macs_per_block_on_hand_models() -> None:
    # conv: output elements x C_in / groups x kernel; linear: in x out
    np.testing.assert_array_equal(
        device_macs_per_block(hand_model(), (3, 5)), [4 * 5 * 3 * 3, 8 * 3 * 4 * 3, 24 * 10]
    )
    grouped = BlockModel(
        [nn.Conv2d(4, 8, 3, padding=1, groups=2)], nn.Sequential(nn.Flatten(), nn.Linear(288, 3))
    )
    np.testing.assert_array_equal(device_macs_per_block(grouped, (4, 6, 6)), [8 * 36 * 2 * 9])
    attention = BlockModel([nn.GRU(4, 4)], nn.Identity())
    with pytest.raises(ValueError, match="GRU"):
        device_macs_per_block(attention, (4, 6))


def resnet_macs_by_formula(width: int, length: int, c_in: int) -> list[int]:
    """large_resnet MACs per block, from the architecture (blocks_per_stage = 2)."""
    stem = length * width * c_in * 7
    size, macs, c = length // 2, [stem], width  # the stem max-pools frames >= 32
    for stage, factor in enumerate((1, 2, 4, 8)):
        c_out, stride = width * factor, (2 if stage > 0 and size >= 2 else 1)
        size //= stride
        first = size * c_out * c * 3 + size * c_out * c_out * 3
        if stride != 1 or c != c_out:
            first += size * c_out * c  # 1x1 projection shortcut
        macs += [first, 2 * size * c_out * c_out * 3]
        c = c_out
    return macs


def test_macs_per_block_on_large_resnet(resnet: BlockModel) -> None:
    per_block = device_macs_per_block(resnet, INPUT_SHAPE)
    np.testing.assert_array_equal(per_block, resnet_macs_by_formula(4, 128, 2))
    cum = cumulative_macs(per_block)
    assert cum[0] == 0 and cum[-1] == per_block.sum() and cum.size == len(resnet.blocks) + 1


def test_activation_bytes_hand_computed(resnet: BlockModel) -> None:
    # (8, 3) = 24 elements x 3 bits = 72 bits = 9 B; (3, 5) = 15 x 3 = 45 bits -> 6 B
    assert activation_bytes(hand_model(), (3, 5), 2, 3) == 9 + QUANT_HEADER_BYTES
    assert activation_bytes(hand_model(), (3, 5), 0, 3) == 6 + QUANT_HEADER_BYTES
    per_split = activation_bytes_per_split(resnet, INPUT_SHAPE, 8)
    assert per_split[0] == 2 * 128 + QUANT_HEADER_BYTES  # raw input, 1 B per element
    assert per_split[1] == 4 * 64 + QUANT_HEADER_BYTES  # stem: conv + max pool
    assert per_split.size == len(resnet.blocks) + 1
    with pytest.raises(ValueError, match="split point"):
        activation_bytes(resnet, INPUT_SHAPE, len(resnet.blocks) + 1, 8)


HAND_SPLIT = {
    "device_macs_cum": [0, 1_000_000, 2_000_000],  # compute 0, 1, 2 s at 1 MAC/cycle, 1 MHz
    "activation_bytes": [1000, 4000, 100],
    "mcu_cycles_per_mac": 1.0,
    "mcu_clock_hz": 1e6,
    "mcu_power_w": 0.1,  # compute energy 0, 0.1, 0.2 J
}


def _link(
    rates_bps: list[float], *, tx_draw_w: float = 0.0125, slot_s: float = 1e-6
) -> MeanRateLink:
    """Devices with these uplink (and downlink) rates; 1 us slots unless given."""
    rates = np.asarray(rates_bps, dtype=np.float64)
    return MeanRateLink(rates, rates, slot_s=slot_s, tx_draw_w=tx_draw_w, rx_power_w=0.0)


def test_choose_split_hand_example() -> None:
    # fast link: upload ~us, so no device compute (k = 0); slow 1 kbit/s: upload 8, 32, 0.8 s,
    # latency 8, 33, 2.8 s
    np.testing.assert_array_equal(choose_split(_link([1e9, 1e3, 0.0]), **HAND_SPLIT), [0, 2, 2])
    # at 1 kbit/s the radio (12.5 mW) spends 0.1, 0.4, 0.01 J: energy 0.1, 0.5, 0.21 J; at
    # 1 Gbit/s the radio costs ~nothing: energy ~0, 0.1, 0.2 J
    np.testing.assert_array_equal(
        choose_split(_link([1e9, 1e3]), objective="energy", **HAND_SPLIT), [0, 0]
    )
    # a 0.15 J budget rules k = 2 (0.21 J) out; with 0.05 J nothing fits: least energy
    for budget in (0.15, 0.05):
        k = choose_split(_link([1e3]), energy_budget_j=budget, **HAND_SPLIT)
        np.testing.assert_array_equal(k, [0])
    per_device = choose_split(_link([1e3, 1e3]), energy_budget_j=[0.15, 0.3], **HAND_SPLIT)
    np.testing.assert_array_equal(per_device, [0, 2])
    with pytest.raises(ValueError, match="objective"):
        choose_split(_link([1e3]), objective="accuracy", **HAND_SPLIT)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same non-zero length"):
        choose_split(_link([1e3]), **{**HAND_SPLIT, "activation_bytes": [1, 2]})


def test_choose_split_counts_whole_slots() -> None:
    # 1 Mbit/s, 1 ms slots: 264 B = 2.1 ms -> 3 slots, 40 B = 0.32 ms -> 1 slot, 520 B -> 5 slots
    args = {**HAND_SPLIT, "activation_bytes": [264, 520, 40], "device_macs_cum": [0, 0, 0]}
    k = choose_split(_link([1e6], tx_draw_w=12.5, slot_s=1e-3), objective="energy", **args)
    np.testing.assert_array_equal(k, [2])
    # at 100 Mbit/s all three fit one slot: equal airtime, the tie goes to k = 0
    np.testing.assert_array_equal(choose_split(_link([1e8], slot_s=1e-3), **args), [0])
    # slotted energy is the TX draw (12.5 W) x whole slots: k = 0 costs 3 slots = 37.5 mJ,
    # k = 1 62.5 mJ; a 40 mJ budget with k = 2 made expensive keeps k = 0
    pricey = {**args, "device_macs_cum": [0, 0, 10**9]}
    link = _link([1e6], tx_draw_w=12.5, slot_s=1e-3)
    k = choose_split(link, objective="latency", energy_budget_j=0.04, **pricey)
    np.testing.assert_array_equal(k, [0])


def test_split_k_distribution() -> None:
    assert split_k_distribution(np.array([2, 0, 2, 1, 2])) == {0: 1, 1: 1, 2: 3}


def test_split_policy_decides_per_device() -> None:
    rng = np.random.default_rng(0)
    n, n_classes = 6, 3
    y = rng.integers(0, n_classes, n)
    extra = {split_logits_key(k): rng.normal(size=(n, n_classes)) for k in range(3)}
    trace = Trace(tiny_logits=np.zeros((n, 3)), large_logits=np.zeros((n, 3)), y=y, extra=extra)
    policy = SplitPolicy(
        activation_bytes=[264, 520, 40], device_macs_cum=[0, 100, 250], k_per_device=[0, 2, 1]
    )
    index, device = np.array([5, 0, 0, 3]), np.array([1, 0, 2, 1])
    d = policy.decide(trace, index, np.random.default_rng(1), device=device)
    k = np.array([2, 0, 1, 2])
    assert d.offload.all()
    np.testing.assert_array_equal(d.bytes_up, np.array([264, 520, 40])[k])
    np.testing.assert_array_equal(d.device_macs, np.array([0, 100, 250])[k])
    expected = [
        np.argmax(extra[split_logits_key(int(s))][i]) for s, i in zip(k, index, strict=True)
    ]
    np.testing.assert_array_equal(d.prediction, expected)
    np.testing.assert_array_equal(d.fallback_prediction, -1)
    with pytest.raises(ValueError, match="device"):
        policy.decide(trace, index, np.random.default_rng(1))
    same_k = SplitPolicy(activation_bytes=[1, 2, 3], device_macs_cum=[0, 1, 2], k_per_device=[1])
    assert (same_k.decide(trace, index, np.random.default_rng(1)).bytes_up == 2).all()
    no_logits = Trace(tiny_logits=np.zeros((n, 3)), large_logits=np.zeros((n, 3)), y=y)
    with pytest.raises(KeyError, match="split_logits_k1"):
        same_k.decide(no_logits, index, np.random.default_rng(1))
    with pytest.raises(ValueError, match="k_per_device"):
        SplitPolicy(activation_bytes=[1, 2], device_macs_cum=[0, 1], k_per_device=[2])
