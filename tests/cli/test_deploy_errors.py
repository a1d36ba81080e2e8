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


def test_enroll_only_makes_private_keys_and_a_public_registry(tmp_path: Path) -> None:
    from tinylarge.deploy.keys import load_identities, load_registry

    run = tmp_path / "run"
    first: list[bytes] = []
    for n in (3, 5):  # enrolling more keeps the keys made before
        result = CliRunner().invoke(app, ["fleet", str(run), "--devices", str(n), "--enroll-only"])
        assert result.exit_code == 0, result.output
        identities = load_identities(run / "deploy" / "devices.json")
        first = first or [i.sign(b"m") for i in identities]
    assert [i.sign(b"m") for i in identities[:3]] == first
    assert [i.device_id for i in identities] == [f"device-{k:05d}" for k in range(5)]
    assert (run / "deploy" / "devices.json").stat().st_mode & 0o777 == 0o600
    registry = load_registry(run / "deploy" / "registry.json")
    assert len(registry) == 5 and registry.public_key("device-00004") == identities[4].public_key
