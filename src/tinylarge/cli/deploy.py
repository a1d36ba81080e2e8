"""`tinylarge broker | serve | fleet | deploy`: the integrated system running for real over MQTT."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tinylarge.cli.common import (
    console,
    fail,
)

if TYPE_CHECKING:
    from tinylarge.sim.deployment import RunArtefacts

BrokerOption = Annotated[str, typer.Option("--broker", help="The MQTT broker, mqtt://HOST:PORT.")]
PrefixOption = Annotated[str, typer.Option(help="Topic prefix of this deployment.")]
EmulateLinkOption = Annotated[
    bool,
    typer.Option(
        help="Delay each device's messages by its 6G link and MCU time as the simulator "
        "models them (the scenario's cell, radio profile and target MCU)."
    ),
]
QosOption = Annotated[
    int,
    typer.Option(
        help="MQTT QoS of offloads and replies: 1 at least once, 0 at most once (half the "
        "packets; a lost message becomes a timed-out request).",
        min=0,
        max=1,
    ),
]
RunDirArgument = Annotated[
    Path, typer.Argument(help="A run directory written by `tinylarge run`.", file_okay=False)
]
READY_FILE, STATS_FILE, RECORDS_FILE = "ready", "server_stats.json", "fleet_records.npz"
ANSWERED_FILE = "edge_answered.npz"


def broker_address(url: str) -> Any:
    from tinylarge.deploy.broker import parse_broker_url

    try:
        return parse_broker_url(url)
    except ValueError as error:
        raise fail(str(error)) from None


def load_run_or_fail(run_dir: Path) -> RunArtefacts:
    """The run directory's artefacts, or a one-line error saying what is missing."""
    from tinylarge.sim.deployment import load_run

    try:
        return load_run(run_dir)
    except ValueError as error:
        raise fail(str(error)) from None


def _until_signalled(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def broker(
    port: Annotated[int, typer.Option(help="Loopback port.", min=1, max=65535)] = 1883,
    data_dir: Annotated[Path, typer.Option(help="Config, persistence database and log.")] = Path(
        "mosquitto-data"
    ),
) -> None:
    """Start a local Mosquitto broker and keep it until Ctrl-C (or SIGTERM)."""
    from tinylarge.deploy.broker import Broker

    try:
        running = Broker(data_dir, port=port)
        address = running.start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as error:
        raise fail(str(error)) from None
    console.print(
        f"Mosquitto listening at [bold]{address.url}[/] (data in {data_dir}); Ctrl-C stops"
    )

    async def wait() -> None:
        stop = asyncio.Event()
        _until_signalled(stop)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        running.stop()
        console.print("Mosquitto stopped (database saved)")


def serve(
    run_dir: RunDirArgument,
    broker_url: BrokerOption = "mqtt://127.0.0.1:1883",
    max_batch: Annotated[int, typer.Option(help="Largest batch the model runs.", min=1)] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a batch's first request waits for more, ms.", min=0)
    ] = 2.0,
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
    qos: QosOption = 1,
    prefix: PrefixOption = "tinylarge",
) -> None:
    """Serve the run's large model to enrolled devices until Ctrl-C (or SIGTERM)."""
    from tinylarge.deploy.edge_model import OnnxPredict, export_large_onnx
    from tinylarge.deploy.keys import load_registry
    from tinylarge.deploy.layout import DeployLayout
    from tinylarge.deploy.live_loop import LiveLoop
    from tinylarge.deploy.metrics_endpoint import EdgeMetrics
    from tinylarge.deploy.protocol import Topics
    from tinylarge.deploy.server import EdgeServer, ServerConfig

    address, run = broker_address(broker_url), load_run_or_fail(run_dir)
    layout = DeployLayout(run_dir)
    if not layout.registry.is_file():
        raise fail(
            f"no device registry at {layout.registry}: enroll devices with `tinylarge fleet "
            f"{run_dir} --devices N` (on this machine) or copy the fleet's registry.json there"
        )
    identity = layout.edge()
    if not layout.large_onnx.is_file():
        export_large_onnx(run.model("large"), run.tiny.input_spec.shape, layout.large_onnx)
    scenario, spec = run.scenario, run.tiny.input_spec
    loop = None
    if live_loop:
        loop = LiveLoop(
            layout.edge_state,
            run.model("tiny"),
            tuple(run.tiny.class_names),
            scenario.colearning.closed_loop.update_training,
            identity,
            scenario.tiny.target_mcu,
            update_every=update_every,
            temperature=scenario.tiny.distillation.temperature,
            alpha=scenario.tiny.distillation.alpha,
            seed=scenario.seed,
        )
    metrics = EdgeMetrics()
    if metrics_port:
        metrics.serve_http(metrics_port)
    server = EdgeServer(
        OnnxPredict(layout.large_onnx, threads=threads),
        ServerConfig(
            spec.shape,
            spec.scale,
            spec.zero_point,
            len(run.tiny.class_names),
            max_batch=max_batch,
            max_wait_s=max_wait_ms / 1e3,
            qos=qos,
        ),
        identity,
        load_registry(layout.registry),
        topics=Topics(prefix),
        metrics=metrics,
        live_loop=loop,
        registry_path=layout.registry,
    )
    layout.edge_state.mkdir(parents=True, exist_ok=True)
    ready = layout.edge_state / READY_FILE
    ready.unlink(missing_ok=True)

    async def main() -> None:
        stop = asyncio.Event()
        _until_signalled(stop)
        serving = asyncio.create_task(server.serve(address, stop))
        connected = asyncio.create_task(server.connected.wait())
        await asyncio.wait({serving, connected}, return_when=asyncio.FIRST_COMPLETED)
        if server.connected.is_set():
            ready.write_text(server.boot_id)
            console.print(f"edge serving {run_dir} at {address.url} (boot id {server.boot_id})")
        await serving

    try:
        asyncio.run(main())
    finally:
        server.write_stats(layout.edge_state / STATS_FILE)
        server.write_answered(layout.edge_state / ANSWERED_FILE)
        ready.unlink(missing_ok=True)
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
    policy: Annotated[
        str, typer.Option(help="Fitted policy of the run the devices use.")
    ] = "router",
    deadline_ms: Annotated[
        float, typer.Option(help="After this, a device keeps its own answer, ms.", min=0)
    ] = 500.0,
    processes: Annotated[
        int, typer.Option(help="Processes the devices are spread over.", min=1)
    ] = 1,
    out: Annotated[Path | None, typer.Option(help="Per-request records (.npz).")] = None,
    qos: QosOption = 1,
    emulate_link: EmulateLinkOption = False,
    enroll_only: Annotated[
        bool,
        typer.Option(
            help="Only make the devices' keys and registry.json (for the edge), then stop."
        ),
    ] = False,
    prefix: PrefixOption = "tinylarge",
    disconnect: Annotated[
        tuple[float, float, float] | None,
        typer.Option(
            help="A fault: at AT_S into the schedule, FRACTION of the devices drop off the "
            "broker for FOR_S seconds (three numbers: AT_S FRACTION FOR_S).",
            show_default=False,
        ),
    ] = None,
    disconnect_trigger: Annotated[
        Path | None,
        typer.Option(
            help="With --disconnect: drop the devices when this file appears, not at AT_S."
        ),
    ] = None,
    started_file: Annotated[
        Path | None,
        typer.Option(help="Write the schedule's start (Unix time, s) here when it starts."),
    ] = None,
) -> None:
    """Run N device agents against an edge server: the run's int8 model and policy per frame."""
    from tinylarge.deploy.device import FleetConfig
    from tinylarge.deploy.faults import disconnected_devices
    from tinylarge.deploy.fleet import Disconnection, device_decisions
    from tinylarge.deploy.fleet_processes import FleetRun, run_fleet
    from tinylarge.deploy.keys import edge_public_key
    from tinylarge.deploy.layout import DeployLayout
    from tinylarge.deploy.protocol import Topics
    from tinylarge.deploy.summary import deploy_metrics, save_records
    from tinylarge.sim.deployment import deployment_requests, link_plan

    if enroll_only:  # keys need no model, broker or edge
        layout = DeployLayout(run_dir)
        made = layout.enroll(devices)
        console.print(
            f"{len(made)} device identities in {layout.devices} (private); copy "
            f"{layout.registry} to the edge's run directory"
        )
        return
    address, run = broker_address(broker_url), load_run_or_fail(run_dir)
    try:
        chosen = run.policy(policy)
    except ValueError as error:
        raise fail(str(error)) from None
    if rate <= 0 or duration <= 0:
        raise fail(f"--rate and --duration must be > 0, got {rate}, {duration}")
    faults: tuple[Disconnection, ...] = ()
    if disconnect is not None:
        at_s, fraction, for_s = disconnect
        if at_s < 0 or for_s < 0 or not 0 < fraction <= 1:
            raise fail(
                f"--disconnect AT_S FRACTION FOR_S: times must be >= 0 and the fraction in "
                f"(0, 1], got {at_s:g} {fraction:g} {for_s:g}"
            )
        off = disconnected_devices(devices, fraction)
        faults = (Disconnection(at_s, off, for_s, disconnect_trigger),)
    layout = DeployLayout(run_dir)
    identities = layout.enroll(devices)
    if not layout.edge_public.is_file():
        raise fail(
            f"no edge public key at {layout.edge_public}: start `tinylarge serve {run_dir}` once "
            "on this machine, or copy the edge's edge.json there"
        )
    task, requests = deployment_requests(
        run.scenario, devices, rate_per_device_hz=rate, duration_s=duration
    )
    frames = run.tiny.quantize_input(task.x_test)
    link = None
    if emulate_link:
        decision = device_decisions(run.tiny, chosen, frames[requests.sample], requests.device)
        link = link_plan(run, policy, devices, requests, decision.offload, decision.device_macs)
    console.print(
        f"fleet: {devices} devices, {requests.device.size:,} requests over {duration:g} s, "
        f"policy {policy}, broker {address.url}"
    )
    records, installed, events = run_fleet(
        FleetRun(
            run.tiny,
            chosen,
            identities,
            edge_public_key(layout.edge_public),
            frames,
            requests.device,
            requests.sample,
            requests.arrival_s,
            address,
            Topics(prefix),
            FleetConfig(deadline_s=deadline_ms / 1e3, target=run.scenario.tiny.target_mcu, qos=qos),
            link=link,
            disconnections=faults,
            started_file=started_file,
        ),
        processes,
    )
    path = out or layout.root / RECORDS_FILE
    labels = task.y_test[records.sample]
    save_records(records, path, labels=labels, installed=installed, events=events)
    summary = deploy_metrics(records, labels, {}, devices=devices, installed_versions=installed)
    table = Table(title="fleet")
    for column in (
        "requests",
        "by edge",
        "on device",
        "timed out",
        "lost",
        "accuracy",
        "p50 ms",
        "p99 ms",
    ):
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
    console.print(table)
    console.print(f"records: {path}")
