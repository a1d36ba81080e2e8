"""`round_trip_split` of the hybrid language model's tokens: the device's round trips matched
with the edge's log on (device, request id), the transport their difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylarge.deploy.hlm_records import (
    TokenRecords,
    edge_times,
    load_token_records,
    round_trip_split,
    save_token_records,
)

IDS = ["device-00000", "device-00001"]


def _answered(path: Path, rows: list[tuple[str, int, float]]) -> Path:
    """An ``edge_answered.npz`` as `EdgeServer.write_answered` writes it."""
    np.savez(
        path,
        device=np.array([r[0] for r in rows], dtype=str),
        request=np.array([r[1] for r in rows], np.int64),
        in_edge_s=np.array([r[2] for r in rows], np.float64),
    )
    return path


def _timed(records: TokenRecords, row: int, k: int, request: int, rtt_s: float) -> None:
    records.request_id[row, k] = request
    records.published_s[row, k] = 1.0 + k
    records.replied_s[row, k] = 1.0 + k + rtt_s


def test_round_trips_split_into_edge_and_transport_on_matching_requests(tmp_path: Path) -> None:
    hlm, llm, slm = TokenRecords(2, 3), TokenRecords(2, 3), TokenRecords(2, 3)
    _timed(hlm, 0, 0, 7, 0.010)  # edge 4 ms -> transport 6 ms
    _timed(hlm, 1, 0, 7, 0.012)  # same request id, other device: edge 2 ms -> 10 ms
    _timed(hlm, 1, 2, 9, 0.020)  # the edge never logged it: not matched
    _timed(llm, 0, 1, 8, 0.030)  # edge 10 ms -> 20 ms
    _timed(llm, 0, 2, 11, 0.040)  # logged twice (a new session reused the id): ambiguous
    answered = _answered(
        tmp_path / "edge_answered.npz",
        [(IDS[0], 7, 0.004), (IDS[1], 7, 0.002), (IDS[0], 8, 0.010),
         (IDS[0], 11, 0.001), (IDS[0], 11, 0.003), (IDS[1], 99, 0.5)],
    )  # fmt: skip
    split = round_trip_split({"hlm": hlm, "llm": llm, "slm": slm}, IDS, answered)
    transport = np.array([0.006, 0.010, 0.020])
    assert split["matched"] == 3
    assert split["transport_s"]["p50"] == pytest.approx(np.percentile(transport, 50))
    assert split["transport_s"]["p99"] == pytest.approx(np.percentile(transport, 99))
    assert split["round_trip_s"]["p50"] == pytest.approx(0.012)
    assert split["in_edge_s"]["p50"] == pytest.approx(0.004)
    by = split["by_scheme"]
    assert by["hlm"]["matched"] == 2 and by["llm"]["matched"] == 1
    assert by["hlm"]["transport_s"]["p50"] == pytest.approx(0.008)
    assert by["llm"]["transport_s"]["p50"] == pytest.approx(0.020)
    assert by["slm"] == {"matched": 0, "transport_s": {"p50": None, "p95": None, "p99": None}}
    assert (IDS[0], 11) not in edge_times(answered)


def test_the_timing_fields_survive_saving(tmp_path: Path) -> None:
    records = TokenRecords(2, 3)
    _timed(records, 1, 2, 5, 0.25)
    save_token_records({"hlm": records}, tmp_path / "r.npz")
    loaded = load_token_records(tmp_path / "r.npz")["hlm"]
    np.testing.assert_array_equal(loaded.request_id, records.request_id)
    np.testing.assert_array_equal(loaded.replied_s, records.replied_s)
    assert loaded.request_id[0, 0] == -1 and np.isnan(loaded.published_s[0, 0])
