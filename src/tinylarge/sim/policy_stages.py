"""The policies stage: every inference policy on the same devices, requests and network.

Traces: the int8 tiny model's and the large model's outputs on the test set (from the
evaluation stages), plus the large model on each requantized frame of the large_compressed
baseline. Policies that tune (cascade, router) are fitted on fresh validation frames from the
generator (radio) or, for other tasks, on the last training samples (a biased stand-in, said
in the metrics). Each device issues Poisson requests drawing test frames like its own data (by
SNR when the task has it), and `tinylarge.sim.engine.run_policy` costs every decision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinylarge.data import generate_radio_frames
from tinylarge.errors import CannotFitError
from tinylarge.integrate.inference.baselines import (
    Cascade,
    LargeCompressed,
    LargeOnly,
    Oracle,
    TinyOnly,
)
from tinylarge.integrate.inference.contract import FRAMES_KEY, Policy, Trace, large_logits_key
from tinylarge.integrate.inference.early_exit import BOTTLENECK_LOGITS_KEY
from tinylarge.integrate.inference.frame_codec import (
    dequantize_frames,
    dequantize_input,
    requantize_frames,
)
from tinylarge.integrate.inference.router import Router
from tinylarge.integrate.inference.split_computing import SplitPolicy
from tinylarge.models.evaluation import predict_logits
from tinylarge.seeding import derive_seed, rng_for
from tinylarge.sim.engine import (
    DeviceCompute,
    OffloadPath,
    PolicyOutcome,
    Requests,
    ResourceLimits,
    draw_requests,
    run_policy,
)
from tinylarge.sim.security_costs import message_overhead, run_overhead
from tinylarge.sim.split_exit_stages import (
    SplitPlan,
    early_exit_policy,
    plan_split,
    split_exit_extra,
    split_exit_metrics,
    split_policy_and_extra,
    why_not_splittable,
)
from tinylarge.sim.stage_results import PoliciesResult, best_within_offload
from tinylarge.sim.stages import StageContext
from tinylarge.sim.state import TINY_INT8_ROLE, RunState
from tinylarge.tiny import runtime
from tinylarge.tiny.graph import TinyModel


def _int8_logits(model: TinyModel, x_q: np.ndarray) -> np.ndarray:
    return model.dequantize_output(runtime.run(model, x_q).reshape(len(x_q), -1))


def edge_logits(state: RunState, x_q: np.ndarray) -> np.ndarray:
    """The large model's logits on int8 frames as the edge receives them (dequantized): an
    offload sends the int8 frame, not the float one the model was evaluated on."""
    spec = state.require_tiny_int8().input_spec
    x_float = dequantize_input(x_q, scale=spec.scale, zero_point=spec.zero_point)
    return predict_logits(state.require_model("large").model, x_float)


def _compressed_extra(state: RunState, x_q: np.ndarray, bits: list[int]) -> dict[str, np.ndarray]:
    """The large model's logits on the frames requantized to each number of bits."""
    tiny = state.require_tiny_int8()
    spec = tiny.input_spec
    large = state.require_model("large").model
    extra: dict[str, np.ndarray] = {}
    for b in bits:
        approx = dequantize_frames(requantize_frames(x_q, b), b)
        x_float = dequantize_input(approx, scale=spec.scale, zero_point=spec.zero_point)
        extra[large_logits_key(b)] = predict_logits(large, x_float)
    return extra


def _validation_trace(state: RunState) -> tuple[Trace, str]:
    """Outputs of both models on validation frames, and where those frames come from."""
    scenario, task = state.scenario, state.require_task()
    n = scenario.policies.validation_frames
    snr: np.ndarray | None
    if task.name == "radio":
        radio = scenario.task.radio.model_dump(exclude={"n_train", "n_test"})
        x, y, snr = generate_radio_frames(n, rng_for(scenario.seed, "policies", "val"), **radio)
        source = f"{n:,} fresh frames from the generator"
    else:
        x, y = task.x_train[-n:], task.y_train[-n:]
        train_snr = task.meta_train.get("snr_db")
        snr = train_snr[-n:] if train_snr is not None else None
        source = f"the last {len(x):,} training samples (seen in training: optimistic)"
    tiny = state.require_tiny_int8()
    x_q = tiny.quantize_input(x)
    trace = Trace(
        tiny_logits=_int8_logits(tiny, x_q),
        large_logits=edge_logits(state, x_q),
        y=np.asarray(y, dtype=np.int64),
        snr_db=None if snr is None else np.asarray(snr, dtype=np.float64),
        extra=split_exit_extra(state, x),
    )
    return trace, source


#: Policies also run without the security layer (same requests and channel draws), to show
#: what the layer costs them.
UNPROTECTED_REFERENCES = ("large", "router")


#: A tuned policy whose validation offload fraction misses ``target_offload`` by more than this
#: (ties in a confidence that barely varies) is flagged in the terminal, metrics and report.
OFFLOAD_TARGET_TOLERANCE = 0.1


def _fit_or_skip(state: RunState, key: str, policy: Policy, validation: Trace) -> Policy | None:
    """``policy.fit(validation)``, or None with the reason recorded when the models leave it
    nothing to learn (`CannotFitError`); flag a missed offload target."""
    try:
        fitted = policy.fit(validation)
    except CannotFitError as error:
        state.skip(f"policies.{key}", str(error))
        return None
    target = state.scenario.policies.target_offload
    reached = getattr(fitted, "validation_offload_fraction_", None)
    if reached is not None and abs(reached - target) > OFFLOAD_TARGET_TOLERANCE:
        state.warn(
            f"policies.{key}",
            f"tuned to offload {target:.0%} but its confidence takes too few distinct values on "
            f"the validation frames: it offloads {reached:.0%} of them",
        )
    return fitted


def build_policies(
    state: RunState, validation: Trace, split: SplitPolicy | None = None
) -> list[Policy]:
    """The compared policies, tuned on ``validation`` where they tune.

    A tuned policy that cannot be fitted on the run's models is left out and recorded in
    ``state.skipped`` (e.g. the router when the large model never fixes a validation frame).
    """
    config = state.scenario.policies
    tiny = state.require_tiny_int8()
    target = state.footprints[state.scenario.tiny.target_mcu]
    frame_bytes = tiny.input_spec.size  # one int8 per I/Q value
    tiny_macs = int(target.macs)
    tuned: dict[str, Policy] = {
        "cascade": Cascade(
            config.cascade_confidence,
            target_offload=config.target_offload,
            frame_bytes=frame_bytes,
            tiny_macs=tiny_macs,
        ),
        "router": Router(
            tiny_macs=tiny_macs,
            bytes_per_offload=frame_bytes,
            target_offload=config.target_offload,
            hidden_units=config.router_hidden_units,
            seed=derive_seed(state.scenario.seed, "policies", "router"),
        ),
    }
    policies: list[Policy] = [
        TinyOnly(tiny_macs=tiny_macs),
        LargeOnly(frame_bytes=frame_bytes),
        *(LargeCompressed(b, tiny.input_spec.shape) for b in config.compressed_bits),
    ]
    for key, policy in tuned.items():
        fitted = _fit_or_skip(state, key, policy, validation)
        if fitted is not None:
            policies.append(fitted)
    policies.append(Oracle(frame_bytes=frame_bytes, tiny_macs=tiny_macs))
    if split is not None:
        policies.append(split)
    early_exit = early_exit_policy(state)
    if early_exit is not None:
        fitted = _fit_or_skip(state, "early_exit", early_exit, validation)
        if fitted is not None:
            policies.append(fitted)
    return policies


def policy_requests(state: RunState, *, rate_per_device_hz: float, duration_s: float) -> Requests:
    """The requests the policies are compared on (and a deployment replays): Poisson per
    device; each draws a test frame like its device's data, by SNR if known, else by class."""
    task = state.require_task()
    if state.partition is None:
        raise ValueError("requests need the devices stage's partition")
    by_snr = "snr_db" in task.meta_test and "snr_db" in task.meta_train
    return draw_requests(
        rng_for(state.scenario.seed, "policies", "requests"),
        state.partition,
        task.meta_train["snr_db"] if by_snr else task.y_train,
        task.meta_test["snr_db"] if by_snr else task.y_test,
        rate_per_device_hz=rate_per_device_hz,
        duration_s=duration_s,
    )


def _key(policy: Policy) -> str:
    if isinstance(policy, LargeCompressed):
        return f"large_compressed_{policy.bits_per_sample}b"
    return policy.name


def _test_trace(state: RunState) -> tuple[Trace, SplitPlan | None, SplitPolicy | None]:
    """The test-set trace every policy runs on (the int8 frames the devices send, the large
    model on them as the edge receives them, every graft and split point's logits), with the
    split plan and policy when the large model can be split."""
    task, tiny = state.require_task(), state.require_tiny_int8()
    x_q = tiny.quantize_input(task.x_test)
    extra = {
        FRAMES_KEY: x_q,
        **_compressed_extra(state, x_q, state.scenario.policies.compressed_bits),
        **split_exit_extra(state, task.x_test),
    }
    reason = why_not_splittable(state)
    if reason is not None:
        state.skip("policies.split", reason)
    plan = plan_split(state) if reason is None else None
    split = None
    if plan is not None:
        split, extra = split_policy_and_extra(state, plan, task.x_test, extra)
    test = Trace(
        tiny_logits=state.logits[TINY_INT8_ROLE],
        large_logits=edge_logits(state, x_q),
        y=task.y_test,
        snr_db=task.meta_test.get("snr_db"),
        extra=extra,
    )
    return test, plan, split


def _run_policies(
    state: RunState, policies: list[Policy], test: Trace, requests: Requests
) -> tuple[dict[str, PolicyOutcome], dict[str, dict[str, Any]]]:
    """Each policy's outcome over the run's network and the deployment's transport (with the
    security layer when it is on), and the summaries of `UNPROTECTED_REFERENCES` run again
    without the security layer (same draws, same transport)."""
    scenario, network = state.scenario, state.require_network()
    config = scenario.policies
    fp = state.footprints[scenario.tiny.target_mcu]
    compute = DeviceCompute.from_footprint(int(fp.macs), fp.latency_s, fp.energy_j)
    limits = (
        ResourceLimits(deadline_s=config.deadline_s, energy_budget_j=config.energy_budget_j)
        if config.resource_aware
        else None
    )
    security = run_overhead(state)
    n_devices = scenario.devices.count
    protected = message_overhead(scenario, n_devices)
    transport_only = message_overhead(scenario, n_devices, protect=False)
    outcomes: dict[str, PolicyOutcome] = {}
    unprotected: dict[str, dict[str, Any]] = {}
    for policy in policies:

        def run(protect: bool, policy: Policy = policy) -> PolicyOutcome:
            return run_policy(
                rng_for(scenario.seed, "policies", "network", _key(policy)),
                policy,
                test,
                requests,
                OffloadPath(
                    cells=network.cells,
                    settings=network.settings,
                    edge=network.edge,
                    compute=compute,
                    reply_bytes=state.reply_bytes(),
                    overhead=protected if protect else transport_only,
                ),
                deadline_s=config.deadline_s,
                limits=limits,
                session_lifetime_s=scenario.security.session_lifetime_s,
                duration_s=config.duration_s,
                shards=network.shards,
                runner=network.runner,
            )

        outcomes[_key(policy)] = run(True)
        if security is not None and _key(policy) in UNPROTECTED_REFERENCES:
            unprotected[_key(policy)] = run(False).summary()  # same draws, no security layer
    return outcomes, unprotected


def _tuned_scalars(policy: Policy) -> dict[str, float]:
    """A fitted policy's finite scalar attributes (names ending in ``_``, scikit-learn style)."""
    return {
        k: float(v)
        for k, v in vars(policy).items()
        if k.endswith("_") and isinstance(v, int | float) and math.isfinite(float(v))
    }


def policies_stage(state: RunState, ctx: StageContext) -> str:
    """Run every policy on the same requests over the network of the run."""
    config = state.scenario.policies
    if not config.enabled or state.network is None or state.partition is None:
        return "disabled (needs the network stage and a device partition)"
    test, plan, split = _test_trace(state)
    validation, validation_source = _validation_trace(state)
    requests = policy_requests(
        state, rate_per_device_hz=config.rate_per_device_hz, duration_s=config.duration_s
    )
    policies = build_policies(state, validation, split)
    outcomes, unprotected = _run_policies(state, policies, test, requests)
    graft = state.split_exit
    result = PoliciesResult(
        outcomes=outcomes,
        fitted={_key(p): p for p in policies},
        requests=requests,
        validation_source=validation_source,
        tuned={_key(p): _tuned_scalars(p) for p in policies},
        payload_accuracy=payload_accuracy(
            test, requests.sample, outcomes, graft.code_bytes if graft is not None else None
        ),
        unprotected=unprotected,
        split_exit=split_exit_metrics(state, plan, test, requests.sample),
    )
    state.policies = result
    best = best_within_offload(result.summaries(), config.target_offload)
    headline = (
        f"; best at <= {config.target_offload:.0%} offload: {best['policy']} "
        f"{best['accuracy_share_of_large']:.1%} of large's accuracy, "
        f"{best['energy_share_of_large']:.0%} of its device energy"
        if best
        else ""
    )
    return f"{len(outcomes)} policies on {requests.device.size:,} requests{headline}"


def payload_accuracy(
    test: Trace,
    sample: np.ndarray,
    outcomes: dict[str, PolicyOutcome],
    bottleneck_bytes: int | None,
) -> dict[str, dict[str, float]]:
    """Accuracy of the edge's answer for each way of sending the whole frame, over the requested
    samples and without network losses, with the mean payload bytes each sends per request
    (without the security layer's header and tag)."""
    y = test.y[sample]
    sent: dict[str, tuple[np.ndarray, float]] = {
        "large": (test.large_logits, float(outcomes["large"].payload_bytes_up.mean()))
    }
    for name, outcome in outcomes.items():
        if name.startswith("large_compressed_"):
            bits = int(name.removeprefix("large_compressed_").removesuffix("b"))
            payload = float(outcome.payload_bytes_up.mean())
            sent[name] = (test.extra[large_logits_key(bits)], payload)
    if bottleneck_bytes is not None and BOTTLENECK_LOGITS_KEY in test.extra:
        sent["bottleneck"] = (test.extra[BOTTLENECK_LOGITS_KEY], float(bottleneck_bytes))
    return {
        name: {
            "accuracy": float(np.mean(np.argmax(logits[sample], axis=1) == y)),
            "bytes_up": size,
        }
        for name, (logits, size) in sent.items()
    }
