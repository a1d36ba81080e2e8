"""The token link plan: every (device, token) gets its radio legs from the simulator's network
model, reproducibly; weak coverage loses requests, larger requests take longer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tinylarge.deploy.hlm_link import TokenLinkPlan, plan_token_links
from tinylarge.net.cell import CellDevices, attach_devices
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.net.profiles import radio_profile
from tinylarge.net.uplink import LinkSettings


def _cells(n: int, offset_db: float = 0.0) -> CellDevices:
    cells = attach_devices(np.random.default_rng(3), radio_profile("redcap"), n)
    return replace(
        cells,
        uplink_mean_snr_db=cells.uplink_mean_snr_db + offset_db,
        downlink_mean_snr_db=cells.downlink_mean_snr_db + offset_db,
    )


def _plan(cells: CellDevices, request_bytes: int = 80, seed: int = 0) -> TokenLinkPlan:
    overhead = ProtocolOverhead(message_bytes=35, device_s_per_byte=1e-6)
    return plan_token_links(
        np.random.default_rng(seed), cells, LinkSettings(), tokens_per_device=12,
        draft_s_per_token=0.004, request_bytes=request_bytes, reply_bytes=9, overhead=overhead,
    )  # fmt: skip


def test_every_token_of_every_device_has_legs_and_the_plan_is_reproducible() -> None:
    cells = _cells(5, offset_db=20.0)
    plan = _plan(cells)
    assert plan.shape == (5, 12)
    assert plan.draft_s == 0.004
    assert plan.seal_s == pytest.approx((80 + 35) * 1e-6)  # 1 us per byte, header included
    assert not plan.lost.any() and not plan.reply_lost.any()
    assert np.all(plan.uplink_s > 0) and np.all(plan.downlink_s > 0)
    again = _plan(cells)
    np.testing.assert_array_equal(plan.uplink_s, again.uplink_s)
    np.testing.assert_array_equal(plan.downlink_s, again.downlink_s)
    one = plan.device(3)
    assert one.shape == (1, 12)
    np.testing.assert_array_equal(one.uplink_s[0], plan.uplink_s[3])


def test_devices_out_of_coverage_lose_every_request() -> None:
    plan = _plan(_cells(3, offset_db=-200.0))
    assert plan.lost.all()
    assert np.all(plan.uplink_s[plan.lost] == 0.0)


def test_a_larger_request_takes_longer_on_the_uplink() -> None:
    cells = _cells(4, offset_db=20.0)
    small, large = _plan(cells, 40), _plan(cells, 20_000)
    assert large.uplink_s.mean() > small.uplink_s.mean()


@pytest.mark.parametrize(
    ("tokens", "draft_s", "up_bytes", "reply", "message"),
    [(0, 0.0, 10, 10, "tokens_per_device"), (5, -1.0, 10, 10, "draft_s_per_token"),
     (5, 0.0, 0, 10, "request_bytes"), (5, 0.0, 10, 0, "reply_bytes")],
)  # fmt: skip
def test_bad_arguments_are_refused(
    tokens: int, draft_s: float, up_bytes: int, reply: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_token_links(np.random.default_rng(0), _cells(2), LinkSettings(),
                         tokens_per_device=tokens, draft_s_per_token=draft_s,
                         request_bytes=up_bytes, reply_bytes=reply)  # fmt: skip
