"""Data-parallel pretraining on Ray Train: ``W`` workers run the same `pretrain` loop.

Each worker is one replica (`Replica`): it takes its ``1 / W`` share of every global batch,
the objective is wrapped in PyTorch's ``DistributedDataParallel`` (by
``ray.train.torch.prepare_model``; gloo on CPUs, NCCL on GPUs), which averages the gradients
over the workers, and the step loss is averaged by an all-reduce. Since every hidden patch
count is the same in every frame, the averaged loss and gradient are those of the whole
global batch: ``W`` workers follow the loss curve of one process within float rounding.

Rank 0 writes ``trainer_state.pt`` and the checkpoint (an absolute path: a worker's working
directory is not the driver's; on a multi-node cluster it must be storage every node sees,
or resuming is refused). It also sends each step's loss and frames/s to a small actor that
the driver polls, so the driver can show progress while ``TorchTrainer.fit`` runs.

Ray Train: https://docs.ray.io/en/latest/train/getting-started-pytorch.html
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from tinylarge.models.checkpoints import TRAINER_STATE_FILE
from tinylarge.models.pretraining.loop import (
    PretrainConfig,
    PretrainProgress,
    PretrainResult,
    Replica,
    pretrain,
    read_trainer_state,
)
from tinylarge.ray_cluster import start_ray

#: Least time between two progress messages of rank 0, s (a message per step of a toy model
#: would cost more than the step).
PROGRESS_INTERVAL_S = 0.1


class _ProgressBox:
    """A Ray actor: rank 0 puts progress tuples and finally its result; the driver drains."""

    def __init__(self) -> None:
        self.updates: list[tuple[int, int, float, float]] = []
        self.result: PretrainResult | None = None

    def put(self, update: tuple[int, int, float, float]) -> None:
        self.updates.append(update)

    def finish(self, result: PretrainResult) -> None:
        self.result = result

    def drain(self) -> tuple[list[tuple[int, int, float, float]], PretrainResult | None]:
        updates, self.updates = self.updates, []
        return updates, self.result


def worker_threads(requested: int | None, local_workers: int) -> int:
    """Torch threads of one worker: ``requested``, else this node's CPUs shared by the
    ``local_workers`` workers on it (Ray sets ``OMP_NUM_THREADS=1`` in every worker)."""
    if requested is not None:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(local_workers, 1))


def _resumed_step(directory: Path) -> int:
    """The step of the ``trainer_state.pt`` this worker sees (0 without one)."""
    path = directory / TRAINER_STATE_FILE
    if not path.is_file():
        return 0
    document = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(document["trainer"]["step"])


def _check_same_start(directory: Path, device: torch.device) -> None:
    """Refuse to start when the workers would resume from different steps (DDP would hang)."""
    import torch.distributed as dist

    step = torch.tensor([_resumed_step(directory)], dtype=torch.int64, device=device)
    low, high = step.clone(), step.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if int(low) != int(high):
        raise RuntimeError(
            f"the workers see different {TRAINER_STATE_FILE} files in {directory} (steps "
            f"{int(low)} to {int(high)}): on a multi-node cluster --out must be on storage "
            "every node sees"
        )


def _worker_loop(settings: dict[str, Any]) -> None:
    """What every Ray Train worker runs: `pretrain` as one replica of the group."""
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    context = ray.train.get_context()
    torch.set_num_threads(worker_threads(settings["threads"], context.get_local_world_size()))
    replica = Replica(context.get_world_rank(), context.get_world_size())
    device = ray.train.torch.get_device()
    directory = Path(settings["directory"])
    _check_same_start(directory, device)

    def wrap(objective: torch.nn.Module) -> torch.nn.Module:
        # the class and SNR heads take no part in the reconstruction loss: a static graph
        # lets DDP skip them without searching the graph for unused parameters every step
        return ray.train.torch.prepare_model(
            objective, parallel_strategy_kwargs={"static_graph": True}
        )

    def reduce_mean(value: float) -> float:
        total = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return float(total) / replica.world_size

    box = settings["box"]
    last = [0.0]

    def progress(step: int, steps: int, loss: float, frames_per_s: float) -> None:
        now = time.monotonic()
        if replica.is_main and (now - last[0] >= PROGRESS_INTERVAL_S or step == steps):
            last[0] = now
            box.put.remote((step, steps, loss, frames_per_s))

    result = pretrain(
        settings["config"], directory, progress=progress, replica=replica, wrap=wrap,
        reduce_mean=reduce_mean, device=device, command=settings["command"],
    )  # fmt: skip
    if replica.is_main:
        import ray

        ray.get(box.finish.remote(result))


def pretrain_on_ray(
    config: PretrainConfig,
    directory: str | Path,
    *,
    workers: int,
    address: str | None = None,
    progress: PretrainProgress | None = None,
    command: str = "",
    threads: int | None = None,
) -> PretrainResult:
    """`pretrain` data-parallel on ``workers`` Ray Train workers (DDP; on GPUs when the
    cluster has one for each worker).

    Parameters
    ----------
    config : PretrainConfig
        ``batch_size`` is the global batch; it must be divisible by ``workers``.
    directory : path
        Checkpoint directory (resumed from like `pretrain`'s); made absolute here.
    workers : int
        Ray Train workers (one replica each; one GPU each, over NCCL, when the cluster has at
        least ``workers`` GPUs; else CPUs, over gloo).
    address : str, optional
        Ray cluster to join (``"auto"`` or ``HOST:PORT``); None starts a local cluster with
        at least ``workers`` CPUs, shut down at the end.
    progress : callable, optional
        `PretrainProgress`, called in this process with rank 0's steps (at most every
        `PROGRESS_INTERVAL_S` seconds, and at the last step).
    command : str
        The command line recorded in the checkpoint.
    threads : int, optional
        Torch threads per worker (default: the node's CPUs over its workers).

    Returns
    -------
    PretrainResult
        Rank 0's result.

    Raises
    ------
    ValueError
        Bad ``workers`` or ``threads``, a batch not divisible by ``workers``, or a
        ``trainer_state.pt`` in ``directory`` from a run with other settings.
    RuntimeError
        When the workers fail; the message carries the first worker's error.
    """
    if workers < 1 or (threads is not None and threads < 1):
        raise ValueError(f"need workers >= 1 and threads >= 1, got {workers} and {threads}")
    if config.batch_size % workers:
        raise ValueError(
            f"batch_size ({config.batch_size}) must be divisible by the {workers} workers"
        )
    directory = Path(directory).expanduser().resolve()
    read_trainer_state(config, directory)  # refuse other settings before Ray starts
    import ray

    owns_ray = not ray.is_initialized()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    start_ray(address, num_cpus=max(workers, cpus or 1))
    try:
        box: Any = ray.remote(num_cpus=0)(_ProgressBox).remote()
        settings = {"config": config, "directory": str(directory), "command": command,
                    "threads": threads, "box": box}  # fmt: skip
        _fit_with_progress(settings, workers, progress)
        result: PretrainResult | None = ray.get(box.drain.remote())[1]
    finally:
        if owns_ray:
            ray.shutdown()
    if result is None:
        raise RuntimeError("the Ray Train run ended without a result from rank 0")
    return result


def _fit_with_progress(
    settings: dict[str, Any], workers: int, progress: PretrainProgress | None
) -> None:
    """Run the `TorchTrainer` while a thread forwards rank 0's progress to ``progress``."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    gpus = ray.cluster_resources().get("GPU", 0)  # type: ignore[no-untyped-call]
    cuda = gpus >= workers  # one GPU per worker
    storage = tempfile.mkdtemp(prefix="tinylarge-ray-train-")
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=settings,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=cuda),
        torch_config=TorchConfig(backend="nccl" if cuda else "gloo"),
        run_config=RunConfig(name="tinylarge-pretrain", storage_path=storage),
    )
    done = threading.Event()

    def forward() -> None:
        while True:
            finished = done.wait(0.25)
            updates, _ = ray.get(settings["box"].drain.remote())
            for update in updates:
                if progress is not None:
                    progress(*update)
            if finished:
                return

    poller = threading.Thread(target=forward, name="pretrain-progress", daemon=True)
    poller.start()
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as error:
        raise RuntimeError(f"pretraining on Ray Train failed: {error}") from error
    finally:
        done.set()
        poller.join()
        shutil.rmtree(storage, ignore_errors=True)
