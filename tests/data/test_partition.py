"""Partitioning samples across devices: IID, Dirichlet label skew, by SNR."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylarge.data import Partition, partition_by_snr, partition_dirichlet, partition_iid


def _covers_once(part: Partition, n_samples: int) -> None:
    assert part.indices.dtype == np.int64 and part.offsets.dtype == np.int64
    np.testing.assert_array_equal(np.sort(part.indices), np.arange(n_samples))
    assert part.sizes.sum() == n_samples


def _label_entropy(part: Partition, labels: np.ndarray, num_classes: int) -> float:
    hist = part.label_histogram(labels, num_classes).astype(np.float64)
    p = hist / hist.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=1)
    return float(np.mean(h))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_iid_covers_every_sample_once(n: int, data: st.DataObject, seed: int) -> None:
    d = data.draw(st.integers(1, n))
    part = partition_iid(n, d, np.random.default_rng(seed))
    _covers_once(part, n)
    assert part.n_devices == d
    assert part.sizes.max() - part.sizes.min() <= 1


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_dirichlet_and_snr_cover_every_sample_once(n: int, data: st.DataObject, seed: int) -> None:
    d = data.draw(st.integers(1, max(1, n // 5)))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    part = partition_dirichlet(labels, d, 1.0, rng, min_samples_per_device=0)
    _covers_once(part, n)
    assert part.n_devices == d
    snr_part = partition_by_snr(rng.normal(5, 5, n), d, rng, mixing=data.draw(st.floats(0, 2)))
    _covers_once(snr_part, n)
    assert snr_part.sizes.max() - snr_part.sizes.min() <= 1


def test_partitions_are_deterministic() -> None:
    labels = np.arange(200) % 5
    snr = np.linspace(-10, 20, 200)
    makers: list[Callable[[np.random.Generator], Partition]] = [
        lambda rng: partition_iid(200, 7, rng),
        lambda rng: partition_dirichlet(labels, 7, 0.5, rng),
        lambda rng: partition_by_snr(snr, 7, rng, mixing=0.3),
    ]
    for make in makers:
        a, b = make(np.random.default_rng(1)), make(np.random.default_rng(1))
        c = make(np.random.default_rng(2))
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.offsets, b.offsets)
        assert not np.array_equal(a.indices, c.indices)


def test_partition_accessors_and_histogram() -> None:
    part = Partition(indices=np.array([4, 0, 2, 1, 3], dtype=np.int64),
                     offsets=np.array([0, 2, 2, 5], dtype=np.int64))  # fmt: skip
    assert part.n_devices == 3
    np.testing.assert_array_equal(part.sizes, [2, 0, 3])
    np.testing.assert_array_equal(part.device(0), [4, 0])
    assert part.device(1).size == 0
    hist = part.label_histogram(np.array([0, 1, 1, 2, 0]), 3)
    np.testing.assert_array_equal(hist, [[2, 0, 0], [0, 0, 0], [0, 2, 1]])
    assert hist.dtype == np.int64
    with pytest.raises(ValueError, match=r"device index must be an integer in \[0, 3\), got 3"):
        part.device(3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        part.label_histogram(np.array([0, 1, 1, 2, 0]), 2)
    with pytest.raises(ValueError, match="partition refers to sample 4 but labels has only 3"):
        part.label_histogram(np.array([0, 1, 1]), 3)


@pytest.mark.parametrize(
    ("indices", "offsets", "message"),
    [
        ([0, 1], [0, 1], "offsets must start at 0 and end at len"),
        ([0, 1], [0, 2, 1, 2], "non-decreasing"),
        ([0, 1], [2], "n_devices \\+ 1 >= 2"),
        ([-1, 1], [0, 2], "indices must be >= 0"),
    ],
)
def test_partition_validates(indices: list[int], offsets: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Partition(indices=np.array(indices, dtype=np.int64),
                  offsets=np.array(offsets, dtype=np.int64))  # fmt: skip
    with pytest.raises(ValueError, match="1-D int64 numpy array"):
        Partition(indices=np.array([0, 1]).astype(np.int32), offsets=np.array([0, 2]))


def test_dirichlet_small_alpha_is_more_skewed() -> None:
    labels = np.repeat(np.arange(10), 200)
    rng = np.random.default_rng(3)
    skewed = partition_dirichlet(labels, 20, 0.1, rng)
    mild = partition_dirichlet(labels, 20, 100.0, rng)
    _covers_once(skewed, labels.size)
    h_skewed = _label_entropy(skewed, labels, 10)
    h_mild = _label_entropy(mild, labels, 10)
    assert h_mild > 3.2  # near log2(10) = 3.32: nearly IID
    assert h_skewed < h_mild - 1.0
    assert skewed.sizes.min() >= 1


def test_dirichlet_respects_minimum_and_fails_clearly() -> None:
    labels = np.repeat(np.arange(4), 50)
    part = partition_dirichlet(labels, 10, 0.5, np.random.default_rng(4), min_samples_per_device=5)
    assert part.sizes.min() >= 5
    with pytest.raises(ValueError, match="use a larger alpha, fewer devices"):
        partition_dirichlet(np.zeros(10, dtype=int), 10, 0.001, np.random.default_rng(0),
                            max_tries=5)  # fmt: skip
    with pytest.raises(ValueError, match="exceeds the 10 samples"):
        partition_dirichlet(np.zeros(10, dtype=int), 5, 1.0, np.random.default_rng(0),
                            min_samples_per_device=3)  # fmt: skip


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda rng: partition_iid(10, 0, rng), r"n_devices must lie in \[1, n_samples\]"),
        (lambda rng: partition_iid(10, 11, rng), r"\[1, 10\] .* got 11"),
        (lambda rng: partition_iid(0, 1, rng), "n_samples must be a positive integer"),
        (lambda rng: partition_dirichlet(np.arange(10), 2, 0.0, rng), "alpha must be"),
        (lambda rng: partition_dirichlet(np.arange(10) - 1, 2, 1.0, rng), "labels must be >= 0"),
        (lambda rng: partition_dirichlet(np.ones(10) * 0.5, 2, 1.0, rng), "1-D integer array"),
        (lambda rng: partition_by_snr(np.zeros(10), 2, rng, mixing=-1.0), "mixing must be"),
        (lambda rng: partition_by_snr(np.array([0.0, np.nan]), 1, rng), "snr_db must be finite"),
        (lambda rng: partition_by_snr(np.zeros((2, 2)), 1, rng), "non-empty 1-D numeric"),
        (lambda rng: partition_by_snr(np.zeros(3), 4, rng), r"\[1, 3\]"),
    ],
)
def test_partition_argument_errors(
    call: Callable[[np.random.Generator], Partition], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(np.random.default_rng(0))


def test_non_integer_device_count_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"n_devices must be an integer, got 2\.5"):
        partition_iid(10, 2.5, np.random.default_rng(0))  # type: ignore[arg-type]


def test_snr_partition_orders_devices_far_to_near() -> None:
    rng = np.random.default_rng(5)
    snr = rng.choice(np.arange(-10, 22, 2), size=1000).astype(np.float32)  # many ties
    sorted_part = partition_by_snr(snr, 10, rng, mixing=0.0)
    means = np.array([snr[sorted_part.device(d)].mean() for d in range(10)])
    assert np.all(np.diff(means) >= 0)
    for d in range(9):  # perfectly sorted: no overlap between neighbours
        assert snr[sorted_part.device(d)].max() <= snr[sorted_part.device(d + 1)].min()
    mixed = partition_by_snr(snr, 10, rng, mixing=10.0)
    mixed_means = np.array([snr[mixed.device(d)].mean() for d in range(10)])
    assert np.ptp(mixed_means) < 0.3 * np.ptp(means)
    slight = partition_by_snr(snr, 10, rng, mixing=0.1)
    slight_means = np.array([snr[slight.device(d)].mean() for d in range(10)])
    assert slight_means[0] < slight_means[-1]
    assert np.ptp(slight_means) < np.ptp(means)
