"""The split/exit stage and the `split` and `early_exit` policies built on it.

The stage grafts a learned bottleneck and an exit head onto the trained large model
(`tinylarge.models.split_exit`; cached like every trained model). The policies' device costs
are counted in MACs (`tinylarge.integrate.inference.split_computing.module_macs`) and costed at the
tiny model's
per-MAC latency and energy on the target MCU: the graft runs in float32 in the simulation, its
int8 deployment is assumed to cost what the tiny model's int8 kernels cost per MAC.

Split points are the large model's own cuts ``k = 0..n_blocks`` (activation quantized to
``split_activation_bits``) plus the bottleneck at ``split_at``; each device picks the one that
minimises its latency or energy at its mean link rate
(`tinylarge.integrate.inference.split_computing.choose_split`). The RF transformer's blocks are
its patch embedding and each encoder layer: at size s the embedding costs the device 32,768
MACs and every encoder layer 3.2 M (linear layers and attention products), and every cut sends
the 128 x 16 residual stream (2,056 B at 8 bits against 264 B for the frame), so the MCU-sized
graft cuts after the embedding (``split_at = 1``: a 24-byte code at the defaults).

A large model that cannot be cut between blocks (not a `BlockModel`, e.g. an ONNX file or a
Hugging Face model users bring, or one with layers whose MACs are not counted) leaves the split
and early-exit policies out, with the reason in ``skipped`` (`why_not_splittable`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

import tinylarge
from tinylarge.config.training_config import TrainingSpec
from tinylarge.integrate.inference.contract import Trace
from tinylarge.integrate.inference.early_exit import (
    BOTTLENECK_LOGITS_KEY,
    EXIT_LOGITS_KEY,
    EarlyExit,
)
from tinylarge.integrate.inference.split_computing import (
    QUANT_HEADER_BYTES,
    SplitPolicy,
    activation_bytes_per_split,
    choose_split,
    cumulative_macs,
    device_macs_per_block,
    module_macs,
    split_logits_key,
    split_outputs,
)
from tinylarge.models.blocks import BlockModel
from tinylarge.models.cache import cache_key
from tinylarge.models.persistence import ModelManifest
from tinylarge.models.split_exit import SplitExitModel, split_exit_logits, train_split_exit
from tinylarge.models.training import TrainingReport
from tinylarge.net.mean_rate import MeanRateLink
from tinylarge.seeding import derive_seed
from tinylarge.sim.stage_results import SplitExit
from tinylarge.sim.stages import CACHE_FORMAT, StageContext
from tinylarge.sim.state import RunState

#: Label of the bottleneck among the split points in reports.
BOTTLENECK_LABEL = "bottleneck"


def _large(state: RunState) -> BlockModel:
    model = state.require_model("large").model
    if not isinstance(model, BlockModel):
        raise ValueError(
            f"split and early_exit need a partitionable large model (BlockModel); "
            f"{state.scenario.models.large.name!r} is {type(model).__name__}"
        )
    return model


def why_not_splittable(state: RunState) -> str | None:
    """Why the large model cannot be cut and costed between blocks (None when it can): it is
    not a `BlockModel` (e.g. an ONNX file or a Hugging Face model users bring), or a block holds
    a layer whose MACs `device_macs_per_block` does not count."""
    model = state.require_model("large").model
    name = state.scenario.models.large.name
    if not isinstance(model, BlockModel):
        return (
            f"the large model {name!r} is a {type(model).__name__}, not a BlockModel: it cannot "
            "be cut between blocks"
        )
    try:
        device_macs_per_block(model, state.require_task().input_shape)
    except ValueError as error:
        return f"cannot count the device MACs of the large model {name!r}: {error}"
    return None


def _graft_key(state: RunState, seed: int) -> str:
    """Cache key of the graft: the large model's key, the graft's settings and its seed."""
    return cache_key(
        {
            "cache_format": CACHE_FORMAT,
            "tinylarge": tinylarge.__version__,
            "torch": torch.__version__,
            "large": state.require_model("large").cache_key,
            "split_exit": state.scenario.policies.split_exit.model_dump(mode="json"),
            "seed": seed,
        }
    )


def _train_graft(
    model: SplitExitModel, state: RunState, ctx: StageContext, seed: int
) -> dict[str, TrainingReport]:
    """Train the exit head, then the bottleneck, of ``model`` on the training frames."""
    task, config = state.require_task(), state.scenario.policies.split_exit
    parts: tuple[tuple[Literal["exit", "bottleneck"], TrainingSpec], ...] = (
        ("exit", config.exit_training),
        ("bottleneck", config.bottleneck_training),
    )
    reports: dict[str, TrainingReport] = {}
    for part, spec in parts:

        def progress(
            epoch: int,
            batch: int,
            batches: int,
            val_acc: float | None,
            role: str = f"split_exit.{part}",
            epochs: int = spec.epochs,
        ) -> None:
            ctx.reporter.training(role, epoch, epochs, batch, batches, val_acc)

        reports[part] = train_split_exit(
            model, task.x_train, task.y_train, spec, part=part, seed=seed, progress=progress
        )
    return reports


def _load_or_train_graft(
    state: RunState, ctx: StageContext, large: BlockModel
) -> tuple[SplitExitModel, dict[str, TrainingReport], bool]:
    """The graft on ``large`` from the model cache, else trained and cached; its training
    reports and whether it came from the cache."""
    task, config = state.require_task(), state.scenario.policies.split_exit

    def build(_manifest: ModelManifest | None = None) -> SplitExitModel:
        return SplitExitModel(
            large,
            task.input_shape,
            split_at=config.split_at,
            code_channels=config.code_channels,
            code_bits=config.code_bits,
            exit_widths=tuple(config.exit_widths),
        )

    seed = derive_seed(state.scenario.seed, "models", "split_exit")
    key = _graft_key(state, seed)
    cached = ctx.cache.get(key, build)
    if cached is not None:
        model, document = cached
        if not isinstance(model, SplitExitModel):
            raise TypeError(f"cache entry {key} holds a {type(model).__name__}, not a graft")
        records = document.get("extra", {}).get("training", {})
        return model, {n: TrainingReport.from_dict(r) for n, r in records.items()}, True
    torch.manual_seed(seed)
    model = build()
    reports = _train_graft(model, state, ctx, seed)
    options: dict[str, int | str] = {
        "split_at": config.split_at,
        "code_channels": config.code_channels,
        "code_bits": config.code_bits,
        "exit_widths": ",".join(map(str, config.exit_widths)),
    }
    manifest = ModelManifest("split_exit", dict(options), task.input_shape, task.num_classes)
    ctx.cache.put(key, model, manifest, {"training": {k: r.to_dict() for k, r in reports.items()}})
    return model, reports, False


def split_exit_stage(state: RunState, ctx: StageContext) -> str:
    """Train (or load) the bottleneck and exit head on the frozen large model."""
    scenario = state.scenario
    config = scenario.policies.split_exit
    if not scenario.policies.enabled or not config.enabled:
        return "disabled"
    reason = why_not_splittable(state)
    if reason is not None:
        state.skip("policies.early_exit", reason)
        return f"skipped: {reason}"
    task, large = state.require_task(), _large(state)
    if config.split_at > len(large.blocks):
        raise ValueError(
            f"policies.split_exit.split_at = {config.split_at} exceeds the large model's "
            f"{len(large.blocks)} blocks"
        )
    model, reports, from_cache = _load_or_train_graft(state, ctx, large)
    device_macs = module_macs(model.device_blocks, task.input_shape)
    graft = SplitExit(
        model=model,
        from_cache=from_cache,
        reports=reports,
        block_macs=device_macs,
        exit_macs=device_macs + module_macs(model.exit, model.activation_shape),
        encoder_macs=module_macs(model.encoder, model.activation_shape),
        code_bytes=math.ceil(model.code_elements * config.code_bits / 8) + QUANT_HEADER_BYTES,
    )
    state.split_exit = graft
    origin = "from cache" if graft.from_cache else "trained"
    return (
        f"cut after block {config.split_at}: code {model.code_shape} x {config.code_bits} b = "
        f"{graft.code_bytes} B on air, exit head {graft.exit_macs:,} device MACs ({origin})"
    )


def split_exit_extra(state: RunState, x: npt.ArrayLike) -> dict[str, np.ndarray]:
    """Exit-head and bottleneck logits on ``x`` (empty when the stage did not run)."""
    graft: SplitExit | None = state.split_exit
    if graft is None:
        return {}
    exit_logits, edge_logits = split_exit_logits(graft.model, x)
    return {EXIT_LOGITS_KEY: exit_logits, BOTTLENECK_LOGITS_KEY: edge_logits}


@dataclass(frozen=True)
class SplitPlan:
    """Each device's split point and what every candidate point costs."""

    labels: list[str]  # "k=0" .. "k=n", "bottleneck"
    activation_bytes: npt.NDArray[np.int64]
    device_macs: npt.NDArray[np.int64]
    k_per_device: npt.NDArray[np.int64]

    def distribution(self) -> dict[str, int]:
        """Devices per chosen split point, by label (only points some device chose)."""
        counts = np.bincount(self.k_per_device, minlength=len(self.labels))
        return {label: int(c) for label, c in zip(self.labels, counts, strict=True) if c}


def plan_split(state: RunState) -> SplitPlan:
    """Candidate split points and each device's choice (`choose_split` at its mean rate)."""
    scenario = state.scenario
    config = scenario.policies
    task, large = state.require_task(), _large(state)
    bits = config.split_activation_bits
    labels = [f"k={k}" for k in range(len(large.blocks) + 1)]
    size = activation_bytes_per_split(large, task.input_shape, bits)
    macs = cumulative_macs(device_macs_per_block(large, task.input_shape))
    graft: SplitExit | None = state.split_exit
    if graft is not None:
        labels.append(BOTTLENECK_LABEL)
        size = np.append(size, graft.code_bytes)
        macs = np.append(macs, graft.bottleneck_macs)
    network = state.require_network()
    cells, settings = network.cells, network.settings
    fp = state.footprints[scenario.tiny.target_mcu]
    k = choose_split(
        MeanRateLink.of_cells(cells, settings),
        device_macs_cum=macs,
        activation_bytes=size,
        mcu_cycles_per_mac=fp.latency_s * fp.mcu.clock_hz / fp.macs,
        mcu_clock_hz=fp.mcu.clock_hz,
        mcu_power_w=fp.energy_j / fp.latency_s,
        objective=config.split_objective,
    )
    return SplitPlan(labels, size.astype(np.int64), macs.astype(np.int64), k)


def split_policy_and_extra(
    state: RunState, plan: SplitPlan, x_test: np.ndarray, extra: dict[str, np.ndarray]
) -> tuple[SplitPolicy, dict[str, np.ndarray]]:
    """The split policy and the test-set logits of the split points some device chose.

    ``extra`` already holds the bottleneck's logits (`split_exit_extra`); the large model's
    own cuts are evaluated only where chosen.
    """
    large = _large(state)
    bits = state.scenario.policies.split_activation_bits
    keys = [split_logits_key(k) for k in range(len(large.blocks) + 1)]
    if len(plan.labels) > len(keys):
        keys.append(BOTTLENECK_LOGITS_KEY)
    needed: dict[str, np.ndarray] = {}
    for k in np.unique(plan.k_per_device):
        if int(k) <= len(large.blocks):
            needed[keys[k]] = split_outputs(large, x_test, int(k), bits)
    policy = SplitPolicy(
        activation_bytes=plan.activation_bytes,
        device_macs_cum=plan.device_macs,
        k_per_device=plan.k_per_device,
        logits_keys=keys,
    )
    return policy, {**extra, **needed}


def early_exit_policy(state: RunState) -> EarlyExit | None:
    """The early-exit policy tuned later on validation data (None without the graft)."""
    graft: SplitExit | None = state.split_exit
    if graft is None:
        return None
    config = state.scenario.policies
    return EarlyExit(
        config.early_exit_confidence,
        exit_macs=graft.exit_macs,
        encoder_macs=graft.encoder_macs,
        code_bytes=graft.code_bytes,
        target_offload=config.target_offload,
    )


def split_exit_metrics(
    state: RunState, plan: SplitPlan | None, test: Trace, sample: npt.ArrayLike
) -> dict[str, Any]:
    """The graft's sizes, costs and accuracies and the split points' distribution over devices.

    Accuracies are over the requested test samples ``sample`` (each part alone: the exit head
    answering everything, the bottleneck sending everything, the large model on the raw frame).
    """
    graft: SplitExit | None = state.split_exit
    out: dict[str, Any] = {}
    if graft is not None:
        idx = np.asarray(sample, dtype=np.int64)
        y = test.y[idx]

        def accuracy(key: str) -> float:
            return float(np.mean(np.argmax(test.extra[key][idx], axis=1) == y))

        out["graft"] = {
            "exit_accuracy": accuracy(EXIT_LOGITS_KEY),
            "bottleneck_accuracy": accuracy(BOTTLENECK_LOGITS_KEY),
            "large_accuracy": float(np.mean(test.large_prediction[idx] == y)),
            "split_at": graft.model.split_at,
            "code_shape": list(graft.model.code_shape),
            "code_bits": graft.model.code_bits,
            "code_bytes": graft.code_bytes,
            "exit_device_macs": graft.exit_macs,
            "encoder_device_macs": graft.encoder_macs,
        }
    if plan is not None:
        out["split_points"] = {
            label: {"bytes_up": int(b), "device_macs": int(m)}
            for label, b, m in zip(
                plan.labels, plan.activation_bytes, plan.device_macs, strict=True
            )
        }
        out["split_k_distribution"] = plan.distribution()
    return out
