"""What a deployment takes from the simulator: a run's artefacts and the same requests.

`tinylarge fleet` replays the simulator's requests (`policy_requests`: same seed stream, same
Poisson arrivals, same frames per device) so that a deployed run and a simulated one can be
compared request by request. `DEPLOY_STAGES` are what `tinylarge deploy` runs when a user has
no run directory yet (up to the policies; trained models come from the cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from torch import nn

from tinylarge.config import Scenario, load_scenario
from tinylarge.data import Task
from tinylarge.deploy.link import LinkPlan, plan_links
from tinylarge.integrate.persistence import load_policy
from tinylarge.integrate.policy import Policy
from tinylarge.models.cache import ModelCache
from tinylarge.models.persistence import load_model
from tinylarge.secure.costs import protocol_overhead, run_device_id
from tinylarge.seeding import rng_for
from tinylarge.sim.engine import DeviceCompute, Requests
from tinylarge.sim.net_stages import network_stage
from tinylarge.sim.pipeline import PIPELINE
from tinylarge.sim.policy_stages import policy_requests
from tinylarge.sim.progress import SilentReporter
from tinylarge.sim.stages import StageContext, devices_stage, task_stage
from tinylarge.sim.state import RunState
from tinylarge.sim.tiny_stages import mcu_profiles
from tinylarge.tiny.footprint import footprint
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.model_file import load_tiny_model

#: The stages a deployment needs: models, the int8 model and the fitted policies.
DEPLOY_STAGES = tuple(s for s in PIPELINE if s.name not in ("colearning", "security"))


@dataclass(frozen=True)
class RunArtefacts:
    """What `tinylarge run` wrote that the edge and the devices use."""

    run_dir: Path
    scenario: Scenario
    tiny: TinyModel

    def policy(self, name: str) -> Policy:
        path = self.run_dir / "policies" / f"{name}.json"
        if not path.is_file():
            known = sorted(p.stem for p in (self.run_dir / "policies").glob("*.json"))
            raise ValueError(
                f"{self.run_dir} has no fitted policy {name!r}; it has: "
                f"{', '.join(known) or 'none'} (a run skips the router when its models leave it "
                "nothing to learn)"
            )
        return load_policy(path)

    def model(self, role: str) -> nn.Module:
        model, _ = load_model(self.run_dir / "models" / role)
        return model


def load_run(run_dir: str | Path) -> RunArtefacts:
    """The artefacts of a run directory; ``ValueError`` naming what is missing."""
    run_dir = Path(run_dir)
    for name in ("scenario.toml", "tiny_int8.tlm", "models", "policies"):
        if not (run_dir / name).exists():
            raise ValueError(
                f"{run_dir} is not a complete run directory: no {name} (make one with "
                "`tinylarge run --out DIR`, or let `tinylarge deploy` do it)"
            )
    return RunArtefacts(
        run_dir,
        load_scenario(run_dir / "scenario.toml"),
        load_tiny_model(run_dir / "tiny_int8.tlm"),
    )


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


def link_plan(
    run: RunArtefacts,
    policy_name: str,
    n_devices: int,
    requests: Requests,
    offload: npt.NDArray[np.bool_],
    device_macs: npt.NDArray[np.int64],
) -> LinkPlan:
    """Each request's device time and radio delays for a deployment with link emulation: the
    scenario's cell for ``n_devices`` devices, the target MCU's inference time, the security
    layer's bytes and crypto time, and the random stream the simulator's ``run_policy`` uses
    for ``policy_name``, so the emulated radio is the simulated one, draw for draw."""
    scenario = run.scenario
    state = deployment_state(scenario, n_devices, network=True)
    mcu = mcu_profiles(scenario)[scenario.tiny.target_mcu]
    fp = footprint(run.tiny, mcu)
    overhead = None
    if scenario.security.protect_messages:
        overhead = protocol_overhead(
            run_device_id(n_devices - 1, n_devices), mcu, scenario.security.aead
        )
    compute = DeviceCompute.from_footprint(int(fp.macs), fp.latency_s, fp.energy_j)
    return plan_links(
        rng_for(scenario.seed, "policies", "network", policy_name),
        state.network["cells"],
        state.network["settings"],
        device=requests.device,
        arrival_s=requests.arrival_s,
        offload=offload,
        device_macs=device_macs,
        seconds_per_mac=compute.seconds_per_mac,
        payload_bytes=run.tiny.input_spec.size,
        reply_bytes=state.reply_bytes(),
        overhead=overhead,
    )
