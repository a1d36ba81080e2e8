"""What a deployment measured (`DeployResult`) and how ``metrics.json`` is assembled from it.

Everything comes from what the devices recorded (`tinylarge.deploy.records`): an edge that
died for good leaves no counters behind, so its part of ``deploy.edge`` is empty (None) and
``deploy.edge_exit`` says how and when it ended; the requests are all there all the same
(answered on the device, by the edge, or fallen back at the deadline).

Keys added beside those of `tinylarge.deploy.summary.deploy_metrics`: ``settings`` (the
``[deploy]`` values the run used), ``edge_exit`` (None when the edge ended as asked),
``devices_unattached_at_start`` and ``hello_retries`` (`FleetEvents`), and when the twin
could not run (no measured edge), ``sim_vs_real_skipped`` with the reason; ``transport`` and
``broker_refused`` (`broker_refused`), in the text deployment's ``deploy`` too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.config.deploy_config import DeployConfig
from tinylarge.deploy.artefacts import RunArtefacts
from tinylarge.deploy.fault_injector import FaultInjector
from tinylarge.deploy.faults import fault_metrics
from tinylarge.deploy.files import ANSWERED_FILE, STATS_FILE
from tinylarge.deploy.layout import DeployLayout
from tinylarge.deploy.records import FleetEvents, FleetRecords
from tinylarge.deploy.summary import deploy_metrics, round_trip_split
from tinylarge.deploy.supervisor import EdgeExit
from tinylarge.deploy.twin import deployed_edge, sim_vs_real, simulate_deployment
from tinylarge.sim.engine import PolicyOutcome
from tinylarge.sim.security_costs import DEFAULT_PREFIX


@dataclass(frozen=True)
class DeployResult:
    """One deployment's measurement.

    Attributes
    ----------
    metrics : dict
        ``{"deploy": {...}}`` exactly as written to ``metrics.json``.
    records : FleetRecords
        Per request, in arrival order: route, answer, times, bytes, model version.
    labels : ndarray of int64, shape (m,)
        Each request's true class.
    out_dir : Path
        Where the run wrote its files (`tinylarge.deploy.files`).
    models_dir : Path
        The run directory whose models and policies the edge and the devices used.
    metrics_path, records_path : Path
        ``metrics.json`` and ``fleet_records.npz`` in ``out_dir``.
    edge_exit : EdgeExit or None
        How the edge ended if nobody asked it to (it was not restarted), else None.
    simulated : PolicyOutcome or None
        The digital twin's prediction for the same requests (with ``emulate_link`` and a
        measured edge), else None.
    """

    metrics: dict[str, Any]
    records: FleetRecords
    labels: npt.NDArray[np.int64]
    out_dir: Path
    models_dir: Path
    metrics_path: Path
    records_path: Path
    edge_exit: EdgeExit | None
    simulated: PolicyOutcome | None

    @property
    def deploy(self) -> dict[str, Any]:
        """``metrics["deploy"]``."""
        section: dict[str, Any] = self.metrics["deploy"]
        return section


def edge_stats(layout: DeployLayout) -> dict[str, Any]:
    """The edge's counters if it wrote them (a clean stop), else ``{}`` (it was killed)."""
    path = layout.edge_state / STATS_FILE
    return dict(json.loads(path.read_text())) if path.is_file() else {}


#: The refusals ``deploy.broker_refused`` counts.
REFUSALS = ("no_certificate", "revoked", "acl_denied")


def broker_refused(
    log: Mapping[str, int] | None, adversary: Mapping[str, int] | None
) -> dict[str, Any]:
    """``deploy.broker_refused.{no_certificate, revoked, acl_denied}`` and
    ``deploy.broker_refused_sources``: what the broker refused during the run.

    Two witnesses see the refusals. ``log``: the run's own broker's log
    (`tinylarge.deploy.broker.Broker.log_counts`; None when the broker was given by URL): every
    client's refusals, as far as the log names their reason (Mosquitto logs a TLS handshake
    that ended for want of a certificate, and refused publishes; a revoked certificate and a
    bad one may both read "certificate verify failed"). ``adversary``: what the fault run's
    adversary saw refused itself (`tinylarge.deploy.adversary.Adversary.refused`; None without
    one): its connection attempts without a certificate and with a revoked one, named by
    `tinylarge.deploy.mqtt.diagnose_refusal`, and its publishes the ACL refused (MQTT 5 PUBACK
    0x87). Both count the same events where they overlap, so each figure is the larger of the
    two that count it (a lower bound of the refusals; None when no witness can count it: the
    log has no ``revoked``, so without an adversary that figure is None); the two sources
    stand beside it.
    """
    sources = {"broker_log": None if log is None else dict(log),
               "adversary": None if adversary is None else dict(adversary)}  # fmt: skip
    counts: dict[str, int | None] = {}
    for reason in REFUSALS:
        seen = [int(w[reason]) for w in (log, adversary) if w is not None and reason in w]
        counts[reason] = max(seen) if seen else None
    return {"broker_refused": counts, "broker_refused_sources": sources}


def fault_section(
    injector: FaultInjector, records: FleetRecords, events: FleetEvents, edge_starts: int
) -> dict[str, Any]:
    """``deploy.faults`` and what the devices saw during a fault run."""
    out: dict[str, Any] = {
        "faults": fault_metrics(records, events, injector.records),
        "faults_plan": asdict(injector.plan),
        "faults_skipped": dict(injector.skipped),
        "edge_starts": edge_starts,
        "unexpected_replies": int(events.unexpected_reply_s.size),
        "refused_bundles": dict(events.refused_bundles),
        "device_rejected_messages": events.rejected_messages,
    }
    if injector.errors:
        out["faults_errors"] = dict(injector.errors)
    return out


@dataclass(frozen=True)
class TwinInputs:
    """What the digital twin needs besides the records: the models, the schedule's size and
    the ``[deploy]`` settings the run used."""

    run: RunArtefacts
    policy: str
    devices: int
    rate_per_device_hz: float
    duration_s: float
    settings: DeployConfig
    #: the deployment's topic prefix (the transport's bytes depend on its topics' lengths)
    prefix: str = DEFAULT_PREFIX


def twin_section(
    twin: TwinInputs,
    records: FleetRecords,
    labels: npt.NDArray[np.int64],
    stats: dict[str, Any],
) -> tuple[dict[str, Any], PolicyOutcome]:
    """``deploy.sim_vs_real``: the same requests through the simulator with the edge as
    measured, with the transport (broker relays, clients' stacks) measured on the running
    system and without it; and the twin's outcome (with the transport)."""
    layout = DeployLayout(twin.run.run_dir)
    ids = [identity.device_id for identity in layout.enroll(twin.devices)]
    split = round_trip_split(records, ids, layout.edge_state / ANSWERED_FILE)
    transport = split["transport_s"]["p50"] or 0.0
    edge = deployed_edge(stats.get("service_fit"), twin.settings)

    def simulate(transport_s: float) -> PolicyOutcome:
        _, outcome = simulate_deployment(
            twin.run, twin.policy, twin.devices, rate_per_device_hz=twin.rate_per_device_hz,
            duration_s=twin.duration_s, edge=edge, deadline_s=twin.settings.reply_deadline_s,
            transport_s=transport_s, settings=twin.settings, prefix=twin.prefix,
        )  # fmt: skip
        return outcome

    simulated, radio_only = simulate(transport), simulate(0.0)
    section = {
        **sim_vs_real(records, labels, simulated),
        "edge_service": stats.get("service_fit"),
        "round_trip_split": split,
        "transport_s": transport,
        "without_transport": sim_vs_real(records, labels, radio_only)["latency_s"],
    }
    return section, simulated


def deploy_section(
    records: FleetRecords,
    labels: npt.NDArray[np.int64],
    installed: list[int],
    events: FleetEvents,
    stats: dict[str, Any],
    *,
    devices: int,
    extra: dict[str, Any],
    edge_exit: EdgeExit | None,
) -> dict[str, Any]:
    """``deploy``: `deploy_metrics` of the records and the edge's counters (``{}`` if it
    wrote none), ``extra``, and the keys of the module doc."""
    section = deploy_metrics(
        records, labels, stats, devices=devices, installed_versions=installed, extra=extra
    )
    section["edge_exit"] = None if edge_exit is None else edge_exit.metrics(events.started_unix)
    section["devices_unattached_at_start"] = events.unattached_at_start
    section["hello_retries"] = events.hello_retries
    return section
