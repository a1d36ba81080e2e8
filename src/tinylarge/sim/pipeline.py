"""The main job as an explicit list of stages: `run(scenario) -> RunResult`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tinylarge.config.scenario import Scenario
from tinylarge.models.cache import ModelCache
from tinylarge.sim.codegen_stage import tiny_c_stage
from tinylarge.sim.colearning_stages import check_colearning_config, colearning_stage
from tinylarge.sim.foundation_stages import foundation_stage
from tinylarge.sim.hybrid_lm_stage import (
    check_text_config,
    hybrid_lm_stage,
    language_models_stage,
)
from tinylarge.sim.large_stages import check_large_config, train_large_stage
from tinylarge.sim.net_stages import check_network_config, network_stage
from tinylarge.sim.policy_stages import policies_stage
from tinylarge.sim.progress import Reporter, SilentReporter
from tinylarge.sim.security_stages import check_security_config, security_stage
from tinylarge.sim.split_exit_stages import split_exit_stage
from tinylarge.sim.stages import (
    StageContext,
    check_scenario,
    devices_stage,
    evaluate_stage,
    task_stage,
    train_tiny_stage,
)
from tinylarge.sim.state import RunResult, RunState
from tinylarge.sim.tiny_stages import (
    check_tiny_config,
    distill_tiny_stage,
    evaluate_int8_stage,
    quantize_tiny_stage,
)


@dataclass(frozen=True)
class Stage:
    """One step of the main job: a name (metrics key), a title (terminal) and the function."""

    name: str
    title: str
    run: Callable[[RunState, StageContext], str]


#: The main job, in order.
PIPELINE: tuple[Stage, ...] = (
    Stage("task", "Build the task", task_stage),
    Stage("devices", "Spread the training data over the devices", devices_stage),
    Stage("train_large", "Adapt or train the large model", train_large_stage),
    Stage("train_tiny", "Train the tiny model from labels", train_tiny_stage),
    Stage("distill_tiny", "Distil the tiny model from the large one", distill_tiny_stage),
    Stage("quantize_tiny", "Quantize the tiny model to int8", quantize_tiny_stage),
    Stage("evaluate", "Evaluate the float models on the test set", evaluate_stage),
    Stage("evaluate_int8", "Run the int8 model, check it, cost it on MCUs", evaluate_int8_stage),
    Stage(
        "foundation",
        "Foundation model: label efficiency, out of distribution, distillation",
        foundation_stage,
    ),
    Stage("tiny_c", "Generate C for the int8 model, run it on an emulated Cortex-M4", tiny_c_stage),
    Stage("network", "Simulate the 6G cell: coverage, messages, queues, energy", network_stage),
    Stage(
        "split_exit", "Graft a bottleneck and an exit head onto the large model", split_exit_stage
    ),
    Stage("policies", "Compare the inference policies over the network", policies_stage),
    Stage(
        "colearning", "Co-learning: federated, distillation, split, closed loop", colearning_stage
    ),
    Stage("security", "Security: wire fuzzing, aggregation under attack, privacy", security_stage),
)

#: The main job of a text scenario (``task.name = "text"``): hybrid language models.
TEXT_PIPELINE: tuple[Stage, ...] = (
    Stage(
        "language_models",
        "Load the draft and target language models, score held-out text",
        language_models_stage,
    ),
    Stage(
        "hybrid_lm",
        "Hybrid LMs over the 6G cell: SLM, LLM, HLM, U-HLM, CU-HLM",
        hybrid_lm_stage,
    ),
)


def pipeline_for(scenario: Scenario) -> tuple[Stage, ...]:
    """The stages a scenario's main job runs: `TEXT_PIPELINE` for a text task, else
    `PIPELINE`."""
    return TEXT_PIPELINE if scenario.task.name == "text" else PIPELINE


def run(
    scenario: Scenario,
    *,
    cache: ModelCache | None = None,
    reporter: Reporter | None = None,
    stages: tuple[Stage, ...] | None = None,
) -> RunResult:
    """Run every stage of the main job on ``scenario`` and return the final state.

    Parameters
    ----------
    scenario : Scenario
        The complete run description (seed included).
    cache : ModelCache, optional
        Where trained models are cached (default: the user cache directory).
    reporter : Reporter, optional
        Receives progress events (default: silent).
    stages : tuple of Stage
        The stages to run, in order (default: the whole main job, `pipeline_for`).
    """
    if stages is None:
        stages = pipeline_for(scenario)
    if scenario.task.name == "text":
        check_text_config(scenario)
        return _run_stages(scenario, stages, cache, reporter)
    check_scenario(scenario)
    check_large_config(scenario)
    check_tiny_config(scenario)
    check_network_config(scenario)
    check_colearning_config(scenario.colearning)
    check_security_config(scenario.security)
    return _run_stages(scenario, stages, cache, reporter)


def _run_stages(
    scenario: Scenario,
    stages: tuple[Stage, ...],
    cache: ModelCache | None,
    reporter: Reporter | None,
) -> RunResult:
    """Run ``stages`` in order on a fresh state (torch's global random state left as found)."""
    ctx = StageContext(cache=cache or ModelCache(), reporter=reporter or SilentReporter())
    state = RunState(scenario=scenario)
    with torch.random.fork_rng(devices=[]):  # stages seed torch explicitly; leave callers' state
        for stage in stages:
            ctx.reporter.stage_started(stage.name, stage.title)
            started = time.perf_counter()
            noted_before = set(state.skipped), set(state.warnings)
            summary = stage.run(state, ctx)
            state.timings_s[stage.name] = time.perf_counter() - started
            ctx.reporter.stage_finished(stage.name, state.timings_s[stage.name], summary)
            for path in [p for p in state.skipped if p not in noted_before[0]]:
                ctx.reporter.part_skipped(path, state.skipped[path])
            for path in [p for p in state.warnings if p not in noted_before[1]]:
                ctx.reporter.part_warning(path, state.warnings[path])
    return state
