"""`tinylarge pretrain`: self-supervised pretraining of the RF foundation model into a checkpoint
directory, in this process or data-parallel on Ray Train (``--workers``, ``--address``); with
``--task text``, a draft or target language model (`tinylarge.cli.pretrain_text`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tinylarge.cli.common import console, errors_as_failures, fail, step_progress

if TYPE_CHECKING:
    from tinylarge.cli.pretrain_text import TextOptions
    from tinylarge.models.pretraining.loop import PretrainConfig, PretrainResult


#: Defaults of the options, equal to `PretrainConfig`'s (checked by the tests).
DEFAULTS: dict[str, object] = {"size": "s", "steps": 6000, "batch_size": 128,
                               "learning_rate": 2e-3, "warmup_steps": 300, "mask_ratio": 0.3,
                               "seed": 0}  # fmt: skip
_ALWAYS_SHOWN = ("size", "steps", "batch_size", "seed")
#: Options of ``--task text`` only (radio pretraining refuses them).
TEXT_ONLY = ("corpus", "vocab", "epochs", "tokenizer", "teacher", "distill_weight")

TaskOption = Annotated[
    Literal["radio", "text"],
    typer.Option(help="radio: the RF foundation model; text: a language model."),
]
CorpusOption = Annotated[
    list[Path] | None,
    typer.Option(help="Text: UTF-8 files split at blank lines (default: CPython's docs).",
                 dir_okay=False),
]  # fmt: skip
VocabOption = Annotated[int, typer.Option(help="Text: BPE vocabulary size.", min=257)]
EpochsOption = Annotated[
    float | None,
    typer.Option(help="Text: passes over the training tokens (sets the steps).", min=0.0),
]
TokenizerOption = Annotated[
    Path | None,
    typer.Option(help="Text: reuse this tokenizer.json instead of training one.", dir_okay=False),
]
TeacherOption = Annotated[
    str | None,
    typer.Option(
        help="Text: distil from this LM checkpoint dir ('builtin': the shipped target); "
        "its tokenizer is used."
    ),
]
DistillWeightOption = Annotated[
    float,
    typer.Option(
        help="Text, with --teacher: alpha in [0, 1]; loss = alpha KL(teacher || model) + "
        "(1 - alpha) cross-entropy.",
        min=0.0,
        max=1.0,
    ),
]


def command_line(settings: dict[str, object], out: Path, workers: int, address: str | None) -> str:
    """The normalised command line of a run: size, steps, batch size and seed always, the other
    settings only where they differ from the defaults, then ``--out``, ``--workers`` (when not
    1) and ``--address``. The same settings give the same string."""
    words = ["tinylarge", "pretrain"]
    for name, value in settings.items():
        if name in _ALWAYS_SHOWN or value != DEFAULTS[name]:
            text = format(value, "g") if isinstance(value, float) else str(value)
            words += [f"--{name.replace('_', '-')}", text]
    words += ["--out", str(out)]
    if workers != 1:
        words += ["--workers", str(workers)]
    if address is not None:
        words += ["--address", address]
    return " ".join(words)


def _train(
    config: PretrainConfig,
    out: Path,
    *,
    workers: int,
    address: str | None,
    threads: int | None,
    command: str,
) -> PretrainResult:
    """Run `pretrain` (one process) or `pretrain_on_ray` under a progress bar."""
    with step_progress("pretrain") as progress:
        waiting = "starting Ray Train workers" if workers > 1 or address else "starting"
        bar = progress.add_task("pretrain", total=config.steps, status=waiting)

        def show(step: int, steps: int, loss: float, frames_per_s: float) -> None:
            status = f"loss {loss:.4f}  {frames_per_s:,.0f} frames/s"
            progress.update(bar, completed=step, total=steps, status=status)

        if workers == 1 and address is None:
            import torch

            from tinylarge.models.pretraining.loop import pretrain as run_pretrain

            if threads is not None:
                torch.set_num_threads(threads)
            return run_pretrain(config, out, progress=show, command=command)
        from tinylarge.models.pretraining.ray_train import pretrain_on_ray

        return pretrain_on_ray(config, out, workers=workers, address=address, progress=show,
                               command=command, threads=threads)  # fmt: skip


def _check_out(config: PretrainConfig, out: Path) -> None:
    """Say whether ``out`` resumes a killed run; refuse a finished checkpoint or a run with
    other settings."""
    from tinylarge.models.checkpoints import CONFIG_FILE
    from tinylarge.models.pretraining.loop import read_trainer_state

    state = read_trainer_state(config, out)
    if state is not None:
        console.print(f"resuming from step {state['trainer']['step']} ({out})")
    elif (out / CONFIG_FILE).is_file():
        raise fail(f"{out} already holds a finished checkpoint; choose another --out or delete it")


def _print_summary(result: PretrainResult, wall_time_s: float) -> None:
    """What the run made: where, how much, how good against predicting zeros, how long."""
    below = 1.0 - result.final_reconstruction_loss / result.zero_prediction_loss
    console.print(
        f"checkpoint: [bold]{result.directory}[/] ({result.parameters:,} parameters)\n"
        f"steps: {result.steps:,} (resumed from {result.resumed_from_step:,}), frames: "
        f"{result.frames:,}\n"
        f"held-out reconstruction loss: {result.final_reconstruction_loss:.4f} vs "
        f"{result.zero_prediction_loss:.4f} predicting zeros ({below:.1%} below)\n"
        f"wall time: {wall_time_s:.1f} s "
        f"({result.wall_time_s:.1f} s in training steps over all sessions)",
        highlight=False,
    )


def pretrain(
    out: Annotated[
        Path,
        typer.Option(
            help="Checkpoint directory (resumed when it holds a killed run's trainer_state.pt).",
            file_okay=False,
        ),
    ],
    size: Annotated[
        str, typer.Option(help="Model size: xs, s, m, l or xl; text: toy, draft or target.")
    ] = "s",
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 6000,
    batch_size: Annotated[int, typer.Option(help="Global batch, frames per step.", min=1)] = 128,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = 2e-3,
    warmup_steps: Annotated[int, typer.Option(help="Linear warmup steps.", min=0)] = 300,
    mask_ratio: Annotated[float, typer.Option(help="Share of patches hidden, in (0, 1).")] = 0.3,
    seed: Annotated[
        int, typer.Option(help="Seeds weights, batches, masks, held-out frames.", min=0)
    ] = 0,
    workers: Annotated[
        int,
        typer.Option(
            help="Data-parallel Ray Train workers (1: this process, unless --address).", min=1
        ),
    ] = 1,
    address: Annotated[
        str | None,
        typer.Option(help="Join this Ray cluster ('auto' or HOST:PORT) and train on it."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="Torch threads (per worker on Ray; default: cores / workers).", min=1),
    ] = None,
    task: TaskOption = "radio",
    corpus: CorpusOption = None,
    vocab: VocabOption = 1024,
    epochs: EpochsOption = None,
    tokenizer: TokenizerOption = None,
    teacher: TeacherOption = None,
    distill_weight: DistillWeightOption = 1.0,
) -> None:
    """Pretrain the RF foundation model by masked IQ-patch modelling on frames of the
    pretraining world; write model.safetensors + config.json to --out. With --task text,
    train a language model (--size toy, draft or target) by next-token prediction on CPython's
    documentation text (or --corpus files); also writes tokenizer.json. --teacher distils it
    from a larger language model (its next-token distributions) instead."""
    from tinylarge.models.pretraining.loop import PretrainConfig

    settings: dict[str, object] = {"size": size, "steps": steps, "batch_size": batch_size,
                                   "learning_rate": learning_rate, "warmup_steps": warmup_steps,
                                   "mask_ratio": mask_ratio, "seed": seed}  # fmt: skip
    if task == "text":
        from tinylarge.cli.pretrain_text import TextOptions

        options = TextOptions(corpus=corpus, vocab=vocab, epochs=epochs, tokenizer=tokenizer,
                              teacher=teacher, distill_weight=distill_weight)  # fmt: skip
        _pretrain_text(settings, out, options, workers=workers, address=address, threads=threads)
        return
    named = {"corpus": corpus, "epochs": epochs, "tokenizer": tokenizer, "teacher": teacher}
    given = [f"--{name}" for name, value in named.items() if value]
    given += ["--vocab"] if vocab != 1024 else []
    given += ["--distill-weight"] if distill_weight != 1.0 else []
    if given:
        raise fail(f"{', '.join(given)} only apply to --task text")
    with errors_as_failures(ValueError):
        config = PretrainConfig(**settings)  # type: ignore[arg-type]
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"--mask-ratio must lie in (0, 1), got {mask_ratio}")
        _check_out(config, out)
    command = command_line(settings, out, workers, address)
    where = f"{workers} Ray Train worker(s)" if workers > 1 or address else "this process"
    console.print(f"[bold]{command}[/]  ({where})", highlight=False)
    started = time.perf_counter()
    with errors_as_failures(ValueError, RuntimeError, ConnectionError):
        result = _train(config, out, workers=workers, address=address, threads=threads,
                        command=command)  # fmt: skip
    _print_summary(result, time.perf_counter() - started)


def _pretrain_text(
    settings: dict[str, object],
    out: Path,
    options: TextOptions,
    *,
    workers: int,
    address: str | None,
    threads: int | None,
) -> None:
    """``--task text``: check the radio-only options are unchanged, then train."""
    from tinylarge.cli.pretrain_text import pretrain_text

    if workers != 1 or address is not None:
        raise fail("--task text trains in this process; --workers and --address are for radio")
    if settings["mask_ratio"] != DEFAULTS["mask_ratio"]:
        raise fail("--mask-ratio only applies to --task radio")
    if settings["size"] not in ("toy", "draft", "target"):
        raise fail(f"--task text needs --size toy, draft or target (got {settings['size']!r})")
    if options.epochs is not None and settings["steps"] != DEFAULTS["steps"]:
        raise fail("give --steps or --epochs, not both")
    if options.teacher is None and options.distill_weight != 1.0:
        raise fail("--distill-weight needs --teacher")
    if options.teacher is not None and options.vocab != 1024:
        raise fail("--vocab does not apply with --teacher: the model uses the teacher's tokenizer")
    text_settings = {k: v for k, v in settings.items() if k != "mask_ratio"}
    pretrain_text(text_settings, options, out, threads)
