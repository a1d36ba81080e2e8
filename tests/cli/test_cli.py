from __future__ import annotations

import json
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from tinylarge.cli.main import app
from tinylarge.config import load_preset, scenario_from_table

runner = CliRunner()


def test_presets_lists_default_and_smoke() -> None:
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0
    assert "default" in result.output and "smoke" in result.output


def test_config_show_prints_toml_that_loads_back() -> None:
    result = runner.invoke(app, ["config", "show", "--preset", "smoke"])
    assert result.exit_code == 0
    assert scenario_from_table(tomllib.loads(result.output), "stdout") == load_preset("smoke")
    default = runner.invoke(app, ["config", "show"])
    assert scenario_from_table(tomllib.loads(default.output), "stdout") == load_preset("default")


def test_errors_are_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["run", "--preset", "nope"])
    assert unknown.exit_code == 2
    assert "unknown preset 'nope'" in unknown.output
    assert "Traceback" not in unknown.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[task.radio]\nsnr_db_step = 0\n")
    result = runner.invoke(app, ["config", "show", "--config", str(bad)])
    assert result.exit_code == 2
    assert "task.radio.snr_db_step = 0" in result.output
    both = runner.invoke(app, ["run", "--preset", "smoke", "--config", str(bad)])
    assert both.exit_code == 2 and "not both" in both.output


def test_run_smoke_writes_a_run_directory_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--preset", "smoke", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"Report: {out / 'report.html'}" in " ".join(result.output.split())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scenario"] == {"name": "smoke", "seed": 3}
    assert "Results" in result.output
    again = runner.invoke(app, ["run", "--preset", "smoke", "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
