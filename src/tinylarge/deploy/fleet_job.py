"""The fleet of a run directory (`tinylarge fleet`): N device agents replay the simulator's
requests for N devices (`tinylarge.deploy.twin.deployment_requests`) against the edge, with
the run's int8 model and fitted policy, and their per-request records are saved."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.config.deploy_config import DeployConfig
from tinylarge.deploy.artefacts import RunArtefacts
from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.faults import disconnected_devices
from tinylarge.deploy.files import RECORDS_FILE
from tinylarge.deploy.fleet import Disconnection, device_decisions
from tinylarge.deploy.fleet_processes import FleetRun, run_fleet
from tinylarge.deploy.keys import edge_public_key
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import FleetRecords
from tinylarge.deploy.summary import deploy_metrics, save_records
from tinylarge.deploy.twin import deployment_requests, link_plan


@dataclass(frozen=True)
class FleetJob:
    """One fleet run of a run directory's models.

    Attributes
    ----------
    devices : int
        Device agents (the first N enrolled identities; more are enrolled if needed).
    rate_per_device_hz, duration_s : float
        Poisson requests per second per device, for this many seconds (both > 0).
    policy : str
        The run's fitted policy the devices use.
    settings : DeployConfig
        The reply deadline, the offloads' QoS and the processes the agents run in.
    emulate_link : bool
        Delay each device's messages by its 6G link and MCU time as the simulator models them.
    prefix : str
        Topic prefix of the deployment.
    disconnect : (at_s, fraction, for_s) or None
        A fault: at ``at_s`` into the schedule (or when ``disconnect_trigger`` appears),
        ``fraction`` of the devices drop off the broker for ``for_s`` seconds.
    started_file : Path or None
        Gets the schedule's start (Unix time, s) when it starts.
    out : Path or None
        Where the records go (default: ``RUN_DIR/deploy/fleet_records.npz``).
    """

    devices: int
    rate_per_device_hz: float
    duration_s: float
    policy: str
    settings: DeployConfig
    emulate_link: bool = False
    prefix: str = "tinylarge"
    disconnect: tuple[float, float, float] | None = None
    disconnect_trigger: Path | None = None
    started_file: Path | None = None
    out: Path | None = None

    def disconnections(self) -> tuple[Disconnection, ...]:
        """The ``disconnect`` fault as the fleet takes it; ``ValueError`` for bad numbers."""
        if self.disconnect is None:
            return ()
        at_s, fraction, for_s = self.disconnect
        if at_s < 0 or for_s < 0 or not 0 < fraction <= 1:
            raise ValueError(
                f"--disconnect AT_S FRACTION FOR_S: times must be >= 0 and the fraction in "
                f"(0, 1], got {at_s:g} {fraction:g} {for_s:g}"
            )
        off = disconnected_devices(self.devices, fraction)
        return (Disconnection(at_s, off, for_s, self.disconnect_trigger),)


@dataclass(frozen=True)
class FleetJobResult:
    """What the fleet recorded: per request, each request's true class, where the records
    were saved, and `tinylarge.deploy.summary.deploy_metrics` of them (no edge counters)."""

    records: FleetRecords
    labels: npt.NDArray[np.int64]
    path: Path
    summary: dict[str, Any]


def run_fleet_job(
    run: RunArtefacts,
    address: BrokerAddress,
    job: FleetJob,
    on_start: Callable[[int], None] | None = None,
) -> FleetJobResult:
    """Run ``job`` against the edge at ``address`` and save its records; ``on_start(requests)``
    (if given) once the schedule is drawn. Over a locked-down broker (``mqtts://``) each device
    connects with its certificate from the run directory (`DeployLayout.tls_for`).
    ``ValueError`` for a bad job or a run directory the devices cannot use (no such policy, no
    edge public key, no certificates for an ``mqtts://`` broker)."""
    chosen = run.policy(job.policy)
    if job.rate_per_device_hz <= 0 or job.duration_s <= 0:
        raise ValueError(
            f"--rate and --duration must be > 0, got {job.rate_per_device_hz}, {job.duration_s}"
        )
    faults = job.disconnections()
    layout = DeployLayout(run.run_dir)
    identities = layout.enroll(job.devices)
    if not layout.edge_public.is_file():
        raise ValueError(
            f"no edge public key at {layout.edge_public}: start `tinylarge serve {run.run_dir}` "
            "once on this machine, or copy the edge's edge.json there"
        )
    task, requests = deployment_requests(
        run.scenario, job.devices, rate_per_device_hz=job.rate_per_device_hz,
        duration_s=job.duration_s,
    )  # fmt: skip
    frames = run.tiny.quantize_input(task.x_test)
    link = None
    if job.emulate_link:
        decision = device_decisions(run.tiny, chosen, frames[requests.sample], requests.device)
        link = link_plan(
            run, job.policy, job.devices, requests, decision.offload, decision.device_macs,
            settings=job.settings, prefix=job.prefix,
        )  # fmt: skip
    tls = tuple(layout.tls_for(i.device_id) for i in identities) if address.tls else None
    if on_start is not None:
        on_start(int(requests.device.size))
    settings = job.settings
    config = FleetConfig(
        deadline_s=settings.reply_deadline_s, target=run.scenario.tiny.target_mcu,
        qos=settings.qos,
    )  # fmt: skip
    records, installed, events = run_fleet(
        FleetRun(run.tiny, chosen, identities, edge_public_key(layout.edge_public), frames,
                 requests.device, requests.sample, requests.arrival_s, address,
                 Topics(job.prefix), config, link=link, disconnections=faults,
                 started_file=job.started_file, tls=tls),
        settings.processes,
    )  # fmt: skip
    path = job.out or layout.root / RECORDS_FILE
    labels = task.y_test[records.sample]
    save_records(records, path, labels=labels, installed=installed, events=events)
    summary = deploy_metrics(records, labels, {}, devices=job.devices, installed_versions=installed)
    return FleetJobResult(records, labels, path, summary)
