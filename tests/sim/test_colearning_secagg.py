"""The co-learning stage with `[colearning.secure_aggregation]`: metrics, report, config checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tinylarge.cli.colearn import scenario_for_scheme
from tinylarge.config import scenario_from_table
from tinylarge.config.colearning_config import ColearningConfig
from tinylarge.config.loading import scenario_to_table
from tinylarge.models.cache import ModelCache
from tinylarge.report import write
from tinylarge.sim import RunResult
from tinylarge.sim.colearning_stages import check_colearning_config, colearning_stage
from tinylarge.sim.progress import SilentReporter
from tinylarge.sim.stages import StageContext


def test_smoke_fedavg_with_secagg_writes_its_metrics(
    smoke_result: RunResult, tmp_path: Path
) -> None:
    """The co-learning stage on the smoke run's state with FedAvg under SecAgg+ (20 % of the
    clients dropping out): its metrics in ``metrics.json`` and its lines in the report."""
    table = scenario_to_table(smoke_result.scenario)
    table["colearning"]["secure_aggregation"] = {  # type: ignore[index]
        "enabled": True, "dropout_fraction": 0.2
    }  # fmt: skip
    state = copy.copy(smoke_result)
    state.scenario = scenario_for_scheme(scenario_from_table(table, "smoke-secagg"), "fedavg", 2)
    state.colearning, state.skipped, state.warnings = {}, {}, {}
    colearning_stage(state, StageContext(ModelCache(tmp_path / "cache"), SilentReporter()))
    report = write(state, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    sa = metrics["colearning"]["fedavg"]["secure_aggregation"]
    clients = state.scenario.colearning.federated.clients_per_round  # 5 in the smoke preset
    assert sa["clients"] == 2 * clients and sa["dropped"] == 2 * round(0.2 * clients)
    assert sa["bytes_per_client"] > sa["plain_bytes_per_client"] > 0
    # within the fixed-point step of plain FedAvg (4 included clients, float32 weights)
    assert 0 < sa["max_abs_error_vs_plain"] <= 4 * sa["quantization_step"] + 1e-6
    assert "Secure aggregation (SecAgg+" in Path(report).read_text()


def test_secagg_config_errors_say_what_is_allowed() -> None:
    def config(federated: dict[str, object], secure: dict[str, object]) -> ColearningConfig:
        return ColearningConfig.model_validate(
            {"federated": federated, "secure_aggregation": {"enabled": True, **secure}}
        )

    with pytest.raises(ValueError, match="aggregator = 'mean' and compression = 'none'"):
        check_colearning_config(config({"compression": "topk"}, {}))
    with pytest.raises(ValueError, match="every round would abort"):
        check_colearning_config(config({"clients_per_round": 10}, {"dropout_fraction": 0.6}))
    with pytest.raises(ValueError, match=r"must lie in \[2, 1024\]"):
        check_colearning_config(config({"clients_per_round": 2000}, {}))
    with pytest.raises(ValueError, match="num_shares must be odd"):
        config({}, {"num_shares": 10})
    check_colearning_config(config({}, {"dropout_fraction": 0.3}))  # the defaults work
