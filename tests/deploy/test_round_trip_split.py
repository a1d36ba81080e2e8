"""Splitting a measured round trip into the edge's part and the transport's, by joining the
devices' records with the edge's per-reply log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT, FleetRecords
from tinylarge.deploy.summary import load_records, round_trip_split, save_records


def test_each_edge_answer_is_joined_on_device_and_request_id(tmp_path: Path) -> None:
    records = FleetRecords(np.array([0, 1, 0, 1]), np.zeros(4, np.int64), np.arange(4.0))
    records.route[:] = [BY_EDGE, BY_EDGE, ON_DEVICE, TIMED_OUT]
    records.request_id[:] = [5, 5, -1, 6]  # the same request id on two devices
    records.published_s[:] = [0.1, 1.1, np.nan, 3.1]
    records.replied_s[:] = [0.106, 1.110, np.nan, np.nan]
    records.sent_s[:] = records.ready_s[:] = records.scheduled_s
    np.savez(
        tmp_path / "edge.npz",
        device=np.array(["dev-b", "dev-a", "dev-a"]),  # the edge's order is its own
        request=np.array([5, 5, 99]),  # 99: answered by the edge, the reply never arrived
        in_edge_s=np.array([0.007, 0.004, 0.003]),
    )
    split = round_trip_split(records, ["dev-a", "dev-b"], tmp_path / "edge.npz")
    assert split["matched"] == 2
    # device 0 = dev-a: 6 ms round trip, 4 ms in the edge; device 1 = dev-b: 10 ms and 7 ms
    assert split["round_trip_s"]["p50"] == pytest.approx(0.008)
    assert split["in_edge_s"]["p50"] == pytest.approx(0.0055)
    assert split["transport_s"]["p50"] == pytest.approx(0.0025)
    assert split["agent_lateness_s"]["p50"] == pytest.approx(0.0)


def test_records_round_trip_through_their_file(tmp_path: Path) -> None:
    records = FleetRecords(np.array([2, 0]), np.array([7, 8]), np.array([0.5, 0.25]))
    records.request_id[:] = [3, -1]
    records.published_s[:] = [0.51, np.nan]
    save_records(records, tmp_path / "r.npz", labels=np.array([1, 2]), installed=[0, 0, 1])
    loaded, labels, installed = load_records(tmp_path / "r.npz")
    np.testing.assert_array_equal(loaded.request_id, records.request_id)
    np.testing.assert_array_equal(loaded.published_s, records.published_s)
    assert labels.tolist() == [1, 2] and installed == [0, 0, 1]
