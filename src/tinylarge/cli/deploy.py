"""`tinylarge serve | fleet`: the parts of the integrated system running for real over MQTT,
each on its own (`tinylarge broker | revoke`: `tinylarge.cli.broker`; `tinylarge deploy` runs
them together: `tinylarge.cli.deploy_run`).

Options left unset take the run's scenario's ``[deploy]`` section
(`tinylarge.config.deploy_config`); given, they override it for this process. A broker URL
``mqtts://HOST:PORT`` means a locked-down broker: the edge and the devices connect with their
certificates from the run directory (`tinylarge.deploy.layout.DeployLayout.tls_for`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tinylarge.cli.common import console, errors_as_failures

if TYPE_CHECKING:
    from tinylarge.config.deploy_config import DeployConfig
    from tinylarge.deploy.artefacts import RunArtefacts

BrokerOption = Annotated[
    str,
    typer.Option(
        "--broker",
        help="The MQTT broker, mqtt://HOST:PORT, or mqtts://HOST:PORT for a locked-down one "
        "(then this run directory's certificates are used).",
    ),
]
PrefixOption = Annotated[str, typer.Option(help="Topic prefix of this deployment.")]
EmulateLinkOption = Annotated[
    bool,
    typer.Option(
        help="Delay each device's messages by its 6G link and MCU time as the simulator "
        "models them (the scenario's cell, radio profile and target MCU)."
    ),
]
QosOption = Annotated[
    int | None,
    typer.Option(
        help="MQTT QoS of offloads and replies: 1 at least once, 0 at most once (half the "
        "packets; a lost message becomes a timed-out request). Default: the scenario's "
        "\\[deploy] qos (1).",
        min=0,
        max=1,
        show_default=False,
    ),
]
MaxBatchOption = Annotated[
    int | None,
    typer.Option(
        help="The edge's largest batch. Default: the scenario's \\[deploy] edge_max_batch (64).",
        min=1,
        show_default=False,
    ),
]
MaxWaitOption = Annotated[
    float | None,
    typer.Option(
        help="How long a batch's first request waits for more, ms. Default: the scenario's "
        "\\[deploy] edge_max_wait_s (2 ms).",
        min=0,
        show_default=False,
    ),
]
DeadlineOption = Annotated[
    float | None,
    typer.Option(
        help="A device's reply deadline: after it the device keeps its own answer, ms. "
        "Default: the scenario's \\[deploy] reply_deadline_s (500 ms).",
        min=0,
        show_default=False,
    ),
]
ProcessesOption = Annotated[
    int | None,
    typer.Option(
        help="Processes the devices are spread over. Default: the scenario's \\[deploy] "
        "processes (1).",
        min=1,
        show_default=False,
    ),
]
PolicyOption = Annotated[str, typer.Option(help="Fitted policy of the run the devices use.")]
EnrollOnlyOption = Annotated[
    bool,
    typer.Option(
        help="Only make the devices' keys, certificates and registry.json (for the edge), then "
        "stop."
    ),
]
DisconnectOption = Annotated[
    tuple[float, float, float] | None,
    typer.Option(
        help="A fault: at AT_S into the schedule, FRACTION of the devices drop off the "
        "broker for FOR_S seconds (three numbers: AT_S FRACTION FOR_S).",
        show_default=False,
    ),
]
DisconnectTriggerOption = Annotated[
    Path | None,
    typer.Option(help="With --disconnect: drop the devices when this file appears, not at AT_S."),
]
StartedFileOption = Annotated[
    Path | None,
    typer.Option(help="Write the schedule's start (Unix time, s) here when it starts."),
]
RunDirArgument = Annotated[
    Path, typer.Argument(help="A run directory written by `tinylarge run`.", file_okay=False)
]


def broker_address(url: str) -> Any:
    from tinylarge.deploy.broker import parse_broker_url

    with errors_as_failures(ValueError):
        return parse_broker_url(url)


def load_run_or_fail(run_dir: Path) -> RunArtefacts:
    """The run directory's artefacts, or a one-line error saying what is missing."""
    from tinylarge.deploy.artefacts import load_run

    with errors_as_failures(ValueError):
        return load_run(run_dir)


def deploy_settings(
    config: DeployConfig,
    *,
    max_batch: int | None = None,
    max_wait_ms: float | None = None,
    deadline_ms: float | None = None,
    qos: int | None = None,
    processes: int | None = None,
    transport: str | None = None,
) -> DeployConfig:
    """The scenario's ``[deploy]`` section with the options given (not None) in its place."""
    from tinylarge.config import ScenarioError
    from tinylarge.config.deploy_config import with_overrides

    with errors_as_failures(ScenarioError):
        options = {
            "edge_max_batch": max_batch,
            "edge_max_wait_s": None if max_wait_ms is None else max_wait_ms / 1e3,
            "reply_deadline_s": None if deadline_ms is None else deadline_ms / 1e3,
            "qos": qos,
            "processes": processes,
            "transport": transport,
        }
        source = "the command's options (--max-batch, --max-wait-ms, --deadline-ms, ...)"
        return with_overrides(config, source, options)


def serve(
    run_dir: RunDirArgument,
    broker_url: BrokerOption = "mqtt://127.0.0.1:1883",
    max_batch: MaxBatchOption = None,
    max_wait_ms: MaxWaitOption = None,
    metrics_port: Annotated[
        int, typer.Option(help="Prometheus /metrics port on 127.0.0.1 (0: none).", min=0)
    ] = 0,
    update_every: Annotated[
        int, typer.Option(help="Labelled offloads between two pushed tiny models.", min=1)
    ] = 500,
    live_loop: Annotated[
        bool, typer.Option(help="Distil and push new tiny models from the offloads.")
    ] = True,
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads.", min=1)] = 1,
    qos: QosOption = None,
    prefix: PrefixOption = "tinylarge",
) -> None:
    """Serve the run's large model to enrolled devices until Ctrl-C (or SIGTERM)."""
    from tinylarge.deploy.layout import DeployLayout
    from tinylarge.deploy.mqtt import BrokerRefused
    from tinylarge.deploy.serve import EdgeOptions, build_edge
    from tinylarge.deploy.serve import serve as serve_edge
    from tinylarge.deploy.server import EdgeServer

    address, run = broker_address(broker_url), load_run_or_fail(run_dir)
    settings = deploy_settings(
        run.scenario.deploy, max_batch=max_batch, max_wait_ms=max_wait_ms, qos=qos
    )
    options = EdgeOptions(settings, update_every, live_loop, threads, metrics_port, prefix)
    with errors_as_failures(ValueError):
        server = build_edge(run, options)

    def ready(server: EdgeServer) -> None:
        console.print(f"edge serving {run_dir} at {address.url} (boot id {server.boot_id})")

    try:
        with errors_as_failures(ValueError, BrokerRefused):
            serve_edge(server, address, DeployLayout(run_dir), ready)
    finally:
        console.print(
            f"edge stopped: {server.state.replies:,} replies; rejected: "
            f"{dict(server.state.rejected) or 'none'}"
        )


def fleet(
    run_dir: RunDirArgument,
    broker_url: BrokerOption = "mqtt://127.0.0.1:1883",
    devices: Annotated[int, typer.Option(help="Number of devices.", min=1)] = 100,
    rate: Annotated[float, typer.Option(help="Requests per second per device.", min=0)] = 1.0,
    duration: Annotated[float, typer.Option(help="Seconds of requests.", min=0)] = 10.0,
    policy: PolicyOption = "router",
    deadline_ms: DeadlineOption = None,
    processes: ProcessesOption = None,
    out: Annotated[Path | None, typer.Option(help="Per-request records (.npz).")] = None,
    qos: QosOption = None,
    emulate_link: EmulateLinkOption = False,
    enroll_only: EnrollOnlyOption = False,
    prefix: PrefixOption = "tinylarge",
    disconnect: DisconnectOption = None,
    disconnect_trigger: DisconnectTriggerOption = None,
    started_file: StartedFileOption = None,
) -> None:
    """Run N device agents against an edge server: the run's int8 model and policy per frame."""
    from tinylarge.deploy.fleet_job import FleetJob, run_fleet_job

    if enroll_only:  # keys need no model, broker or edge
        _enroll(run_dir, devices, broker_url)
        return
    address, run = broker_address(broker_url), load_run_or_fail(run_dir)
    settings = deploy_settings(
        run.scenario.deploy, deadline_ms=deadline_ms, qos=qos, processes=processes
    )
    job = FleetJob(devices, rate, duration, policy, settings, emulate_link, prefix, disconnect,
                   disconnect_trigger, started_file, out)  # fmt: skip

    def started(requests: int) -> None:
        console.print(
            f"fleet: {devices} devices, {requests:,} requests over {duration:g} s, "
            f"policy {policy}, broker {address.url}"
        )

    with errors_as_failures(ValueError):
        result = run_fleet_job(run, address, job, on_start=started)
    console.print(_fleet_table(result.summary))
    console.print(f"records: {result.path}")


def _enroll(run_dir: Path, devices: int, broker_url: str) -> None:
    """Make (or keep) the first ``devices`` identities, their certificates, the edge's
    certificate and the registry, and with an ``mqtts://`` broker URL the broker's certificate
    for its host; say what goes to which machine."""
    from tinylarge.deploy.layout import EDGE_ID, DeployLayout

    layout = DeployLayout(run_dir)
    address = broker_address(broker_url)
    with errors_as_failures(ValueError):
        made = layout.enroll(devices)
        edge = layout.pki.issue_client(EDGE_ID)
        if address.tls:
            server = layout.broker_security(host=address.host).server
            console.print(
                f"the broker's certificate for {address.host}: {server.cert}", highlight=False
            )
    pki = layout.pki
    console.print(
        f"{len(made)} device identities in {layout.devices} (private) and their certificates "
        f"in {pki.root / 'certs'} (keys in {pki.root / 'private'}, mode 0600); the project CA "
        f"is {pki.ca_cert} (its key {pki.ca_key} stays on this machine)",
        highlight=False,
    )
    console.print("On separate machines, copy (same paths under the run directory):")
    console.print(
        f"  to the edge: {layout.registry}, {pki.ca_cert}, {edge.cert}, {edge.key}",
        highlight=False,
    )
    console.print(
        f"  to the broker: {pki.ca_cert}, {pki.crl} and its certificate and key in "
        f"{pki.root / 'server'} (made here for HOST with --broker mqtts://HOST:8883), and "
        "crl.pem again after each `tinylarge revoke`",
        highlight=False,
    )
    console.print("  the devices' keys and certificates stay with the fleet", highlight=False)


def _fleet_table(summary: dict[str, Any]) -> Table:
    """Requests, routes, accuracy and latency of a fleet run."""
    table = Table(title="fleet")
    columns = ("requests", "by edge", "on device", "timed out", "lost", "accuracy", "p50 ms",
               "p99 ms")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    lat = summary["latency_s"]
    table.add_row(
        f"{summary['requests']:,}",
        f"{summary['answered_by_edge']:,}",
        f"{summary['answered_on_device']:,}",
        f"{summary['timed_out']:,}",
        str(summary["lost"]),
        f"{100 * (summary['accuracy'] or 0):.1f} %",
        *(f"{1e3 * lat[q]:.1f}" if lat[q] is not None else "n/a" for q in ("p50", "p99")),
    )
    return table
