"""The pretraining loop: masked IQ-patch modelling on frames of the pretraining world.

Everything a step uses is a function of (seed, step): the global batch of frames, the hidden
patches, the learning rate. So a run killed and resumed from its last checkpoint continues
exactly as if never stopped, and ``W`` data-parallel replicas that each take their ``1 / W``
share of the same global batch follow the loss curve of one process (`ray_train`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tinylarge.data.pretraining_world import PretrainingWorld, generate_world_frames
from tinylarge.models.checkpoints import (
    TRAINER_STATE_FILE,
    atomic_write,
    save_checkpoint,
)
from tinylarge.models.pretraining.masking import (
    masked_reconstruction_loss,
    random_mask,
    zero_prediction_loss,
)
from tinylarge.models.rf_transformer import (
    RF_TRANSFORMER_SIZES,
    RfTransformer,
    build_rf_transformer,
)
from tinylarge.seeding import derive_seed, rng_for

#: Called after every step with (step done, total steps, mean loss of the step, frames/s).
PretrainProgress = Callable[[int, int, float, float], None]


@dataclass(frozen=True)
class PretrainConfig:
    """What a pretraining run does; recorded in the checkpoint.

    Attributes
    ----------
    size : str
        Rung of `RF_TRANSFORMER_SIZES`.
    steps : int
        Optimizer steps.
    batch_size : int
        Global batch (frames per step, over all replicas).
    learning_rate : float
        Peak AdamW learning rate, reached after ``warmup_steps`` (linear), then cosine decay to
        a tenth of it at the last step.
    warmup_steps : int
    weight_decay : float
    mask_ratio : float
        Share of each frame's patches hidden (LWM hides 15-40 %).
    patch_samples : int
        Complex samples per patch.
    seed : int
        Seeds the weights, every batch, every mask and the held-out frames.
    eval_frames : int
        Held-out frames on which the reconstruction loss is measured.
    eval_every_steps, checkpoint_every_steps : int
    world : PretrainingWorld
    """

    size: str = "s"
    steps: int = 6000
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 300
    weight_decay: float = 0.05
    mask_ratio: float = 0.3
    patch_samples: int = 8
    seed: int = 0
    eval_frames: int = 2048
    eval_every_steps: int = 250
    checkpoint_every_steps: int = 250
    world: PretrainingWorld = field(default_factory=PretrainingWorld)

    def __post_init__(self) -> None:
        if self.size not in RF_TRANSFORMER_SIZES:
            raise ValueError(
                f"unknown size {self.size!r}; sizes: {', '.join(RF_TRANSFORMER_SIZES)}"
            )
        for name in ("steps", "batch_size", "eval_frames", "eval_every_steps",
                     "checkpoint_every_steps", "patch_samples"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or not 0 < self.learning_rate <= 1 or self.weight_decay < 0:
            raise ValueError(
                "need warmup_steps >= 0, 0 < learning_rate <= 1 and weight_decay >= 0; got "
                f"{self.warmup_steps}, {self.learning_rate}, {self.weight_decay}"
            )

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["world"] = self.world.to_dict()
        return document

    def resumable_as(self, other: dict[str, Any]) -> bool:
        """Whether a run recorded with settings ``other`` can be continued by this config
        (everything equal but the number of steps and the checkpoint cadence)."""
        mine = {k: v for k, v in self.to_dict().items() if k not in _FREE_ON_RESUME}
        theirs = {k: v for k, v in other.items() if k not in _FREE_ON_RESUME}
        return mine == theirs


_FREE_ON_RESUME = ("steps", "eval_every_steps", "checkpoint_every_steps")


@dataclass(frozen=True)
class Replica:
    """This process's place in a data-parallel group: rank ``rank`` of ``world_size``; it
    takes rows ``[rank * B / W, (rank + 1) * B / W)`` of every global batch."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: Tensor) -> Tensor:
        per = batch.shape[0] // self.world_size
        return batch[self.rank * per : (self.rank + 1) * per]


class ReconstructionObjective(nn.Module):
    """``forward(x, mask)`` = masked reconstruction loss (a module, so DDP can wrap it)."""

    def __init__(self, model: RfTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return masked_reconstruction_loss(self.model, x, mask)


def global_batch(config: PretrainConfig, step: int, tokens: int) -> tuple[Tensor, Tensor]:
    """Frames and masks of step ``step`` (the same in every replica)."""
    frames = generate_world_frames(
        config.batch_size, rng_for(config.seed, "pretrain", "frames", str(step)), config.world
    )
    generator = torch.Generator().manual_seed(
        derive_seed(config.seed, "pretrain", "mask", str(step))
    )
    mask = random_mask(config.batch_size, tokens, config.mask_ratio, generator)
    return torch.from_numpy(frames.x), mask


def learning_rate_factor(config: PretrainConfig, step: int) -> float:
    """Multiplier of the peak learning rate at ``step``: linear warmup, then cosine to 0.1."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class HeldOut:
    """Fixed held-out frames and masks, and the loss of predicting zeros on them."""

    x: Tensor
    mask: Tensor
    zero_loss: float

    @classmethod
    def make(cls, config: PretrainConfig, tokens: int) -> HeldOut:
        frames = generate_world_frames(
            config.eval_frames, rng_for(config.seed, "pretrain", "eval"), config.world
        )
        generator = torch.Generator().manual_seed(derive_seed(config.seed, "pretrain", "eval-mask"))
        mask = random_mask(config.eval_frames, tokens, config.mask_ratio, generator)
        x = torch.from_numpy(frames.x)
        return cls(x, mask, zero_prediction_loss(x, mask, config.patch_samples))

    @torch.inference_mode()
    def loss(self, model: RfTransformer, device: torch.device) -> float:
        model.eval()
        total = 0.0
        for start in range(0, len(self.x), 512):
            x = self.x[start : start + 512].to(device)
            mask = self.mask[start : start + 512].to(device)
            total += float(masked_reconstruction_loss(model, x, mask)) * len(x)
        model.train()
        return total / len(self.x)


@dataclass
class TrainerState:
    """Where a run is: next step, frames seen, loss curves, wall time so far."""

    step: int = 0
    frames: int = 0
    wall_time_s: float = 0.0
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class PretrainResult:
    """What a finished (or resumed and finished) run reports."""

    directory: Path
    steps: int
    frames: int
    final_reconstruction_loss: float
    zero_prediction_loss: float
    wall_time_s: float
    resumed_from_step: int
    parameters: int
    train_loss: list[tuple[int, float]]


def pick_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: A checkpoint's config keeps at most about this many points of the training-loss curve.
RECORDED_CURVE_POINTS = 800


def recorded_curve(curve: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """A loss curve thinned to every k-th step (k = len // `RECORDED_CURVE_POINTS`, at least 1)
    plus its last point, so a long run's config stays small."""
    stride = max(1, len(curve) // RECORDED_CURVE_POINTS)
    kept = [point for point in curve if point[0] % stride == 0]
    return kept if not curve or (kept and kept[-1] == curve[-1]) else kept + curve[-1:]


def _architecture(config: PretrainConfig) -> dict[str, Any]:
    return {
        "name": "rf_transformer",
        "options": {"size": config.size, "patch_samples": config.patch_samples},
        "input_shape": [2, config.world.frame_length],
        "num_classes": len(config.world.classes),
    }


@dataclass
class _Run:
    """The mutable parts of a run: model, optimizer, schedule and progress."""

    model: RfTransformer
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    state: TrainerState

    @classmethod
    def start(cls, config: PretrainConfig, device: torch.device) -> _Run:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, "pretrain", "init"))
            model = build_rf_transformer(
                (2, config.world.frame_length), len(config.world.classes),
                size=config.size, patch_samples=config.patch_samples,
            )  # fmt: skip
        model.to(device).train()
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "position" not in n]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "position" in n]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate, betas=(0.9, 0.95),
        )  # fmt: skip
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(config, step)
        )
        return cls(model, optimizer, scheduler, TrainerState())

    def save_state(self, directory: Path, config: PretrainConfig) -> None:
        document = {
            "config": config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "trainer": asdict(self.state),
        }
        atomic_write(directory / TRAINER_STATE_FILE, lambda tmp: torch.save(document, tmp))

    def restore(self, directory: Path, config: PretrainConfig) -> bool:
        """Continue from ``trainer_state.pt`` when there is one; ``ValueError`` when it was made
        with other settings."""
        document = read_trainer_state(config, directory)
        if document is None:
            return False
        self.model.load_state_dict(document["model"])
        self.optimizer.load_state_dict(document["optimizer"])
        self.scheduler.load_state_dict(document["scheduler"])
        trainer = document["trainer"]
        self.state = TrainerState(
            step=int(trainer["step"]), frames=int(trainer["frames"]),
            wall_time_s=float(trainer["wall_time_s"]),
            train_loss=[(int(s), float(v)) for s, v in trainer["train_loss"]],
            eval_loss=[(int(s), float(v)) for s, v in trainer["eval_loss"]],
        )  # fmt: skip
        return True


def read_trainer_state(config: PretrainConfig, directory: str | Path) -> dict[str, Any] | None:
    """The ``trainer_state.pt`` a killed run left in ``directory`` (None when there is none);
    ``ValueError`` naming the differing settings when it was made with other settings than
    ``config`` (only the number of steps and the evaluation/checkpoint cadence may differ).
    Its ``"trainer"`` entry holds the step to resume from."""
    path = Path(directory) / TRAINER_STATE_FILE
    if not path.is_file():
        return None
    document: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if not config.resumable_as(document["config"]):
        mine = config.to_dict()
        differ = sorted(
            k for k in mine.keys() | document["config"].keys()
            if k not in _FREE_ON_RESUME and mine.get(k) != document["config"].get(k)
        )  # fmt: skip
        theirs = ", ".join(f"{k}={document['config'].get(k)!r}" for k in differ)
        raise ValueError(
            f"{path} belongs to a run with other settings ({theirs}; now "
            f"{', '.join(f'{k}={mine.get(k)!r}' for k in differ)}); use another --out "
            "directory, the same settings, or delete it to start over"
        )
    return document


def _step(
    run: _Run, objective: nn.Module, config: PretrainConfig, replica: Replica, device: torch.device
) -> float:
    """One optimizer step on this replica's share of the step's global batch; the mean loss of
    the global batch (averaged over replicas by the caller's all-reduce when distributed)."""
    x, mask = global_batch(config, run.state.step, run.model.tokens)
    loss = objective(replica.shard(x).to(device), replica.shard(mask).to(device))
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    return float(loss.detach())


def pretrain(
    config: PretrainConfig,
    directory: str | Path,
    *,
    progress: PretrainProgress | None = None,
    replica: Replica | None = None,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    reduce_mean: Callable[[float], float] | None = None,
    device: torch.device | None = None,
    command: str = "",
) -> PretrainResult:
    """Pretrain (or resume pretraining) an `RfTransformer` into ``directory``.

    Parameters
    ----------
    config : PretrainConfig
    directory : path
        Checkpoint directory; a ``trainer_state.pt`` left by a killed run with the same settings
        is resumed from.
    progress : callable, optional
        See `PretrainProgress`.
    replica, wrap, reduce_mean
        Data-parallel use (`ray_train`): this process's rank, how to wrap the objective (DDP)
        and how to average a float over replicas. Defaults: one process.
    device : torch.device, optional
        Default: CUDA when present, else CPU.
    command : str
        The command line that started the run (recorded in the checkpoint).
    """
    replica = replica or Replica()
    if config.batch_size % replica.world_size:
        raise ValueError(
            f"batch_size ({config.batch_size}) must be divisible by the {replica.world_size} "
            "workers"
        )
    device = device or pick_device()
    directory = Path(directory)
    run = _Run.start(config, device)
    resumed = run.restore(directory, config)
    run.model.to(device)
    resumed_from = run.state.step if resumed else 0
    held_out = HeldOut.make(config, run.model.tokens)
    objective = (wrap or (lambda m: m))(ReconstructionObjective(run.model))
    average = reduce_mean or (lambda v: v)
    _loop(run, objective, config, replica, device, held_out, directory, progress, average)
    final = held_out.loss(run.model, device)
    if replica.is_main:
        pretraining = {
            **config.to_dict(), "workers": replica.world_size, "frames": run.state.frames,
            "final_reconstruction_loss": final, "zero_prediction_loss": held_out.zero_loss,
            "wall_time_s": run.state.wall_time_s,
            "train_loss": recorded_curve(run.state.train_loss), "eval_loss": run.state.eval_loss,
            "device": device.type, "command": command,
        }  # fmt: skip
        save_checkpoint(directory, run.model, _architecture(config), pretraining)
        (directory / TRAINER_STATE_FILE).unlink(missing_ok=True)
    return PretrainResult(
        directory=directory, steps=run.state.step, frames=run.state.frames,
        final_reconstruction_loss=final, zero_prediction_loss=held_out.zero_loss,
        wall_time_s=run.state.wall_time_s, resumed_from_step=resumed_from,
        parameters=sum(p.numel() for p in run.model.parameters()),
        train_loss=run.state.train_loss,
    )  # fmt: skip


def _loop(
    run: _Run,
    objective: nn.Module,
    config: PretrainConfig,
    replica: Replica,
    device: torch.device,
    held_out: HeldOut,
    directory: Path,
    progress: PretrainProgress | None,
    average: Callable[[float], float],
) -> None:
    """Steps from ``run.state.step`` to ``config.steps``, with evaluation and checkpoints."""
    state = run.state
    while state.step < config.steps:
        started = time.perf_counter()
        loss = average(_step(run, objective, config, replica, device))
        elapsed = time.perf_counter() - started
        state.step += 1
        state.frames += config.batch_size
        state.wall_time_s += elapsed
        state.train_loss.append((state.step, loss))
        if state.step % config.eval_every_steps == 0 or state.step == config.steps:
            state.eval_loss.append((state.step, held_out.loss(run.model, device)))
        if replica.is_main and (
            state.step % config.checkpoint_every_steps == 0 or state.step == config.steps
        ):
            directory.mkdir(parents=True, exist_ok=True)
            run.save_state(directory, config)
        if progress is not None:
            progress(state.step, config.steps, loss, config.batch_size / max(elapsed, 1e-9))
