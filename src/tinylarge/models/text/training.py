"""Training a `CausalTransformer` on a token stream: next-token cross-entropy, AdamW; or, with a
`Teacher`, distillation from a larger model (`tinylarge.models.text.distillation`).

Everything a step uses is a function of (seed, step): the batch of windows and the learning
rate (and the teacher's output on that batch). A run killed and resumed from its
``trainer_state.pt`` therefore continues exactly as if never stopped. The finished checkpoint
records the held-out perplexity and next-token accuracy (and, with a teacher, how closely the
student follows it).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from tinylarge.models.text.causal_transformer import CausalTransformer, lm_architecture
from tinylarge.models.text.checkpoints import TRAINER_STATE_FILE, save_lm_checkpoint
from tinylarge.models.text.distillation import (
    Teacher,
    TeacherMatch,
    check_teacher,
    distillation_loss,
    teacher_log_probs,
    teacher_match,
)
from tinylarge.models.text.tokenizer import BpeTokenizer
from tinylarge.seeding import derive_seed

#: Called after every step with (step done, total steps, loss of the step, tokens/s).
LmProgress = Callable[[int, int, float, float], None]
_FREE_ON_RESUME = ("steps", "eval_every_steps", "checkpoint_every_steps")


@dataclass(frozen=True)
class LmTrainConfig:
    """What an LM training run does; recorded in the checkpoint.

    Attributes
    ----------
    size : str
        Key of `LM_SIZES` (``toy``, ``draft``, ``target``).
    steps : int
        Optimizer steps; each sees ``batch_size`` windows of ``context`` tokens.
    batch_size : int
    learning_rate : float
        Peak AdamW learning rate after ``warmup_steps`` (linear), then cosine to a tenth of it.
    warmup_steps : int
    weight_decay : float
        AdamW decoupled weight decay on matrices (not on norms, biases or positions).
    seed : int
        Seeds the weights and every batch.
    eval_every_steps, checkpoint_every_steps : int
        Held-out evaluation on ``eval_tokens`` tokens and resumable state saves, in steps.
    eval_tokens : int
        Held-out tokens scored by the periodic evaluations (the final one scores all).
    """

    size: str = "draft"
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.1
    seed: int = 0
    eval_every_steps: int = 200
    checkpoint_every_steps: int = 100
    eval_tokens: int = 8192

    def __post_init__(self) -> None:
        lm_architecture(self.size, 2)  # a clear error for an unknown size
        for name in ("steps", "batch_size", "eval_every_steps", "checkpoint_every_steps",
                     "eval_tokens"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or not 0 < self.learning_rate <= 1 or self.weight_decay < 0:
            raise ValueError(
                "need warmup_steps >= 0, 0 < learning_rate <= 1 and weight_decay >= 0; got "
                f"{self.warmup_steps}, {self.learning_rate}, {self.weight_decay}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learning_rate_factor(config: LmTrainConfig, step: int) -> float:
    """Multiplier of the peak learning rate at ``step``: linear warmup, then cosine to 0.1."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def batch_windows(
    token_ids: NDArray[np.int32], config: LmTrainConfig, step: int, context: int
) -> torch.Tensor:
    """Step ``step``'s batch: ``batch_size`` windows of ``context + 1`` tokens at uniformly
    random offsets (seeded by seed and step), (B, context + 1) int64."""
    generator = torch.Generator().manual_seed(derive_seed(config.seed, "lm", "batch", str(step)))
    starts = torch.randint(0, len(token_ids) - context, (config.batch_size,), generator=generator)
    stream = torch.from_numpy(np.asarray(token_ids, dtype=np.int64))
    return torch.stack([stream[s : s + context + 1] for s in starts.tolist()])


@dataclass(frozen=True)
class HeldOutScore:
    """Next-token quality on held-out text: perplexity exp(mean NLL), accuracy of the argmax,
    mean NLL (nats/token) and the number of tokens scored."""

    perplexity: float
    accuracy: float
    nll: float
    tokens: int


def held_out_score(
    model: CausalTransformer, token_ids: NDArray[np.int32], max_tokens: int | None = None
) -> HeldOutScore:
    """Score ``token_ids`` (the first ``max_tokens + 1`` of them when given) in consecutive
    non-overlapping windows of the model's context: every token but the first is predicted
    from the tokens before it in its window."""
    context = model.architecture.context
    stream = torch.from_numpy(np.asarray(token_ids, dtype=np.int64))
    if max_tokens is not None:
        stream = stream[: max_tokens + 1]
    if len(stream) < 2:
        raise ValueError("need at least 2 held-out tokens to score")
    was_training = model.training
    model.eval()
    nll, correct, count = 0.0, 0, 0
    starts = list(range(0, len(stream) - 1, context))
    with torch.inference_mode():
        for first in range(0, len(starts), 32):
            group = starts[first : first + 32]
            lengths = {min(context, len(stream) - 1 - s) for s in group}
            for length in sorted(lengths):
                rows = [s for s in group if min(context, len(stream) - 1 - s) == length]
                x = torch.stack([stream[s : s + length] for s in rows])
                y = torch.stack([stream[s + 1 : s + length + 1] for s in rows])
                logits = model(x).float()
                nll += float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
                correct += int((logits.argmax(-1) == y).sum())
                count += y.numel()
    model.train(was_training)
    return HeldOutScore(math.exp(nll / count), correct / count, nll / count, count)


@dataclass
class LmTrainerState:
    """Where a run is: next step, tokens seen, loss curves, wall time so far (s)."""

    step: int = 0
    tokens: int = 0
    wall_time_s: float = 0.0
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    eval: list[tuple[int, float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class LmTrainResult:
    """What a finished run reports (``score`` and, with a teacher, ``teacher_match`` on all
    held-out tokens)."""

    directory: Path
    steps: int
    tokens: int
    parameters: int
    score: HeldOutScore
    wall_time_s: float
    resumed_from_step: int
    teacher_match: TeacherMatch | None = None


def data_fingerprint(token_ids: NDArray[np.int32], held_out_ids: NDArray[np.int32]) -> str:
    """SHA-256 (hex, 16 chars) of the train and held-out token streams (resume check)."""
    digest = hashlib.sha256(np.asarray(token_ids, dtype=np.int32).tobytes())
    digest.update(b"|" + np.asarray(held_out_ids, dtype=np.int32).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class _Run:
    """Model, optimizer, schedule and progress of one run."""

    model: CausalTransformer
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    state: LmTrainerState
    teacher: Teacher | None = None

    @classmethod
    def start(cls, config: LmTrainConfig, vocab_size: int, teacher: Teacher | None) -> _Run:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, "lm", "init"))
            model = CausalTransformer(lm_architecture(config.size, vocab_size))
        model.train()
        named = list(model.named_parameters())
        decay = [p for n, p in named if p.ndim >= 2 and "position" not in n]
        rest = [p for n, p in named if p.ndim < 2 or "position" in n]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay},
             {"params": rest, "weight_decay": 0.0}],
            lr=config.learning_rate, betas=(0.9, 0.95),
        )  # fmt: skip
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(config, step)
        )
        return cls(model, optimizer, scheduler, LmTrainerState(), teacher)

    def save_state(self, directory: Path, config: LmTrainConfig, fingerprint: str) -> None:
        from tinylarge.models.checkpoints import atomic_write

        document = {
            "config": config.to_dict(), "data": fingerprint,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "trainer": asdict(self.state),
            "distillation": None if self.teacher is None else self.teacher.record(),
        }  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / TRAINER_STATE_FILE, lambda tmp: torch.save(document, tmp))

    def restore(self, document: dict[str, Any]) -> None:
        self.model.load_state_dict(document["model"])
        self.optimizer.load_state_dict(document["optimizer"])
        self.scheduler.load_state_dict(document["scheduler"])
        t = document["trainer"]
        self.state = LmTrainerState(
            step=int(t["step"]), tokens=int(t["tokens"]), wall_time_s=float(t["wall_time_s"]),
            train_loss=[(int(s), float(v)) for s, v in t["train_loss"]],
            eval=[(int(s), float(p), float(a)) for s, p, a in t["eval"]],
        )  # fmt: skip


def read_lm_trainer_state(
    config: LmTrainConfig,
    directory: str | Path,
    fingerprint: str | None = None,
    *,
    teacher: Teacher | None = None,
) -> dict[str, Any] | None:
    """The ``trainer_state.pt`` a killed run left in ``directory`` (None when there is none);
    ``ValueError`` naming the differing settings when it was made with other settings (only
    the steps and the evaluation/checkpoint cadence may differ), another teacher or
    distillation weight (``teacher`` None: a run without a teacher), or other text."""
    path = Path(directory) / TRAINER_STATE_FILE
    if not path.is_file():
        return None
    document: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    mine, theirs = config.to_dict(), document["config"]
    differ = sorted(k for k in mine.keys() | theirs.keys()
                    if k not in _FREE_ON_RESUME and mine.get(k) != theirs.get(k))  # fmt: skip
    if differ:
        was = ", ".join(f"{k}={theirs.get(k)!r}" for k in differ)
        now = ", ".join(f"{k}={mine.get(k)!r}" for k in differ)
        raise ValueError(
            f"{path} belongs to a run with other settings ({was}; now {now}); use another "
            "--out directory, the same settings, or delete it to start over"
        )
    ours = None if teacher is None else teacher.record()
    if document.get("distillation") != ours:
        raise ValueError(
            f"{path} belongs to a run with another teacher or distillation weight (recorded: "
            f"{document.get('distillation')}; now {ours}); use another --out directory, the "
            "same teacher, or delete it to start over"
        )
    if fingerprint is not None and document.get("data") != fingerprint:
        raise ValueError(
            f"{path} belongs to a run on other text or another tokenizer; use another --out "
            "directory or delete it to start over"
        )
    return document


def _train_step(run: _Run, token_ids: NDArray[np.int32], config: LmTrainConfig) -> float:
    """One optimizer step (gradient clipped to norm 1); the batch's mean loss (nats/token):
    the cross-entropy, or with a teacher `distillation_loss`."""
    batch = batch_windows(token_ids, config, run.state.step, run.model.architecture.context)
    logits = run.model(batch[:, :-1])
    if run.teacher is None:
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
    else:
        weight = run.teacher.weight
        log_p = teacher_log_probs(run.teacher.model, batch[:, :-1]) if weight > 0 else None
        loss = distillation_loss(logits, batch[:, 1:], log_p, weight)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    run.scheduler.step()
    return float(loss.detach())


def _loop(
    run: _Run,
    config: LmTrainConfig,
    token_ids: NDArray[np.int32],
    held_out_ids: NDArray[np.int32],
    directory: Path,
    fingerprint: str,
    progress: LmProgress | None,
) -> None:
    """Steps from ``run.state.step`` to ``config.steps`` with evaluations and state saves."""
    state, context = run.state, run.model.architecture.context
    while state.step < config.steps:
        started = time.perf_counter()
        loss = _train_step(run, token_ids, config)
        elapsed = time.perf_counter() - started
        state.step += 1
        state.tokens += config.batch_size * context
        state.wall_time_s += elapsed
        state.train_loss.append((state.step, loss))
        if state.step % config.eval_every_steps == 0:
            score = held_out_score(run.model, held_out_ids, config.eval_tokens)
            state.eval.append((state.step, score.perplexity, score.accuracy))
        if state.step % config.checkpoint_every_steps == 0 or state.step == config.steps:
            run.save_state(directory, config, fingerprint)
        if progress is not None:
            progress(state.step, config.steps, loss, config.batch_size * context / elapsed)


def _thinned(curve: list[tuple[int, float]], points: int = 400) -> list[tuple[int, float]]:
    """Every k-th point of a loss curve (about ``points`` of them) and its last point."""
    stride = max(1, len(curve) // points)
    kept = curve[stride - 1 :: stride]
    return kept if not curve or kept[-1:] == curve[-1:] else [*kept, curve[-1]]


def _training_record(
    config: LmTrainConfig,
    run: _Run,
    token_ids: NDArray[np.int32],
    held_out_ids: NDArray[np.int32],
    score: HeldOutScore,
    match: TeacherMatch | None,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The ``training`` section of config.json; with a teacher also its record and ``match``,
    how closely the student follows it on all held-out tokens."""
    record = {
        **config.to_dict(), **provenance,
        "train_tokens": len(token_ids), "held_out_tokens": len(held_out_ids),
        "tokens_seen": run.state.tokens, "epochs": run.state.tokens / len(token_ids),
        "wall_time_s": round(run.state.wall_time_s, 1),
        "tokens_per_s": round(run.state.tokens / max(run.state.wall_time_s, 1e-9), 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "held_out_perplexity": score.perplexity, "held_out_accuracy": score.accuracy,
        "held_out_nll": score.nll, "held_out_scored_tokens": score.tokens,
        "train_loss": _thinned(run.state.train_loss), "eval": run.state.eval,
    }  # fmt: skip
    if run.teacher is not None and match is not None:
        record["distillation"] = {
            **run.teacher.record(), "held_out_teacher_kl": match.kl,
            "held_out_teacher_agreement": match.agreement,
            "held_out_acceptance": match.acceptance,
        }  # fmt: skip
    return record


def train_language_model(
    config: LmTrainConfig,
    token_ids: NDArray[np.int32],
    held_out_ids: NDArray[np.int32],
    directory: str | Path,
    *,
    tokenizer: BpeTokenizer,
    progress: LmProgress | None = None,
    command: str = "",
    corpus: dict[str, Any] | None = None,
    teacher: Teacher | None = None,
) -> LmTrainResult:
    """Train (or resume training) a `CausalTransformer` and write its checkpoint.

    Parameters
    ----------
    config : LmTrainConfig
    token_ids, held_out_ids : ndarray of int32
        Train and held-out token streams (`encode_documents`), in ``tokenizer``'s ids.
    directory : path
        Checkpoint directory; a ``trainer_state.pt`` left by a killed run with the same
        settings, teacher and text is resumed from.
    tokenizer : BpeTokenizer
        Saved beside the weights.
    progress : callable, optional
        See `LmProgress`.
    command : str
        The command line that started the run (recorded).
    corpus : dict, optional
        What the text was (recorded), e.g. ``{"corpus": "python", "python": "3.11.7"}``.
    teacher : Teacher, optional
        Distil from this model (`tinylarge.models.text.distillation`); it must share
        ``tokenizer``. Recorded (spec, weights SHA-256, weight) under ``distillation``.
    """
    context = lm_architecture(config.size, tokenizer.vocab_size).context
    if len(token_ids) < context + 2:
        raise ValueError(f"{len(token_ids)} training tokens are fewer than one window ({context})")
    if max(int(np.max(token_ids)), int(np.max(held_out_ids))) >= tokenizer.vocab_size:
        raise ValueError("the token ids exceed the tokenizer's vocabulary")
    if teacher is not None:
        check_teacher(teacher, tokenizer, context)
    directory = Path(directory)
    fingerprint = data_fingerprint(token_ids, held_out_ids)
    run = _Run.start(config, tokenizer.vocab_size, teacher)
    document = read_lm_trainer_state(config, directory, fingerprint, teacher=teacher)
    if document is not None:
        run.restore(document)
    resumed_from = run.state.step
    _loop(run, config, token_ids, held_out_ids, directory, fingerprint, progress)
    score = held_out_score(run.model, held_out_ids)
    match = None if teacher is None else teacher_match(run.model, teacher.model, held_out_ids)
    parameters = sum(p.numel() for p in run.model.parameters())
    provenance = {"command": command, "corpus": corpus or {}}
    training = _training_record(config, run, token_ids, held_out_ids, score, match, provenance)
    save_lm_checkpoint(directory, run.model, tokenizer, training)
    (directory / TRAINER_STATE_FILE).unlink(missing_ok=True)
    return LmTrainResult(directory, run.state.step, run.state.tokens, parameters, score,
                         run.state.wall_time_s, resumed_from, match)  # fmt: skip
