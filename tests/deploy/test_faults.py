"""Fault accounting (`tinylarge.deploy.faults`) on hand-made records, and a device's view of
replies it did not ask for."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tinylarge.deploy.device import Device, FleetConfig, ModelStore
from tinylarge.deploy.faults import (
    FAULTS,
    FaultPlan,
    FaultRecord,
    disconnected_devices,
    fault_metrics,
)
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT, FleetEvents, FleetRecords
from tinylarge.secure.identity import Identity

from .conftest import World


def _records() -> FleetRecords:
    """Ten requests, one per second; device = index % 3."""
    records = FleetRecords(np.arange(10) % 3, np.zeros(10, np.int64), np.arange(10.0))
    records.route[:] = [BY_EDGE, ON_DEVICE, TIMED_OUT, TIMED_OUT, BY_EDGE,
                        BY_EDGE, -1, ON_DEVICE, BY_EDGE, BY_EDGE]  # fmt: skip
    records.sent_s = records.scheduled_s + 0.001
    records.answered_s = records.scheduled_s + 0.01
    return records


def test_each_fault_counts_the_requests_of_its_window() -> None:
    events = FleetEvents(
        unexpected_reply_s=np.array([6.5]),  # in the flood's window
        install_s=np.array([8.5, 8.6]),
        install_version=np.array([1, 1001]),  # 1001: a bad bundle someone installed
        disconnected=np.array([1]),
    )
    faults = [
        FaultRecord("edge_kill", 2.0, 2.5),
        FaultRecord("flood_replay", 6.0, 7.0, {"sent": {"garbage": 3}}, attacker_accepted=2),
        FaultRecord("disconnect", 4.5, 5.0),
        FaultRecord("corrupt_bundle", 8.0, 8.0, bad_versions=(1001, 1002)),
    ]
    m = fault_metrics(_records(), events, faults)
    assert list(m) == ["edge_kill", "disconnect", "flood_replay", "corrupt_bundle"]  # by time
    kill = m["edge_kill"]  # requests 2, 3, 4 (until the disconnect at 4.5 s)
    assert (kill["requests"], kill["answered"], kill["fell_back"], kill["lost"]) == (3, 1, 2, 0)
    assert kill["recovery_s"] == pytest.approx(4.01 - 2.0)  # request 4 answered at 4.01 s
    assert kill["window_s"] == 2.5 and kill["accepted_bad"] == 0
    # the disconnect: only the dropped device 1 counts for recovery, and its one later request
    # (7) stayed on the device, so the edge has not answered it again
    assert m["disconnect"]["recovery_s"] is None and m["disconnect"]["requests"] == 1
    flood = m["flood_replay"]
    assert (flood["requests"], flood["lost"], flood["on_device"]) == (2, 1, 1)
    assert flood["accepted_bad"] == 1 + 2 and flood["sent"] == {"garbage": 3}
    bundle = m["corrupt_bundle"]
    assert bundle["window_s"] is None and bundle["requests"] == 2 and bundle["accepted_bad"] == 1


def test_the_plan_spreads_the_faults_after_a_quiet_start() -> None:
    plan = FaultPlan.spread(36.0)
    assert list(plan.at_s) == list(FAULTS)
    assert [plan.at_s[f] for f in FAULTS] == pytest.approx([6, 12, 18, 24, 30])
    with pytest.raises(ValueError, match="at least 30 s"):
        FaultPlan.spread(20.0)


def test_the_disconnected_devices_are_a_reproducible_tenth() -> None:
    chosen = disconnected_devices(50, 0.1)
    assert chosen == disconnected_devices(50, 0.1) and len(chosen) == 5
    assert len(set(chosen)) == 5 and all(0 <= d < 50 for d in chosen)
    assert len(disconnected_devices(3, 0.1)) == 1  # at least one
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        disconnected_devices(10, 0.0)


def test_a_device_records_replies_to_requests_it_never_sent_or_had_answered(
    world: World,
) -> None:
    async def main() -> Device:
        device = Device(Identity.generate("device-7"), world.edge.public_key, Topics(),
                        FleetConfig(), ModelStore(world.tiny))  # fmt: skip
        device._sent.update({1, 2})
        waiting = asyncio.get_running_loop().create_future()
        device.pending[1] = waiting
        device._reply(1, 40, 3)  # the answer to request 1
        assert waiting.result() == (40, 3)
        device._reply(2, 40, 5)  # late: request 2 timed out earlier (no one waits): dropped
        device._reply(1, 40, 3)  # request 1 again: the edge accepted a replayed frame
        device._reply(9, 40, 3)  # never sent
        return device

    device = asyncio.run(main())
    assert len(device.unexpected) == 2
