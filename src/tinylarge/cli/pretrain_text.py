"""`tinylarge pretrain --task text`: train a draft or target language model (a small GPT on
byte-level BPE tokens) into a checkpoint directory, resumable after a kill; with ``--teacher``,
distil it from a larger model (`tinylarge.models.text.distillation`)."""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinylarge.cli.common import console, errors_as_failures, fail, step_progress

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from tinylarge.models.text.distillation import Teacher
    from tinylarge.models.text.tokenizer import BpeTokenizer
    from tinylarge.models.text.training import LmTrainConfig, LmTrainResult

#: Every n-th document is held out (the default of ``[task.text] validation_every``).
HELD_OUT_EVERY = 20
DEFAULT_VOCAB = 1024


@dataclass(frozen=True)
class TextOptions:
    """The text-only options of `tinylarge pretrain` (``teacher``: a checkpoint directory or
    ``"builtin"``; ``distill_weight``: alpha in [0, 1])."""

    corpus: list[Path] | None
    vocab: int
    epochs: float | None
    tokenizer: Path | None
    teacher: str | None = None
    distill_weight: float = 1.0


@dataclass(frozen=True)
class TextData:
    """Tokenizer, train and held-out token streams, and what the corpus was (recorded)."""

    tokenizer: BpeTokenizer
    train_ids: NDArray[np.int32]
    held_out_ids: NDArray[np.int32]
    corpus: dict[str, Any]


def load_text_data(options: TextOptions, teacher: Teacher | None = None) -> TextData:
    """Read the corpus (CPython's text, or ``--corpus`` files), hold out every
    `HELD_OUT_EVERY`-th document, train the BPE tokenizer on the rest (or load ``--tokenizer``,
    or take the ``teacher``'s) and encode both parts."""
    from tinylarge.data.text_corpus import (
        python_corpus_documents,
        split_documents,
        text_file_documents,
    )
    from tinylarge.models.text.tokenizer import BpeTokenizer, encode_documents, train_bpe

    if options.corpus:
        documents = text_file_documents(options.corpus)
        corpus: dict[str, Any] = {"corpus": [str(p) for p in options.corpus]}
    else:
        documents = python_corpus_documents()
        corpus = {"corpus": "python", "python": platform.python_version()}
    train, held_out = split_documents(documents, HELD_OUT_EVERY)
    if options.tokenizer is not None:
        tokenizer = BpeTokenizer.load(options.tokenizer)
    elif teacher is not None:
        tokenizer = teacher.tokenizer
    else:
        tokenizer = train_bpe(train, options.vocab)
    corpus.update(documents=len(documents), held_out_every=HELD_OUT_EVERY,
                  vocab=tokenizer.vocab_size)  # fmt: skip
    return TextData(tokenizer, encode_documents(tokenizer, train),
                    encode_documents(tokenizer, held_out), corpus)  # fmt: skip


def text_command_line(
    config: LmTrainConfig, options: TextOptions, out: Path, threads: int | None
) -> str:
    """The normalised command line of a text run (the same settings give the same string)."""
    words = ["tinylarge", "pretrain", "--task", "text", "--size", config.size]
    words += ["--steps", str(config.steps), "--batch-size", str(config.batch_size)]
    words += ["--learning-rate", format(config.learning_rate, "g")]
    words += ["--warmup-steps", str(config.warmup_steps), "--seed", str(config.seed)]
    if options.tokenizer is not None:
        words += ["--tokenizer", str(options.tokenizer)]
    elif options.vocab != DEFAULT_VOCAB:
        words += ["--vocab", str(options.vocab)]
    for path in options.corpus or []:
        words += ["--corpus", str(path)]
    if options.teacher is not None:
        words += ["--teacher", options.teacher]
        words += ["--distill-weight", format(options.distill_weight, "g")]
    words += ["--out", str(out)]
    if threads is not None:
        words += ["--threads", str(threads)]
    return " ".join(words)


def steps_for(epochs: float, train_tokens: int, batch_size: int, context: int) -> int:
    """Optimizer steps that show the model ``epochs`` times the training tokens (rounded up)."""
    if not epochs > 0:
        raise ValueError(f"--epochs must be > 0, got {epochs}")
    return max(1, math.ceil(epochs * train_tokens / (batch_size * context)))


def _train_with_progress(
    config: LmTrainConfig, data: TextData, out: Path, command: str, teacher: Teacher | None
) -> LmTrainResult:
    from tinylarge.models.text.training import train_language_model

    with step_progress("pretrain text") as progress:
        bar = progress.add_task("pretrain", total=config.steps, status="starting")

        def show(step: int, steps: int, loss: float, tokens_per_s: float) -> None:
            status = f"loss {loss:.3f}  {tokens_per_s:,.0f} tokens/s"
            progress.update(bar, completed=step, total=steps, status=status)

        return train_language_model(config, data.train_ids, data.held_out_ids, out,
                                    tokenizer=data.tokenizer, progress=show, command=command,
                                    corpus=data.corpus, teacher=teacher)  # fmt: skip


def _prepare(
    settings: dict[str, Any], options: TextOptions
) -> tuple[LmTrainConfig, TextData, Teacher | None]:
    """The run's config (steps from ``--epochs`` when given), text and teacher (checked
    against the tokenizer); ``ValueError`` for bad settings."""
    from tinylarge.models.text.causal_transformer import lm_architecture
    from tinylarge.models.text.distillation import check_teacher, load_teacher
    from tinylarge.models.text.training import LmTrainConfig

    config = LmTrainConfig(**settings)
    teacher = None
    if options.teacher is not None:
        teacher = load_teacher(options.teacher, options.distill_weight)
    data = load_text_data(options, teacher)
    context = lm_architecture(config.size, data.tokenizer.vocab_size).context
    if teacher is not None:
        check_teacher(teacher, data.tokenizer, context)
    if options.epochs is not None:
        steps = steps_for(options.epochs, len(data.train_ids), config.batch_size, context)
        config = LmTrainConfig(**{**settings, "steps": steps})
    return config, data, teacher


def _summary(result: LmTrainResult, train_tokens: int, wall: float) -> str:
    """What a finished run prints."""
    text = (
        f"checkpoint: [bold]{result.directory}[/] ({result.parameters:,} parameters)\n"
        f"steps: {result.steps:,} (resumed from {result.resumed_from_step:,}), tokens: "
        f"{result.tokens:,} ({result.tokens / train_tokens:.2f} epochs)\n"
        f"held-out perplexity {result.score.perplexity:.2f}, next-token accuracy "
        f"{result.score.accuracy:.1%} ({result.score.tokens:,} tokens)\n"
    )
    match = result.teacher_match
    if match is not None:
        text += (
            f"against the teacher: KL {match.kl:.3f} nats/token, greedy agreement "
            f"{match.agreement:.1%}, acceptance sum(min(p, q)) {match.acceptance:.3f}\n"
        )
    return text + (
        f"wall time: {wall:.1f} s ({result.wall_time_s:.1f} s in training steps over all "
        f"sessions, {result.tokens / max(result.wall_time_s, 1e-9):,.0f} tokens/s)"
    )


def pretrain_text(
    settings: dict[str, Any], options: TextOptions, out: Path, threads: int | None
) -> None:
    """Train a language model as `tinylarge pretrain --task text` asks and print a summary.

    ``settings`` holds size, steps, batch_size, learning_rate, warmup_steps and seed; with
    ``options.epochs`` the steps follow from the corpus size; with ``options.teacher`` the
    model is distilled from it (and uses its tokenizer unless ``options.tokenizer``)."""
    import torch

    from tinylarge.models.text.checkpoints import CONFIG_FILE
    from tinylarge.models.text.training import read_lm_trainer_state

    with errors_as_failures(ValueError):
        config, data, teacher = _prepare(settings, options)
        state = read_lm_trainer_state(config, out, teacher=teacher)
    if state is not None:
        console.print(f"resuming from step {state['trainer']['step']} ({out})")
    elif (out / CONFIG_FILE).is_file():
        raise fail(f"{out} already holds a finished checkpoint; choose another --out or delete it")
    torch.set_num_threads(threads or min(2, torch.get_num_threads()))
    command = text_command_line(config, options, out, threads)
    console.print(f"[bold]{command}[/]", highlight=False)
    started = time.perf_counter()
    with errors_as_failures(ValueError):
        result = _train_with_progress(config, data, out, command, teacher)
    wall = time.perf_counter() - started
    console.print(_summary(result, len(data.train_ids), wall), highlight=False)
