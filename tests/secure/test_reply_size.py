"""The edge's reply size: one definition for the simulator and the deployment."""

from __future__ import annotations

import pytest

from tinylarge.config import load_preset
from tinylarge.secure.messages import reply_payload_bytes
from tinylarge.sim.state import RunState


def test_reply_carries_request_id_class_and_one_int8_logit_per_class() -> None:
    assert reply_payload_bytes(8) == 4 + 1 + 8
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        reply_payload_bytes(1)


def test_the_scenario_value_wins_over_the_derived_size() -> None:
    scenario = load_preset("smoke")
    assert scenario.network.traffic.reply_bytes is None  # default: what the server sends
    fixed = scenario.model_copy(
        update={
            "network": scenario.network.model_copy(
                update={"traffic": scenario.network.traffic.model_copy(update={"reply_bytes": 8})}
            )
        }
    )
    assert RunState(scenario=fixed).reply_bytes() == 8
