"""The digital twin: what the simulator predicts for a deployment, and how the measurement
compares.

`tinylarge fleet` replays the simulator's requests (`deployment_requests`: the policies stage's
seed stream, Poisson arrivals and frames per device) so that a deployed run and a simulated one
can be compared request by request; with the link emulated, each request's device time and
radio come from the same draws (`link_plan`). `simulate_deployment` runs the simulator's
`run_policy` on those requests with the deployed edge's measured batch service time, and
`sim_vs_real` sets the prediction beside the measurement (``deploy.sim_vs_real`` in
``metrics.json``). The twin's deadline is the device agents' reply timer
(``deploy.reply_deadline_s``), not the policies' planning deadline (``policies.deadline_s``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.config import Scenario
from tinylarge.config.deploy_config import DeployConfig
from tinylarge.data import Task
from tinylarge.deploy.artefacts import RunArtefacts
from tinylarge.deploy.link_emulator import LinkPlan, plan_links
from tinylarge.deploy.records import BY_EDGE, TIMED_OUT, FleetRecords
from tinylarge.integrate.inference.contract import Trace
from tinylarge.integrate.inference.frame_codec import dequantize_input
from tinylarge.models.cache import ModelCache
from tinylarge.models.evaluation import predict_logits
from tinylarge.net import EdgeServiceModel
from tinylarge.net.message_stats import percentile_summary
from tinylarge.net.overhead import ProtocolOverhead
from tinylarge.seeding import rng_for
from tinylarge.sim.engine import (
    DeviceCompute,
    OffloadPath,
    PolicyOutcome,
    Requests,
    run_policy,
)
from tinylarge.sim.net_stages import network_stage
from tinylarge.sim.policy_stages import policy_requests
from tinylarge.sim.progress import SilentReporter
from tinylarge.sim.security_costs import DEFAULT_PREFIX, message_overhead
from tinylarge.sim.stages import StageContext, devices_stage, task_stage
from tinylarge.sim.state import RunState
from tinylarge.sim.tiny_stages import mcu_profiles
from tinylarge.tiny import runtime
from tinylarge.tiny.footprint import footprint


def deployment_state(scenario: Scenario, n_devices: int, *, network: bool = False) -> RunState:
    """The task and devices (and with ``network`` the cell) of ``scenario`` with its device
    count replaced by ``n_devices``, as the simulator's stages make them."""
    devices = scenario.devices.model_copy(update={"count": n_devices})
    state = RunState(scenario=scenario.model_copy(update={"devices": devices}))
    ctx = StageContext(cache=ModelCache(enabled=False), reporter=SilentReporter())
    task_stage(state, ctx)
    devices_stage(state, ctx)
    if network:
        network_stage(state, ctx)
    return state


def deployment_requests(
    scenario: Scenario, n_devices: int, *, rate_per_device_hz: float, duration_s: float
) -> tuple[Task, Requests]:
    """The task and the requests the simulator's policies stage would draw for ``n_devices``
    devices (the scenario's device count replaced), at ``rate_per_device_hz`` for
    ``duration_s``."""
    state = deployment_state(scenario, n_devices)
    requests = policy_requests(state, rate_per_device_hz=rate_per_device_hz, duration_s=duration_s)
    return state.require_task(), requests


def device_costs(
    run: RunArtefacts,
    n_devices: int,
    *,
    settings: DeployConfig | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[DeviceCompute, ProtocolOverhead]:
    """The target MCU's compute per MAC (footprint model) and what every message pays: the
    security layer's costs (when messages are protected) carried by the deployment's transport
    (``settings.transport`` at ``settings.qos``, default the scenario's ``[deploy]``; topics
    under ``prefix``), as the simulator charges a device."""
    scenario = run.scenario
    mcu = mcu_profiles(scenario)[scenario.tiny.target_mcu]
    fp = footprint(run.tiny, mcu)
    overhead = message_overhead(scenario, n_devices, deploy=settings, prefix=prefix)
    return DeviceCompute.from_footprint(int(fp.macs), fp.latency_s, fp.energy_j), overhead


def link_plan(
    run: RunArtefacts,
    policy_name: str,
    n_devices: int,
    requests: Requests,
    offload: npt.NDArray[np.bool_],
    device_macs: npt.NDArray[np.int64],
    *,
    settings: DeployConfig | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> LinkPlan:
    """Each request's device time and radio delays for a deployment with link emulation: the
    scenario's cell for ``n_devices`` devices, the target MCU's inference time, the security
    layer's bytes and crypto time carried by the transport (`device_costs` with ``settings``
    and ``prefix``: the bytes on air include the MQTT packet and TLS records), and the random
    stream the simulator's ``run_policy`` uses for ``policy_name``, so the emulated radio is
    the simulated one, draw for draw."""
    scenario = run.scenario
    state = deployment_state(scenario, n_devices, network=True)
    compute, overhead = device_costs(run, n_devices, settings=settings, prefix=prefix)
    return plan_links(
        rng_for(scenario.seed, "policies", "network", policy_name),
        state.require_network().cells,
        state.require_network().settings,
        device=requests.device,
        arrival_s=requests.arrival_s,
        offload=offload,
        device_macs=device_macs,
        seconds_per_mac=compute.seconds_per_mac,
        payload_bytes=run.tiny.input_spec.size,
        reply_bytes=state.reply_bytes(),
        overhead=overhead,
    )


def deployed_edge(service_fit: dict[str, float] | None, config: DeployConfig) -> EdgeServiceModel:
    """The simulator's model of the deployed edge: its batch service time as measured on the
    running server (`tinylarge.deploy.server.service_fit`; none measured: instantaneous), and
    the batching it ran with (``config``, the scenario's ``[deploy]`` after the options)."""
    fit = service_fit or {"setup_s": 0.0, "per_item_s": 0.0}
    return EdgeServiceModel(
        setup_s=fit["setup_s"],
        per_item_s=fit["per_item_s"],
        max_batch=config.edge_max_batch,
        max_wait_s=config.edge_max_wait_s,
        source="measured on the deployed edge server",
    )


def simulate_deployment(
    run: RunArtefacts,
    policy_name: str,
    n_devices: int,
    *,
    rate_per_device_hz: float,
    duration_s: float,
    edge: EdgeServiceModel,
    deadline_s: float,
    transport_s: float = 0.0,
    settings: DeployConfig | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[Requests, PolicyOutcome]:
    """What the simulator predicts for a deployment: the same requests, policy, cell, MCU and
    security layer (`run_policy` with the stream `link_plan` uses), and ``edge`` the deployed
    server's measured service time and batching. The trace is the int8 runtime's logits and
    the large model on the int8 frame, as the deployed devices and edge compute them.

    ``deadline_s`` is the device agents' reply timer (``deploy.reply_deadline_s``): a request
    answered later does not count as met. ``transport_s`` is what the deployment's message
    transport adds to a round trip beyond the radio (the MQTT broker's two relays and the
    clients' stacks, measured on the running system): half of it is added to the backhaul
    each way. 0 models the radio alone. ``settings`` (the ``[deploy]`` the deployment ran
    with; default the scenario's) and ``prefix`` (its topic prefix) set the transport's bytes
    (`device_costs`)."""
    scenario = run.scenario
    state = deployment_state(scenario, n_devices, network=True)
    requests = policy_requests(state, rate_per_device_hz=rate_per_device_hz, duration_s=duration_s)
    task = state.require_task()
    x_q = run.tiny.quantize_input(task.x_test)
    spec = run.tiny.input_spec
    x_edge = dequantize_input(x_q, scale=spec.scale, zero_point=spec.zero_point)
    trace = Trace(
        tiny_logits=run.tiny.dequantize_output(runtime.run(run.tiny, x_q).reshape(len(x_q), -1)),
        large_logits=predict_logits(run.model("large"), x_edge),
        y=task.y_test,
    )
    compute, overhead = device_costs(run, n_devices, settings=settings, prefix=prefix)
    link = state.require_network().settings
    outcome = run_policy(
        rng_for(scenario.seed, "policies", "network", policy_name),
        run.policy(policy_name),
        trace,
        requests,
        OffloadPath(
            cells=state.require_network().cells,
            settings=replace(link, backhaul_s=link.backhaul_s + transport_s / 2),
            edge=edge,
            compute=compute,
            reply_bytes=state.reply_bytes(),
            overhead=overhead,
        ),
        deadline_s=deadline_s,
        session_lifetime_s=scenario.security.session_lifetime_s,
        duration_s=duration_s,
    )
    return requests, outcome


def _both(sim: float | None, real: float | None) -> dict[str, float | None]:
    ratio = sim / real if sim is not None and real else None
    return {"sim": sim, "real": real, "ratio": ratio}


def _pcts(values: npt.NDArray[np.float64]) -> dict[str, float | None]:
    return percentile_summary(values[np.isfinite(values)])


def sim_vs_real(
    records: FleetRecords, labels: npt.NDArray[np.int64], outcome: PolicyOutcome
) -> dict[str, Any]:
    """``deploy.sim_vs_real``: the simulator's prediction and the measurement side by side,
    request by request over the same schedule (records in arrival order, as the simulator's)."""
    real_lat = np.where(records.route >= 0, records.latency_s, np.nan)
    sim_edge = outcome.offloaded & outcome.delivered
    real_edge = records.route == BY_EDGE
    out: dict[str, Any] = {
        "requests": int(records.device.size),
        "same_decisions": bool(np.array_equal(records.offload, outcome.offloaded)),
        "same_deliveries": bool(np.array_equal(real_edge, sim_edge)),
        "latency_s": {},
        "edge_latency_s": {},
    }
    for key, sim_values, real_values in (
        ("latency_s", outcome.latency_s, real_lat),
        ("edge_latency_s", outcome.latency_s[sim_edge], real_lat[real_edge]),
    ):
        s, r = _pcts(sim_values), _pcts(real_values)
        out[key] = {q: _both(s[q], r[q]) for q in s}
    out["accuracy"] = _both(float(outcome.correct.mean()), float((records.answer == labels).mean()))
    out["offload_fraction"] = _both(float(outcome.offloaded.mean()), float(records.offload.mean()))
    out["bytes_up_per_inference"] = _both(
        float(outcome.bytes_up.mean()), float(records.bytes_up.mean())
    )
    out["transport_bytes_up_per_inference"] = _both(
        float(outcome.wire_bytes_up.mean()), float(records.transport_bytes_up.mean())
    )
    out["fell_back_fraction"] = _both(
        float((outcome.offloaded & ~outcome.delivered).mean()),
        float((records.route == TIMED_OUT).mean()),
    )
    return out
