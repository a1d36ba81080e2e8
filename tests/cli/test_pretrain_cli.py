"""`tinylarge pretrain`: the settings it builds, the command line it records, resuming and its
clear errors."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from tinylarge.cli import pretrain as pretrain_cli
from tinylarge.cli.main import app
from tinylarge.models.checkpoints import CONFIG_FILE, TRAINER_STATE_FILE
from tinylarge.models.pretraining import loop
from tinylarge.models.pretraining.loop import PretrainConfig, PretrainResult

runner = CliRunner()
SHIPPED = (
    "tinylarge pretrain --size s --steps 8000 --batch-size 128 --seed 0 "
    "--out src/tinylarge/models/pretrained/rf_transformer_s"
)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[dict[str, Any]]]:
    """Replace the loop by a recorder of what the command asks of it (in ``tmp_path``)."""
    calls: list[dict[str, Any]] = []

    def fake(config: PretrainConfig, directory: Path, **options: Any) -> PretrainResult:
        calls.append({"config": config, "directory": directory, **options})
        return PretrainResult(Path(directory), config.steps, config.steps * config.batch_size,
                              0.25, 0.5, 1.0, 0, 800_921, [])  # fmt: skip

    monkeypatch.setattr(loop, "pretrain", fake)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()  # --threads sets them for the whole process
    yield calls
    torch.set_num_threads(threads)


def test_the_shipped_command_builds_the_shipped_config_and_records_itself(
    recorded: list[dict[str, Any]],
) -> None:
    result = runner.invoke(app, SHIPPED.split()[1:])
    assert result.exit_code == 0, result.output
    (call,) = recorded
    expected = PretrainConfig(size="s", steps=8000, batch_size=128, seed=0)
    assert call["config"].to_dict() == expected.to_dict()
    assert call["command"] == SHIPPED
    assert str(call["directory"]) == "src/tinylarge/models/pretrained/rf_transformer_s"
    assert "0.2500 vs 0.5000 predicting zeros (50.0% below)" in result.output


def test_the_options_default_to_the_configs_defaults() -> None:
    parameters = inspect.signature(pretrain_cli.pretrain).parameters
    config_defaults = {f.name: f.default for f in fields(PretrainConfig)}
    for name, default in pretrain_cli.DEFAULTS.items():
        assert parameters[name].default == default == config_defaults[name], name
    others = {"out", "workers", "address", "threads", "task", *pretrain_cli.TEXT_ONLY}
    assert set(pretrain_cli.DEFAULTS) == set(parameters) - others


def test_the_same_settings_give_the_same_command_line(recorded: list[dict[str, Any]]) -> None:
    given = [
        ["--out", "run/", "--steps", "10", "--size", "s"],
        ["--size", "s", "--steps", "10", "--learning-rate", "0.002", "--warmup-steps", "300",
         "--mask-ratio", "0.3", "--batch-size", "128", "--seed", "0", "--out", "run"],
        ["--steps", "10", "--out", "./run", "--threads", "1"],
    ]  # fmt: skip
    for argv in given:
        assert runner.invoke(app, ["pretrain", *argv]).exit_code == 0
    expected = "tinylarge pretrain --size s --steps 10 --batch-size 128 --seed 0 --out run"
    assert [call["command"] for call in recorded] == [expected] * 3
    other = ["--steps", "10", "--learning-rate", "1e-3", "--mask-ratio", "0.25", "--out", "run"]
    assert runner.invoke(app, ["pretrain", *other]).exit_code == 0
    assert recorded[-1]["command"] == (
        "tinylarge pretrain --size s --steps 10 --batch-size 128 --learning-rate 0.001 "
        "--mask-ratio 0.25 --seed 0 --out run"
    )
    assert recorded[-1]["config"].learning_rate == 1e-3
    assert recorded[-1]["config"].mask_ratio == 0.25


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "xxl"], "unknown size 'xxl'; sizes: xs, s, m, l, xl"),
        (["--mask-ratio", "1.0"], "--mask-ratio must lie in (0, 1), got 1.0"),
        (["--learning-rate", "0"], "0 < learning_rate <= 1"),
        (["--workers", "3", "--batch-size", "16"], "batch_size (16) must be divisible by the 3"),
    ],
)
def test_bad_settings_fail_with_one_clear_line(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    result = runner.invoke(app, ["pretrain", "--out", str(tmp_path / "run"), *argv])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


class _Stop(Exception):
    pass


def _leave_state(directory: Path, config: PretrainConfig, after: int) -> None:
    """``trainer_state.pt`` of ``config`` at step ``after``, as a killed run leaves it."""

    def stop(step: int, *_: float) -> None:
        if step == after:
            raise _Stop

    with pytest.raises(_Stop):
        loop.pretrain(config, directory, progress=stop)


@pytest.mark.slow
def test_it_resumes_a_killed_run_and_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["pretrain", "--size", "xs", "--steps", "4", "--batch-size", "8", "--out", str(out)]
    config = PretrainConfig(size="xs", steps=4, batch_size=8, checkpoint_every_steps=1)
    _leave_state(out, config, after=2)
    other = runner.invoke(app, [*argv, "--mask-ratio", "0.5"])
    assert other.exit_code == 2
    assert "belongs to a run with other settings (mask_ratio=0.3; now mask_ratio=0.5" in (
        " ".join(other.output.split())
    )
    assert (out / TRAINER_STATE_FILE).is_file()  # left for the right settings
    resumed = runner.invoke(app, argv)
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming from step 2 ({out})" in " ".join(resumed.output.split())
    recorded = json.loads((out / CONFIG_FILE).read_text())["pretraining"]
    assert [step for step, _ in recorded["train_loss"]] == [1, 2, 3, 4]
    assert (
        recorded["command"]
        == f"tinylarge pretrain --size xs --steps 4 --batch-size 8 --seed 0 --out {out}"
    )
    output = " ".join(resumed.output.split())
    assert f"checkpoint: {out}" in output and "steps: 4 (resumed from 2), frames: 32" in output
    again = runner.invoke(app, argv)
    assert again.exit_code == 2
    assert "already holds a finished checkpoint" in " ".join(again.output.split())
