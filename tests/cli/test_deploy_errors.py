"""The deployment commands fail early with what was wrong and what to do (no broker needed)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tinylarge.cli.main import app


def test_a_bad_broker_url_says_the_form() -> None:
    result = CliRunner().invoke(app, ["serve", ".", "--broker", "tcp://x:1"])
    assert result.exit_code == 2
    assert "expected mqtt://HOST:PORT" in " ".join(result.output.split())


def test_serve_and_fleet_need_a_run_directory(tmp_path: Path) -> None:
    for command in ("serve", "fleet"):
        result = CliRunner().invoke(app, [command, str(tmp_path)])
        assert result.exit_code == 2, command
        said = " ".join(result.output.split())  # rich wraps long lines
        assert "is not a complete run directory: no scenario.toml" in said
        assert "tinylarge run --out DIR" in said
