"""The running system: broker control (Mosquitto), the edge server, the device agents, fault
injection, and the digital twin (the simulator's prediction of a deployment).

``run(scenario, run_dir=...) -> DeployResult`` is the front door, beside `tinylarge.sim.run`:
broker, edge and fleet as separate processes on this machine, measured into ``metrics.json``.
The pieces work alone too: `Broker`; `EdgeServer` (in an event loop) or `EdgeProcess` (the
``tinylarge serve`` child); `Fleet` (device agents in an event loop) or `run_fleet` (spread
over processes); `FaultPlan` and `FaultInjector`; `simulate_deployment` and `sim_vs_real`.
A text scenario's hybrid language model: `run_hybrid_lm`, or `LmEdgeServer` and `LmFleet`.

The names are imported lazily (PEP 562): importing one light submodule (e.g.
`tinylarge.deploy.broker` to start a broker) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinylarge.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from tinylarge.deploy.artefacts import RunArtefacts, load_run
    from tinylarge.deploy.broker import Broker, BrokerAddress
    from tinylarge.deploy.device import FleetConfig
    from tinylarge.deploy.fault_injector import FaultInjector
    from tinylarge.deploy.faults import FaultPlan
    from tinylarge.deploy.fleet import Fleet
    from tinylarge.deploy.fleet_processes import FleetRun, run_fleet
    from tinylarge.deploy.hlm_fleet import LmFleet
    from tinylarge.deploy.hlm_run import HybridLmDeployResult, run_hybrid_lm
    from tinylarge.deploy.hlm_server import LmEdgeServer
    from tinylarge.deploy.progress import DeployProgress
    from tinylarge.deploy.result import DeployResult
    from tinylarge.deploy.runner import DeployError, run
    from tinylarge.deploy.server import EdgeServer, ServerConfig
    from tinylarge.deploy.supervisor import EdgeExit, EdgeProcess
    from tinylarge.deploy.twin import deployment_requests, sim_vs_real, simulate_deployment

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "RunArtefacts": "artefacts",
    "load_run": "artefacts",
    "Broker": "broker",
    "BrokerAddress": "broker",
    "FleetConfig": "device",
    "FaultInjector": "fault_injector",
    "FaultPlan": "faults",
    "Fleet": "fleet",
    "FleetRun": "fleet_processes",
    "run_fleet": "fleet_processes",
    "LmFleet": "hlm_fleet",
    "HybridLmDeployResult": "hlm_run",
    "run_hybrid_lm": "hlm_run",
    "LmEdgeServer": "hlm_server",
    "DeployProgress": "progress",
    "DeployResult": "result",
    "DeployError": "runner",
    "run": "runner",
    "EdgeServer": "server",
    "ServerConfig": "server",
    "EdgeExit": "supervisor",
    "EdgeProcess": "supervisor",
    "deployment_requests": "twin",
    "sim_vs_real": "twin",
    "simulate_deployment": "twin",
}

__all__ = [
    "Broker",
    "BrokerAddress",
    "DeployError",
    "DeployProgress",
    "DeployResult",
    "EdgeExit",
    "EdgeProcess",
    "EdgeServer",
    "FaultInjector",
    "FaultPlan",
    "Fleet",
    "FleetConfig",
    "FleetRun",
    "HybridLmDeployResult",
    "LmEdgeServer",
    "LmFleet",
    "RunArtefacts",
    "ServerConfig",
    "deployment_requests",
    "load_run",
    "run",
    "run_fleet",
    "run_hybrid_lm",
    "sim_vs_real",
    "simulate_deployment",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
