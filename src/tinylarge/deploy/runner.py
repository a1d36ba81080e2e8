"""`run(scenario, ...) -> DeployResult`: broker, edge server and device fleet as separate
processes on this machine, run, stopped and measured (what `tinylarge deploy` does).

The steps: the models (a run directory given, or made by the main job's first stages), device
and edge identities and certificates, a Mosquitto (unless a broker is given), the edge
(``tinylarge serve``), optionally the fault injector, then the fleet (``tinylarge fleet``)
replaying the simulator's requests in real time; every process is stopped whatever happens;
then ``metrics.json`` from what the devices recorded (`tinylarge.deploy.result`). An edge that
dies on its own is a recorded fault (``deploy.edge_exit``), never a failed run.

The scenario's ``[deploy] transport`` chooses the broker the run starts: ``mqtt-tls`` (the
default) a locked-down one (`tinylarge.deploy.broker.BrokerSecurity`: mutual TLS with the run
directory's certificates, the per-device ACL for this run's topic prefix, the CRL), ``mqtt`` an
open one. A broker given by URL is used as it says (``mqtts://``: TLS). A fault run over TLS
revokes a spare certificate (`REVOKED_SPARE`) before the broker starts and hands its adversary
one real device's certificate (`tinylarge.deploy.adversary.StolenCredentials`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinylarge.config import Scenario
from tinylarge.deploy.adversary import StolenCredentials
from tinylarge.deploy.artefacts import RunArtefacts, load_run, make_models
from tinylarge.deploy.broker import Broker, parse_broker_url
from tinylarge.deploy.fault_injector import FaultInjector
from tinylarge.deploy.faults import FaultPlan
from tinylarge.deploy.files import (
    BROKER_DIR,
    DISCONNECT_TRIGGER_FILE,
    FLEET_LOG,
    METRICS_FILE,
    MODELS_DIR,
    RECORDS_FILE,
    SERVE_LOG,
    STARTED_FILE,
)
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.progress import DeployProgress, SilentProgress
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.result import (
    DeployResult,
    TwinInputs,
    broker_refused,
    deploy_section,
    edge_stats,
    fault_section,
    twin_section,
)
from tinylarge.deploy.summary import load_events, load_records
from tinylarge.deploy.supervisor import EdgeProcess, FleetProcess, python_cli
from tinylarge.sim.engine import PolicyOutcome
from tinylarge.tiny.model_file import to_bytes

#: The certificate a fault run over TLS revokes before its broker starts, for its adversary to
#: try (it names no device: `tinylarge.secure.costs.run_device_id` never makes it).
REVOKED_SPARE = "revoked-spare"


class DeployError(RuntimeError):
    """The deployment could not run: the broker, the edge or the fleet failed (the message
    says which, with the end of its log)."""


@dataclass(frozen=True)
class _Spec:
    """One deployment, resolved and checked."""

    scenario: Scenario
    out_dir: Path
    devices: int
    rate_per_device_hz: float
    duration_s: float
    policy: str
    broker: str | None
    faults: FaultPlan | None
    emulate_link: bool
    update_every: int
    prefix: str
    #: what the processes connect over: ``mqtt-tls`` or ``mqtt``
    transport: str

    @property
    def started_file(self) -> Path:
        return self.out_dir / STARTED_FILE


def run(
    scenario: Scenario,
    *,
    run_dir: str | Path,
    devices: int | None = None,
    duration_s: float = 10.0,
    rate_per_device_hz: float | None = None,
    policy: str = "router",
    models: str | Path | None = None,
    broker: str | None = None,
    faults: FaultPlan | None = None,
    emulate_link: bool = False,
    update_every: int = 500,
    progress: DeployProgress | None = None,
) -> DeployResult:
    """Deploy ``scenario`` on this machine for ``duration_s`` seconds of requests, measure it
    and write ``metrics.json`` (``deploy.*``) into ``run_dir``.

    Parameters
    ----------
    scenario : Scenario
        Its ``[deploy]`` section sets the edge's batching, the devices' reply deadline, the
        MQTT QoS and the fleet's processes (`tinylarge.config.deploy_config`); its device
        count and request rate are the defaults of ``devices`` and ``rate_per_device_hz``.
    run_dir : path
        Output directory (created): metrics, records, logs (`tinylarge.deploy.files`).
    devices : int, optional
        Device agents (>= 1).
    duration_s : float
        Seconds of requests (> 0).
    rate_per_device_hz : float, optional
        Poisson requests per second per device (> 0).
    policy : str
        The fitted policy the devices run (``router``, ``cascade``, ``large``, ...).
    models : path, optional
        A run directory (`tinylarge run --out DIR`) whose models and policies to use; None:
        make them (the main job up to the policies, trained models from the cache) in
        ``run_dir/run``.
    broker : str, optional
        ``mqtt://HOST:PORT`` of a broker to use, ``mqtts://HOST:PORT`` of a locked-down one
        (the edge and the devices then connect with their certificates from the models' run
        directory); None: start a Mosquitto for the run, locked down unless the scenario's
        ``[deploy] transport`` is ``mqtt``.
    faults : FaultPlan, optional
        Inject these faults during the run (``deploy.faults``; not with ``emulate_link``).
    emulate_link : bool
        Delay each device's messages by its 6G link and MCU time as the simulator models them,
        and set the simulator's prediction beside the measurement (``deploy.sim_vs_real``).
    update_every : int
        Labelled offloads between two tiny models the edge pushes (its live loop is off with
        ``emulate_link``: both sides then run one model).
    progress : DeployProgress, optional
        Receives the run's events (default: silent).

    Returns
    -------
    DeployResult
        Also when the edge died on its own during the run (it is not restarted): its
        requests then fell back to the devices, and ``deploy.edge_exit`` says how and when.

    Raises
    ------
    ValueError
        A bad argument, or a run directory without the policy or models.
    DeployError
        The broker, the edge or the fleet failed to start, or the fleet failed.
    """
    spec = _spec(
        scenario, Path(run_dir), devices, duration_s, rate_per_device_hz, policy, broker,
        faults, emulate_link, update_every,
    )  # fmt: skip
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    artefacts = load_run(models) if models is not None else make_models(
        scenario, spec.out_dir / MODELS_DIR
    )  # fmt: skip
    artefacts.policy(policy)  # fails now, not in the fleet process
    credentials = _enroll(spec, DeployLayout(artefacts.run_dir))
    edge, injector, url, started = _supervise(
        spec, artefacts, progress or SilentProgress(), credentials
    )
    return _collect(spec, artefacts, url, edge, injector, started)


def _enroll(spec: _Spec, layout: DeployLayout) -> StolenCredentials | None:
    """The edge's and the devices' identities and certificates; for a fault run over TLS, the
    adversary's credentials (`_stolen_credentials`)."""
    layout.edge()
    identities = layout.enroll(spec.devices)
    if spec.faults is None or spec.transport != "mqtt-tls":
        return None
    return _stolen_credentials(layout, [i.device_id for i in identities])


def _stolen_credentials(layout: DeployLayout, device_ids: list[str]) -> StolenCredentials:
    """The adversary's credentials: the first device's certificate and `REVOKED_SPARE`'s,
    revoked now (before the broker reads the CRL)."""
    layout.pki.issue_client(REVOKED_SPARE)
    layout.pki.revoke(REVOKED_SPARE)
    others = tuple(device_ids[1:]) or (REVOKED_SPARE,)
    return StolenCredentials(device_ids[0], layout.tls_for(device_ids[0]),
                             layout.tls_for(REVOKED_SPARE), others)  # fmt: skip


def _spec(
    scenario: Scenario,
    out_dir: Path,
    devices: int | None,
    duration_s: float,
    rate: float | None,
    policy: str,
    broker: str | None,
    faults: FaultPlan | None,
    emulate_link: bool,
    update_every: int,
) -> _Spec:
    n = scenario.devices.count if devices is None else devices
    hz = scenario.policies.rate_per_device_hz if rate is None else rate
    if n < 1 or not hz > 0 or not duration_s > 0 or update_every < 1:
        raise ValueError(
            "devices and update_every must be >= 1, rate_per_device_hz and duration_s > 0; "
            f"got {n}, {update_every}, {hz}, {duration_s}"
        )
    if faults is not None and emulate_link:
        raise ValueError(
            "faults and an emulated link measure different things (reliability under faults; "
            "the simulator's accuracy on a healthy system): run them separately"
        )
    transport = scenario.deploy.transport
    if broker is not None:
        transport = "mqtt-tls" if parse_broker_url(broker).tls else "mqtt"
    prefix = f"tinylarge-{os.getpid()}-{secrets.token_hex(3)}"  # no retained leftovers
    return _Spec(scenario, out_dir, n, hz, duration_s, policy, broker, faults, emulate_link,
                 update_every, prefix, transport)  # fmt: skip


def _edge_process(spec: _Spec, artefacts: RunArtefacts, broker_url: str) -> EdgeProcess:
    settings = spec.scenario.deploy
    options = {
        "broker": broker_url,
        "max-batch": settings.edge_max_batch,
        "max-wait-ms": settings.edge_max_wait_s * 1e3,
        "update-every": spec.update_every,
        "prefix": spec.prefix,
        "qos": settings.qos,
    }
    flags = ["--no-live-loop"] if spec.emulate_link else []  # one model: sim vs real
    command = python_cli("serve", artefacts.run_dir, options, flags)
    layout = DeployLayout(artefacts.run_dir)
    return EdgeProcess(command, layout.edge_state, spec.out_dir / SERVE_LOG)


def _fleet_process(spec: _Spec, artefacts: RunArtefacts, broker_url: str) -> FleetProcess:
    settings = spec.scenario.deploy
    options: dict[str, object] = {
        "broker": broker_url,
        "devices": spec.devices,
        "rate": spec.rate_per_device_hz,
        "duration": spec.duration_s,
        "policy": spec.policy,
        "deadline-ms": settings.reply_deadline_s * 1e3,
        "processes": settings.processes,
        "out": spec.out_dir / RECORDS_FILE,
        "prefix": spec.prefix,
        "qos": settings.qos,
        "started-file": spec.started_file,
    }
    flags = ["--emulate-link"] if spec.emulate_link else []
    if spec.faults is not None and "disconnect" in spec.faults.at_s:
        plan, trigger = spec.faults, spec.out_dir / DISCONNECT_TRIGGER_FILE
        trigger.unlink(missing_ok=True)
        flags += ["--disconnect", f"{plan.at_s['disconnect']}",
                  f"{plan.disconnect_fraction}", f"{plan.disconnect_s}",
                  "--disconnect-trigger", str(trigger)]  # fmt: skip
    command = python_cli("fleet", artefacts.run_dir, options, flags)
    return FleetProcess(command, spec.out_dir / FLEET_LOG, spec.started_file)


def _injector(
    spec: _Spec,
    artefacts: RunArtefacts,
    edge: EdgeProcess,
    broker: Broker | None,
    url: str,
    credentials: StolenCredentials | None,
) -> FaultInjector | None:
    if spec.faults is None:
        return None
    injector = FaultInjector(
        spec.faults,
        edge=edge,
        broker=broker,
        address=parse_broker_url(url),
        topics=Topics(spec.prefix),
        layout=DeployLayout(artefacts.run_dir),
        model_bytes=to_bytes(artefacts.tiny),
        target=artefacts.scenario.tiny.target_mcu,
        started_file=spec.started_file,
        disconnect_trigger=spec.out_dir / DISCONNECT_TRIGGER_FILE,
        credentials=credentials,
    )
    injector.start()
    return injector


def _start_broker(spec: _Spec, artefacts: RunArtefacts) -> Broker:
    """The run's own Mosquitto, started: locked down (this run's topic prefix in its ACL)
    unless the transport is plain ``mqtt``."""
    security = None
    if spec.transport == "mqtt-tls":
        security = DeployLayout(artefacts.run_dir).broker_security(prefixes=(spec.prefix,))
    broker = Broker(spec.out_dir / BROKER_DIR, security=security)
    try:
        broker.start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as error:
        raise DeployError(str(error)) from None
    return broker


def _supervise(
    spec: _Spec,
    artefacts: RunArtefacts,
    progress: DeployProgress,
    credentials: StolenCredentials | None,
) -> tuple[EdgeProcess, FaultInjector | None, str, Broker | None]:
    """Broker, edge, injector and fleet: run the fleet to its end, then stop them all (every
    step runs even if one fails: no broker or edge left behind); the broker's URL, and the
    broker when the run started it."""
    broker, url = None, spec.broker
    if url is None:
        broker = _start_broker(spec, artefacts)
        url = broker.address.url
    edge, fleet = _edge_process(spec, artefacts, url), _fleet_process(spec, artefacts, url)
    injector = None
    try:
        try:
            edge.start()
        except RuntimeError as error:
            raise DeployError(str(error)) from None
        progress.edge_ready(edge.pid or 0, Topics(spec.prefix))
        injector = _injector(spec, artefacts, edge, broker, url, credentials)
        progress.message(
            f"edge server up; fleet of {spec.devices} devices for {spec.duration_s:g} s ..."
        )
        try:
            code = fleet.run(
                spec.duration_s,
                on_tick=lambda elapsed: progress.fleet_running(elapsed, spec.duration_s),
                on_schedule_start=progress.schedule_started,
            )
        finally:
            progress.fleet_finished()
        if code != 0:
            raise DeployError(f"the fleet exited with code {code}; its log:\n{fleet.log_tail()}")
    finally:
        with contextlib.ExitStack() as cleanup:  # run in reverse: the devices first
            if broker is not None:
                cleanup.callback(broker.stop)
            cleanup.callback(edge.stop)
            if injector is not None:
                cleanup.callback(injector.join)
            cleanup.callback(fleet.stop)
    return edge, injector, url, broker


def _collect(
    spec: _Spec,
    artefacts: RunArtefacts,
    broker_url: str,
    edge: EdgeProcess,
    injector: FaultInjector | None,
    broker: Broker | None,
) -> DeployResult:
    """``metrics.json`` from the fleet's records, the edge's counters (if it wrote them), the
    twin, the faults and the broker's refusals; the `DeployResult`."""
    records_path = spec.out_dir / RECORDS_FILE
    records, labels, installed = load_records(records_path)
    events = load_events(records_path)
    stats = edge_stats(DeployLayout(artefacts.run_dir))
    extra: dict[str, Any] = {
        "policy": spec.policy,
        "broker": broker_url,
        "duration_s": spec.duration_s,
        "rate_per_device_hz": spec.rate_per_device_hz,
        "run_dir": str(artefacts.run_dir),
        "settings": spec.scenario.deploy.model_dump(),
        "transport": spec.transport,
        **broker_refused(
            None if broker is None else broker.log_counts(),
            None if injector is None or injector.credentials is None else injector.refused,
        ),
    }
    section = deploy_section(records, labels, installed, events, stats, devices=spec.devices,
                             extra=extra, edge_exit=edge.died)  # fmt: skip
    simulated: PolicyOutcome | None = None
    if spec.emulate_link and stats:
        twin = TwinInputs(artefacts, spec.policy, spec.devices, spec.rate_per_device_hz,
                          spec.duration_s, spec.scenario.deploy, spec.prefix)  # fmt: skip
        section["sim_vs_real"], simulated = twin_section(twin, records, labels, stats)
    elif spec.emulate_link:
        section["sim_vs_real_skipped"] = (
            "the edge wrote no counters (it did not stop cleanly): no measured service time "
            "to simulate it with"
        )
    if injector is not None:
        section.update(fault_section(injector, records, events, edge.starts))
    metrics = {"deploy": section}
    metrics_path = spec.out_dir / METRICS_FILE
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    return DeployResult(metrics, records, labels, spec.out_dir, artefacts.run_dir, metrics_path,
                        records_path, edge.died, simulated)  # fmt: skip
