"""`tinylarge pretrain --task text`: a toy run end to end, the recorded command, --epochs,
distillation from a --teacher and the clear errors for options of the other task."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tinylarge.cli.main import app

runner = CliRunner()


@pytest.fixture
def corpus(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "corpus.txt"
    paragraphs = [f"Paragraph {i}: the sum of {i} and {i + 1} is {2 * i + 1}." for i in range(200)]
    path.write_text("\n\n".join(paragraphs), encoding="utf-8")
    threads = torch.get_num_threads()
    yield path
    torch.set_num_threads(threads)


def test_a_toy_run_writes_a_loadable_checkpoint_and_records_its_command(
    corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lm"
    argv = ["pretrain", "--task", "text", "--size", "toy", "--corpus", str(corpus),
            "--vocab", "300", "--steps", "3", "--batch-size", "2", "--out", str(out),
            "--threads", "1"]  # fmt: skip
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "held-out perplexity" in result.output
    document = json.loads((out / "config.json").read_text())
    training = document["training"]
    assert training["command"] == (
        "tinylarge pretrain --task text --size toy --steps 3 --batch-size 2 --learning-rate "
        f"0.002 --warmup-steps 300 --seed 0 --vocab 300 --corpus {corpus} --out {out} "
        "--threads 1"
    )
    assert training["corpus"]["documents"] == 200 and training["corpus"]["held_out_every"] == 20
    assert training["tokens_seen"] == 3 * 2 * 64
    assert document["architecture"]["vocab_size"] <= 300
    again = runner.invoke(app, argv)
    assert again.exit_code == 2
    assert "already holds a finished checkpoint" in " ".join(again.output.split())


def test_epochs_set_the_steps(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "lm"
    argv = ["pretrain", "--task", "text", "--size", "toy", "--corpus", str(corpus), "--vocab",
            "300", "--epochs", "0.5", "--batch-size", "4", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["steps"] == math.ceil(0.5 * training["train_tokens"] / (4 * 64))
    assert training["epochs"] >= 0.5


def test_a_distilled_run_uses_the_teachers_tokenizer_and_records_the_teacher(
    corpus: Path, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher"
    common = ["pretrain", "--task", "text", "--size", "toy", "--corpus", str(corpus),
              "--steps", "3", "--batch-size", "2", "--threads", "1"]  # fmt: skip
    made = runner.invoke(app, [*common, "--vocab", "280", "--out", str(teacher)])
    assert made.exit_code == 0, made.output
    out = tmp_path / "student"
    argv = [*common, "--seed", "1", "--teacher", str(teacher), "--distill-weight", "0.5",
            "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "against the teacher: KL" in result.output
    document = json.loads((out / "config.json").read_text())
    teacher_document = json.loads((teacher / "config.json").read_text())
    training = document["training"]
    assert training["command"] == (
        "tinylarge pretrain --task text --size toy --steps 3 --batch-size 2 --learning-rate "
        f"0.002 --warmup-steps 300 --seed 1 --corpus {corpus} --teacher {teacher} "
        f"--distill-weight 0.5 --out {out} --threads 1"
    )
    assert training["distillation"]["teacher"] == str(teacher)
    assert training["distillation"]["distill_weight"] == 0.5
    assert training["distillation"]["teacher_weights_sha256"] == teacher_document["weights_sha256"]
    assert document["tokenizer_sha256"] == teacher_document["tokenizer_sha256"]
    assert (out / "tokenizer.json").read_bytes() == (teacher / "tokenizer.json").read_bytes()
    other = runner.invoke(app, [*common, "--vocab", "270", "--out", str(tmp_path / "other")])
    assert other.exit_code == 0, other.output
    refused = runner.invoke(app, [*common, "--teacher", str(teacher), "--tokenizer",
                                  str(tmp_path / "other" / "tokenizer.json"),
                                  "--out", str(tmp_path / "refused")])  # fmt: skip
    assert refused.exit_code == 2
    assert "the student's tokenizer" in " ".join(refused.output.split())
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vocab", "512"], "--vocab only apply to --task text"),
        (["--teacher", "builtin"], "--teacher only apply to --task text"),
        (["--distill-weight", "0.5"], "--distill-weight only apply to --task text"),
        (["--task", "text", "--size", "toy", "--distill-weight", "0.5"],
         "--distill-weight needs --teacher"),
        (["--task", "text", "--size", "toy", "--teacher", "builtin", "--vocab", "512"],
         "--vocab does not apply with --teacher"),
        (["--task", "text", "--size", "toy", "--teacher", "builtin", "--distill-weight", "1.5"],
         "Invalid value for '--distill-weight': Input should be less than or equal to"),
        (["--task", "text", "--size", "toy", "--teacher", "no/such/dir"],
         "teacher 'no/such/dir' is not a directory"),
        (["--epochs", "2"], "--epochs only apply to --task text"),
        (["--task", "text", "--size", "draft", "--mask-ratio", "0.5"],
         "--mask-ratio only applies to --task radio"),
        (["--task", "text"], "--task text needs --size toy, draft or target (got 's')"),
        (["--task", "text", "--size", "toy", "--steps", "5", "--epochs", "1"],
         "give --steps or --epochs, not both"),
        (["--task", "text", "--size", "toy", "--workers", "2"], "--workers and --address"),
        (["--task", "text", "--size", "toy", "--corpus", "missing.txt"], "does not exist"),
    ],
)  # fmt: skip
def test_options_of_the_other_task_fail_clearly(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    result = runner.invoke(app, ["pretrain", "--out", str(tmp_path / "run"), *argv])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()
