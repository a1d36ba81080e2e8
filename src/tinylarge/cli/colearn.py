"""`tinylarge colearn`: run one co-learning scheme alone (with the stages it needs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from tinylarge.config import Scenario

#: Stages a co-learning scheme does not need: the inference policies and the security study.
SKIPPED_STAGES = ("split_exit", "policies", "security")


def scenario_for_scheme(scenario: Scenario, scheme: str, rounds: int | None) -> Scenario:
    """``scenario`` with co-learning enabled for ``scheme`` only (and ``rounds`` if given)."""
    config = scenario.colearning
    update: dict[str, Any] = {"enabled": True, "schemes": [scheme]}
    if rounds is not None:
        if scheme == "closed_loop":
            update["closed_loop"] = config.closed_loop.model_copy(update={"rounds": rounds})
        else:
            update["rounds"] = rounds
    colearning = type(config).model_validate({**config.model_dump(), **update})
    return scenario.model_copy(update={"colearning": colearning})


def rounds_table(scheme: str, summary: dict[str, Any]) -> Table:
    """Per-round accuracy, bytes, airtime and energy of one scheme."""
    table = Table(title=f"{scheme}: per round")
    columns = ["round", "accuracy", "KiB up", "KiB down", "airtime (s)", "device energy (J)"]
    loop = "offload_fraction" in summary
    if loop:
        columns.append("offloaded")
    for column in columns:
        table.add_column(column, justify="right")
    for i in range(summary["rounds"]):
        row = [
            str(i + 1),
            f"{100 * summary['accuracy'][i]:.1f} %",
            f"{summary['bytes_up'][i] / 1024:,.1f}",
            f"{summary['bytes_down'][i] / 1024:,.1f}",
            f"{summary['airtime_s'][i]:.3f}",
            f"{summary['device_energy_j'][i]:.4f}",
        ]
        if loop:
            row.append(f"{100 * summary['offload_fraction'][i]:.1f} %")
        table.add_row(*row)
    return table


def run_colearn(scenario: Scenario, run_dir: Path, *, no_cache: bool) -> tuple[Path, Any]:
    """Run the stages up to the network, then the scheme; write the run directory."""
    from tinylarge.cli.common import console
    from tinylarge.cli.reporter import RichReporter
    from tinylarge.models.cache import ModelCache
    from tinylarge.report import write
    from tinylarge.sim import run as run_pipeline
    from tinylarge.sim.pipeline import PIPELINE

    stages = tuple(s for s in PIPELINE if s.name not in SKIPPED_STAGES)
    with RichReporter(console) as reporter:
        result = run_pipeline(
            scenario, cache=ModelCache(enabled=not no_cache), reporter=reporter, stages=stages
        )
    return write(result, run_dir), result
