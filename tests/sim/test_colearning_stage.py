"""The co-learning stage: every scheme through one contract, config errors, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tinylarge.cli.main import app
from tinylarge.config import load_preset
from tinylarge.config.colearning_config import SCHEME_NAMES, ColearningConfig
from tinylarge.integrate.colearning.contract import CoLearning
from tinylarge.sim import RunResult
from tinylarge.sim.colearning_stages import (
    build_scheme,
    check_colearning_config,
    federated_data,
    link_budget,
)


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_every_scheme_meets_the_round_contract(name: str, smoke_result: RunResult) -> None:
    """Conformance kit: each scheme builds from the scenario, runs numbered rounds and
    accounts bytes, airtime and energy consistently with the link budget."""
    data, links = federated_data(smoke_result), link_budget(smoke_result)
    scheme = build_scheme(name, smoke_result, data, links)
    assert isinstance(scheme, CoLearning) and scheme.name == name
    records = scheme.run(2)
    assert [r.round for r in records] == [1, 2]
    for r in records:
        assert 0.0 <= r.accuracy <= 1.0
        assert r.bytes_up > 0 and r.bytes_down > 0 and r.airtime_s > 0
        assert 0 < r.clients <= data.n_devices
        # no byte is free: the fewest slots all those bytes could take, at the fastest link
        fastest = 8 / max(links.uplink_bps.max(), links.downlink_bps.max())
        assert r.airtime_s >= (r.bytes_up + r.bytes_down) * fastest * (1 - 1e-9)
        assert r.device_energy_j > 0 and np.isfinite(r.device_energy_j)
    # the security layer's sessions and headers went into those figures
    assert links.overhead.enabled and links.ledger.sessions > 0
    assert links.ledger.overhead_bytes >= links.overhead.message_bytes * 2 * records[0].clients
    # reproducible (fresh sessions, as a new run would have)
    again = build_scheme(name, smoke_result, data, link_budget(smoke_result)).run(2)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in records]


def test_config_errors_name_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"aggregator = 'krum9' is not registered; known: .*mean"):
        check_colearning_config(
            ColearningConfig.model_validate({"federated": {"aggregator": "krum9"}})
        )
    with pytest.raises(ValueError, match="lists a scheme twice"):
        check_colearning_config(ColearningConfig(schemes=["fedavg", "fedavg"]))
    with pytest.raises(ValueError):
        ColearningConfig.model_validate({"schemes": ["fedsgd"]})


def test_colearn_cli_runs_one_scheme(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["colearn", "--scheme", "fedprox", "--preset", "smoke", "--rounds", "2", "--out"]
    result = CliRunner().invoke(app, [*args, str(out)])
    assert result.exit_code == 0, result.output
    assert "fedprox: per round" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["colearning"]) == ["fedprox"]
    assert metrics["colearning"]["fedprox"]["rounds"] == 2
    assert "policies" not in metrics and "security" not in metrics  # only what the scheme needs
    bad = CliRunner().invoke(app, ["colearn", "--scheme", "fedsgd", "--preset", "smoke"])
    assert bad.exit_code == 2 and "choose one of: fedavg" in bad.output
    assert load_preset("smoke").colearning.enabled
