"""Statistics that merge across shards: exact order statistics over sorted runs, and the
summary of merged parts against the summary of the whole."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from tinylarge.net import (
    EdgeServiceModel,
    LinkSettings,
    attach_devices,
    radio_profile,
    send_messages,
)
from tinylarge.net.message_stats import MessageStats, kth_smallest, percentile


def _runs(rng: np.random.Generator) -> list[np.ndarray]:
    # ties, zeros, one-element and empty runs, values over many orders of magnitude
    runs = [np.sort(rng.exponential(0.01, rng.integers(0, 300))) for _ in range(6)]
    runs.append(np.sort(np.r_[0.0, 0.0, rng.choice([1e-3, 2e-3], 50), 1e6]))
    runs.append(np.array([5e-3]))
    return runs


def test_kth_smallest_is_the_sorted_unions_element() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        runs = _runs(rng)
        union = np.sort(np.concatenate(runs))
        for k in [*rng.integers(0, union.size, 30).tolist(), 0, union.size - 1]:
            assert kth_smallest(runs, k) == union[k]


def test_percentile_of_runs_matches_numpys_linear_method() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        runs = _runs(rng)
        union = np.concatenate(runs)
        for q in (0, 1, 50, 95, 99, 99.9, 100):
            assert percentile(runs, q) == np.percentile(union, q)  # bit for bit


def test_kth_smallest_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"k must be in \[0, 3\)"):
        kth_smallest([np.array([1.0, 2.0, 3.0])], 3)
    with pytest.raises(ValueError, match="non-negative"):
        kth_smallest([np.array([-1.0, 2.0])], 0)
    with pytest.raises(ValueError, match="at least one"):
        MessageStats.merge([])


def test_merged_parts_summarise_like_the_whole() -> None:
    cells = attach_devices(
        np.random.default_rng(0), radio_profile("nb_iot"), 400, n_cells=4, indoor_fraction=0.5
    )
    rng = np.random.default_rng(2)
    device = rng.integers(0, 400, 5000)
    arrival = np.sort(rng.uniform(0, 5.0, 5000))
    result = send_messages(
        np.random.default_rng(3), cells, LinkSettings(),
        EdgeServiceModel(setup_s=0.002, per_item_s=1e-4),
        device=device, arrival_s=arrival, bytes_up=200, bytes_down=13, compute_energy_j=1e-4,
    )  # fmt: skip
    assert result.outage.sum() > 0 and result.delivered.sum() < result.device.size
    whole = result.summary()
    # the same numbers as NumPy over the per-message arrays
    ok, sent = result.delivered, ~result.outage
    assert whole["latency_s"]["p99"] == np.percentile(result.latency_s[ok], 99)
    assert whole["latency_s"]["mean"] == pytest.approx(result.latency_s[ok].mean(), rel=1e-13)
    assert whole["energy_j_per_message"] == pytest.approx(result.energy_j[sent].mean(), rel=1e-13)
    assert whole["outage_fraction"] == result.outage.mean()
    # split into parts (any split), then merged
    cut = [0, 1234, 1235, 4000, 5000]
    parts = []
    for lo, hi in itertools.pairwise(cut):
        piece = {f: getattr(result, f)[lo:hi] for f in result.__dataclass_fields__}
        parts.append(MessageStats.of(replace(result, **piece)))
    merged = MessageStats.merge(parts).summary()
    for q in ("p50", "p95", "p99"):
        assert merged["latency_s"][q] == whole["latency_s"][q]  # exact order statistics
    keys = [k for k in whole if k not in ("latency_s", "messages")]
    for key in keys:
        assert merged[key] == pytest.approx(whole[key], rel=1e-13), key
    empty = MessageStats.of(
        replace(result, **{f: getattr(result, f)[:0] for f in result.__dataclass_fields__})
    )
    assert empty.summary()["latency_s"]["p99"] is None and empty.summary()["messages"] == 0


def test_percentile_summary_is_numpys_linear_percentile() -> None:
    from tinylarge.net.message_stats import percentile_summary

    values = np.random.default_rng(1).exponential(size=101)
    summary = percentile_summary(values)
    assert list(summary) == ["p50", "p95", "p99"]
    for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert summary[key] == float(np.percentile(values, q))
    assert percentile_summary(np.zeros(0)) == {"p50": None, "p95": None, "p99": None}
    assert percentile_summary([1.0, 3.0], (50, 99)) == {"p50": 2.0, "p99": pytest.approx(2.98)}
