"""A legitimate scenario whose models learn nothing and whose devices reach no server must still
run to the end: every part that cannot work says why (reporter, metrics, report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinylarge.config import load_preset, scenario_from_table
from tinylarge.config.loading import scenario_to_table
from tinylarge.models.cache import ModelCache
from tinylarge.net.profiles import RADIO_PROFILES
from tinylarge.sim import SilentReporter, run
from tinylarge.sim.state import RunState


class Recorder(SilentReporter):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def part_skipped(self, path: str, reason: str) -> None:
        self.events.append(("skipped", path, reason))

    def part_warning(self, path: str, message: str) -> None:
        self.events.append(("warning", path, message))


def _nothing_to_learn(tmp_path: Path) -> dict[str, Any]:
    """Frames that are all zeros (no model can tell the classes apart: every model answers the
    majority class on every frame, on any CPU) and a radio no device can use."""
    rng = np.random.default_rng(0)

    def labels(n: int) -> np.ndarray:
        return (rng.random(n) < 0.1).astype(np.int64)  # 90 % class 0

    np.savez(
        tmp_path / "zeros.npz",
        x_train=np.zeros((600, 2, 128), np.float32),
        y_train=labels(600),
        x_test=np.zeros((200, 2, 128), np.float32),
        y_test=labels(200),
    )
    dead = {k: v for k, v in RADIO_PROFILES["redcap"].model_dump().items() if v is not None}
    dead.update(device_tx_power_dbm=-200.0, bs_tx_power_dbm=-200.0)  # below any noise floor
    table = scenario_to_table(load_preset("smoke"))
    table["task"] = {"name": "npz", "npz": {"path": str(tmp_path / "zeros.npz")}}
    table["devices"] = {"count": 10, "partition": "iid"}
    table["network"] = {"profile": "dead", "custom_profiles": {"dead": dead}}
    table["policies"] = {"validation_frames": 300}
    return table


@pytest.fixture(scope="module")
def useless(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunState, Recorder]:
    tmp = tmp_path_factory.mktemp("nothing-to-learn")
    recorder = Recorder()
    scenario = scenario_from_table(_nothing_to_learn(tmp), "nothing-to-learn")
    return run(scenario, cache=ModelCache(tmp / "cache"), reporter=recorder), recorder


def test_the_run_completes_and_says_what_it_left_out(
    useless: tuple[RunState, Recorder],
) -> None:
    result, recorder = useless
    for role in ("large", "tiny"):  # the premise: constant answers, the large model fixes none
        assert np.unique(result.logits[role].argmax(1)).tolist() == [0], role
    assert (
        "cannot train the router: the large model fixes 0 of" in result.skipped["policies.router"]
    )
    for scheme in result.scenario.colearning.schemes:
        assert "reach" in result.skipped[f"colearning.{scheme}"], scheme
    assert "no device can reach the server" in result.skipped["security.aggregation_under_attack"]
    # every other part ran: the stages after the policies too
    assert set(result.timings_s) >= {"policies", "colearning", "security"}
    outcomes = result.require_policies().outcomes
    assert {"tiny", "large", "cascade", "oracle"} <= set(outcomes) and "router" not in outcomes
    assert result.security is not None and result.security.fuzz.messages > 0
    assert result.security.aggregation_under_attack is None
    # constant confidence: every frame ties, the 40 % offload target cannot be met
    assert "offloads 0% of them" in result.warnings["policies.cascade"]
    noted = {(kind, path) for kind, path, _ in recorder.events}
    assert noted == {("skipped", p) for p in result.skipped} | {
        ("warning", p) for p in result.warnings
    }


def test_skipped_parts_are_in_the_metrics_and_the_report(
    useless: tuple[RunState, Recorder], tmp_path: Path
) -> None:
    import json

    from tinylarge.report import write

    result, _ = useless
    report = write(result, tmp_path / "run").read_text()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    reason = result.skipped["policies.router"]
    assert metrics["policies"]["router"] == {"skipped": reason}
    assert metrics["skipped"] == result.skipped and metrics["warnings"] == result.warnings
    assert metrics["policies"]["cascade"]["warning"] == result.warnings["policies.cascade"]
    assert metrics["policies"]["cascade"]["accuracy"] >= 0  # its numbers stay beside it
    assert metrics["colearning"]["fedavg"] == {"skipped": result.skipped["colearning.fedavg"]}
    assert "Parts of this run were left out" in report
    assert reason in report and "<code>colearning.closed_loop</code>" in report


def test_a_skip_names_a_section_and_a_part() -> None:
    state = RunState(scenario=load_preset("smoke"))
    with pytest.raises(ValueError, match=r"must be '<section>\.<part>', got 'router'"):
        state.skip("router", "why")
    state.skip("policies.router", "why")
    assert state.skipped == {"policies.router": "why"}
