"""Token streams over the cell: one device by hand, closed loop, skipped tokens, deadlines."""

from __future__ import annotations

import math
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
from tinylarge.net.cell import CellDevices
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.sim.hybrid_lm_network import (
    TokenLink,
    TokenSchedule,
    simulate_token_streams,
    stream_positions,
)

NO_FADING = LinkSettings(fading="none", bler_target=0.0, max_transmissions=1)
EDGE = EdgeServiceModel(setup_s=0.001, per_item_s=0.0005, max_batch=8, max_wait_s=None)
S_PER_MAC, J_PER_MAC = 1e-8, 2e-9


def _cells(snr_db: list[float]) -> CellDevices:
    cells = attach_devices(np.random.default_rng(0), radio_profile("redcap"), len(snr_db))
    topo = replace(cells.topology, d_2d_m=np.full(len(snr_db), 150.0))
    snr = np.asarray(snr_db, dtype=np.float64)
    return replace(cells, topology=topo, uplink_mean_snr_db=snr, downlink_mean_snr_db=snr + 10)


def _schedule(upload: list[bool], payload: int = 300, macs: int = 100_000) -> TokenSchedule:
    up = np.array(upload)
    return TokenSchedule(up, np.full(up.size, payload, np.int64), reply_bytes=3, draft_macs=macs)


def test_one_device_token_by_token_matches_the_cell_model_by_hand() -> None:
    """Two tokens, the first sent and the second kept: the first waits for its reply, the second
    is drafting only, and the second starts when the first is final."""
    link = TokenLink(_cells([10.0]), NO_FADING, EDGE, reply_deadline_s=1.0)
    streams = simulate_token_streams(
        np.random.default_rng(5), _schedule([True, False]), link,
        tokens_per_device=2, seconds_per_mac=S_PER_MAC, joules_per_mac=J_PER_MAC,
    )  # fmt: skip
    draft_s = 100_000 * S_PER_MAC
    alone = send_messages(
        np.random.default_rng(5), link.cells, NO_FADING, EDGE,
        device=[0], arrival_s=[draft_s], bytes_up=300, bytes_down=3,
    )  # fmt: skip
    assert streams.latency_s[0, 0] == pytest.approx(draft_s + alone.latency_s[0], rel=1e-12)
    assert streams.latency_s[0, 1] == pytest.approx(draft_s)
    assert streams.energy_j[0, 0] == pytest.approx(100_000 * J_PER_MAC + alone.energy_j[0])
    assert streams.energy_j[0, 1] == pytest.approx(100_000 * J_PER_MAC)
    assert streams.uploaded.tolist() == [[True, False]]
    assert streams.bytes_up.tolist() == [[300, 0]] and streams.bytes_down.tolist() == [[3, 0]]
    figures = streams.summary()
    assert figures["tokens_per_s"] == pytest.approx(2 / streams.latency_s.sum())
    assert figures["sent_fraction"] == 0.5
    assert figures["bytes_per_token"] == pytest.approx((300 + 3) / 2)


def test_skipping_uploads_raises_tokens_per_second_and_cuts_bytes() -> None:
    link = TokenLink(_cells([0.0] * 4), NO_FADING, EDGE, reply_deadline_s=1.0)
    rng_seed = 3
    every = simulate_token_streams(
        np.random.default_rng(rng_seed), _schedule([True] * 10), link,
        tokens_per_device=20, seconds_per_mac=S_PER_MAC, joules_per_mac=J_PER_MAC,
    ).summary()  # fmt: skip
    half = simulate_token_streams(
        np.random.default_rng(rng_seed), _schedule([True, False] * 5), link,
        tokens_per_device=20, seconds_per_mac=S_PER_MAC, joules_per_mac=J_PER_MAC,
    ).summary()  # fmt: skip
    assert half["sent_fraction"] == pytest.approx(0.5)
    assert half["tokens_per_s"] > 1.5 * every["tokens_per_s"]
    assert half["bytes_per_token"] == pytest.approx(every["bytes_per_token"] / 2)
    assert half["device_energy_per_token_j"] < every["device_energy_per_token_j"]


def test_a_device_out_of_coverage_keeps_its_draft_and_llm_only_waits_its_deadline() -> None:
    link = TokenLink(_cells([-40.0]), NO_FADING, EDGE, reply_deadline_s=0.25)
    args = dict(tokens_per_device=4, seconds_per_mac=S_PER_MAC, joules_per_mac=J_PER_MAC)
    hybrid = simulate_token_streams(np.random.default_rng(0), _schedule([True, False]), link,
                                    **args)  # fmt: skip
    # no grant, nothing on air: the device knows at once and keeps its draft unverified
    assert hybrid.fallback.tolist() == [[True, False, True, False]]
    assert not hybrid.timed_out.any() and not hybrid.uploaded.any()
    np.testing.assert_allclose(hybrid.latency_s, 100_000 * S_PER_MAC)
    assert hybrid.bytes_up.sum() == 0 and hybrid.bytes_down.sum() == 0
    # without a model on the device there is nothing to fall back on: it waits its deadline
    llm_only = simulate_token_streams(
        np.random.default_rng(0), _schedule([True, True], macs=0), link, **args
    )
    assert llm_only.timed_out.all() and not llm_only.fallback.any()
    np.testing.assert_allclose(llm_only.latency_s, 0.25)
    assert llm_only.summary()["timed_out_fraction"] == 1.0


def test_the_protocol_overhead_adds_its_bytes_to_every_sent_token() -> None:
    overhead = ProtocolOverhead(message_bytes=29, device_s_per_byte=1e-7, device_j_per_byte=1e-9)
    plain = TokenLink(_cells([10.0]), NO_FADING, EDGE, reply_deadline_s=1.0)
    sealed = replace(plain, overhead=overhead)
    args = dict(tokens_per_device=2, seconds_per_mac=S_PER_MAC, joules_per_mac=J_PER_MAC)
    a = simulate_token_streams(np.random.default_rng(1), _schedule([True, True]), plain, **args)
    b = simulate_token_streams(np.random.default_rng(1), _schedule([True, True]), sealed, **args)
    assert (b.bytes_up - a.bytes_up).tolist() == [[29, 29]]
    assert (b.bytes_down - a.bytes_down).tolist() == [[29, 29]]
    # sealing and opening take time (slots can absorb some of it)
    assert (b.latency_s >= a.latency_s).all() and b.latency_s.sum() > a.latency_s.sum()


def test_stream_positions_spread_devices_over_the_trace() -> None:
    positions = stream_positions(10, 2, 7)
    assert positions.tolist() == [[0, 1, 2, 3, 4, 5, 6], [5, 6, 7, 8, 9, 0, 1]]
    with pytest.raises(ValueError, match="must be >= 1"):
        stream_positions(0, 1, 1)


def test_a_schedule_with_mismatched_arrays_is_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        TokenSchedule(np.ones(3, bool), np.ones(2, np.int64), reply_bytes=3, draft_macs=1)
    assert math.isfinite(_schedule([True]).payload_up[0])
