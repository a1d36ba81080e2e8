"""The co-learning contract: link costs on hand examples, the round driver."""

from __future__ import annotations

import numpy as np
import pytest
from tests.integrate.colearning.colearning_fixtures import links

from tinylarge.integrate.colearning.contract import CoLearning, LinkBudget, RoundRecord
from tinylarge.net.overhead import ProtocolOverhead


def test_traffic_charges_whole_slots_per_device_on_a_hand_example() -> None:
    budget = links(3)
    # device 0: 1000 B up at 1 Mbit/s = 8 ms = 8 slots; 100 B down at 10 Mbit/s = 0.08 ms -> 1 slot
    # device 2: 1001 B up = 8.008 ms -> 9 slots; 0 B down -> 0 s
    t = budget.traffic([0, 2], [1000, 1001], [100, 0])
    assert t.bytes_up == 2001 and t.bytes_down == 100
    assert t.airtime_s == pytest.approx(8e-3 + 1e-3 + 9e-3)
    np.testing.assert_allclose(t.device_energy_j, [0.5 * 8e-3 + 0.2 * 1e-3, 0.5 * 9e-3])


def test_traffic_refuses_unreachable_devices() -> None:
    with pytest.raises(ValueError, match="out of range"):
        links(3, unreachable=(1,)).traffic([1], 10, 10)


def test_training_energy_is_three_forward_passes() -> None:
    assert float(links().training_energy_j(1000, 10)) == pytest.approx(3 * 1000 * 10 * 1e-9)


class Counting(CoLearning):
    name = "counting"

    def round(self, number: int) -> RoundRecord:
        return RoundRecord(number, number / 10, number, 0, 0.0, 0.0, 1)


def test_run_drives_numbered_rounds_and_reports_each() -> None:
    seen: list[int] = []
    records = Counting().run(3, progress=lambda r: seen.append(r.round))
    assert [r.round for r in records] == seen == [1, 2, 3]
    assert records[-1].to_dict()["accuracy"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="rounds must be"):
        Counting().run(0)


def test_traffic_adds_headers_per_message_and_one_session_per_device() -> None:
    ov = ProtocolOverhead(message_bytes=40, device_j_per_byte=1e-9, session_up_bytes=100,
                          session_down_bytes=60, session_device_j=1e-3)  # fmt: skip
    budget = replace_overhead(links(3), ov)
    # device 0: 1000 B in 2 messages up, 100 B in 1 down; device 2: 500 B up, nothing down
    t = budget.traffic([0, 2], [1000, 500], [100, 0], messages_up=[2, 1])
    up = [1000 + 80 + 100, 500 + 40 + 100]
    down = [100 + 40 + 60, 0 + 60]
    assert t.bytes_up == sum(up) and t.bytes_down == sum(down)
    slots_up = np.ceil(np.array(up) * 8 / 1e3)  # 1 Mbit/s, 1 ms slots: 1000 bits per slot
    slots_down = np.ceil(np.array(down) * 8 / 1e4)
    crypto = (np.array([1000 + 80 + 100 + 40, 500 + 40]) * 1e-9) + 1e-3
    np.testing.assert_allclose(
        t.device_energy_j, 0.5 * slots_up * 1e-3 + 0.2 * slots_down * 1e-3 + crypto
    )
    assert budget.ledger.sessions == 2 and budget.ledger.handshake_bytes == 320
    assert budget.ledger.overhead_bytes == 4 * 40
    # the sessions stay open: a second round pays headers only
    again = budget.traffic([0], 10, 0)
    assert again.bytes_up == 50 and again.bytes_down == 0 and budget.ledger.sessions == 2


def replace_overhead(budget: LinkBudget, overhead: ProtocolOverhead) -> LinkBudget:
    return LinkBudget(
        budget.uplink_bps, budget.downlink_bps, budget.slot_s, budget.tx_draw_w,
        budget.rx_power_w, budget.joules_per_mac, overhead,
    )  # fmt: skip
