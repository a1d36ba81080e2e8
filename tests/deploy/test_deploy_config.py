"""The scenario's ``[deploy]`` section: the one home of the edge's batching, the reply deadline,
QoS and the fleet's processes, read by the simulator's edge model and the deployment alike."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tinylarge.config import Scenario, ScenarioError, load_preset, scenario_from_table
from tinylarge.config.deploy_config import DeployConfig, with_overrides
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.server import ServerConfig
from tinylarge.deploy.twin import deployed_edge
from tinylarge.sim.net_stages import edge_service
from tinylarge.sim.state import RunState


def test_defaults_keep_the_simulators_batching_and_the_cli_reply_deadline() -> None:
    deploy = Scenario().deploy
    assert (deploy.edge_max_batch, deploy.edge_max_wait_s) == (64, 0.002)
    assert (deploy.reply_deadline_s, deploy.qos, deploy.processes) == (0.5, 1, 1)
    # the policies' planning deadline is another concept, and keeps its value
    assert Scenario().policies.deadline_s == 0.05


def test_the_processes_start_from_the_sections_defaults() -> None:
    deploy = DeployConfig()
    server = ServerConfig((2, 128), 0.1, 0, 8)
    assert (server.max_batch, server.max_wait_s, server.qos) == (
        deploy.edge_max_batch, deploy.edge_max_wait_s, deploy.qos,
    )  # fmt: skip
    assert (FleetConfig().deadline_s, FleetConfig().qos) == (deploy.reply_deadline_s, deploy.qos)


def test_the_simulators_edge_and_the_twin_read_the_same_values() -> None:
    scenario = scenario_from_table(
        {"deploy": {"edge_max_batch": 8, "edge_max_wait_s": 0.01}}, "test"
    )
    simulated = edge_service(RunState(scenario=scenario))
    assert (simulated.max_batch, simulated.max_wait_s) == (8, 0.01)
    twin = deployed_edge({"setup_s": 0.001, "per_item_s": 0.0002}, scenario.deploy)
    assert (twin.max_batch, twin.max_wait_s, twin.setup_s) == (8, 0.01, 0.001)
    default = edge_service(RunState(scenario=load_preset("smoke")))
    assert (default.max_batch, default.max_wait_s) == (64, 0.002)  # smoke's numbers unchanged


def test_bad_values_name_the_key_the_value_and_what_is_allowed() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_from_table(
            {"deploy": {"edge_max_batch": 0, "qos": 2, "reply_deadline_s": -1.0, "batch": 3}},
            "my.toml",
        )
    message = str(info.value)
    assert "deploy.edge_max_batch = 0" in message and "allowed: >= 1" in message
    assert "deploy.qos = 2: Input should be 0 or 1" in message
    assert "deploy.reply_deadline_s = -1.0" in message and "allowed: > 0.0" in message
    assert "deploy.batch: unknown key; allowed keys here: edge_max_batch" in message


def test_the_moved_key_says_where_it_went() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_from_table({"network": {"edge_max_batch": 16}}, "old.toml")
    message = str(info.value)
    assert "network.edge_max_batch has moved to deploy.edge_max_batch" in message
    assert "[deploy] edge_max_batch = 16" in message


def test_options_override_the_section_and_are_checked_like_it() -> None:
    config = DeployConfig()
    changed = with_overrides(
        config, "options", {"edge_max_batch": 4, "reply_deadline_s": 0.2, "qos": None}
    )
    assert (changed.edge_max_batch, changed.reply_deadline_s, changed.qos) == (4, 0.2, 1)
    assert with_overrides(config, "options", {}) == config  # nothing given: unchanged
    with pytest.raises(ScenarioError, match=r"invalid scenario in --flags:\n  - qos = 3"):
        with_overrides(config, "--flags", {"qos": 3})
    with pytest.raises(ScenarioError, match=r"unknown \[deploy\] key\(s\) \['max_batch'\]"):
        with_overrides(config, "--flags", {"max_batch": 3})


def test_config_show_shows_the_section() -> None:
    from tinylarge.cli.main import app

    result = CliRunner().invoke(app, ["config", "show", "--preset", "smoke"])
    assert result.exit_code == 0, result.output
    section = result.output.split("[deploy]\n", 1)[1]
    assert "edge_max_batch = 64\n" in section and "reply_deadline_s = 0.5\n" in section
