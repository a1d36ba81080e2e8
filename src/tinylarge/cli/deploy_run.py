"""`tinylarge deploy`: broker, edge server and fleet as separate processes on this machine, and
with the link emulated, the simulator's prediction for the same requests beside the result."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from tinylarge.cli.common import (
    ConfigOption,
    OutOption,
    OverwriteOption,
    PresetOption,
    SeedOption,
    console,
    fail,
    resolve_scenario,
    run_directory,
)
from tinylarge.cli.deploy import (
    ANSWERED_FILE,
    READY_FILE,
    RECORDS_FILE,
    STATS_FILE,
    EmulateLinkOption,
    QosOption,
    broker_address,
    load_run_or_fail,
)
from tinylarge.cli.deploy_faults import EdgeProcess, FaultInjector


def _python_cli(
    command: str, run_dir: Path, options: dict[str, object], flags: list[str]
) -> list[str]:
    """``python -m tinylarge.cli.main COMMAND RUN_DIR --key value ... FLAGS``."""
    args = [f for key, value in options.items() for f in (f"--{key}", str(value))]
    return [sys.executable, "-m", "tinylarge.cli.main", command, str(run_dir), *args, *flags]


def _follow(process: subprocess.Popen[bytes], duration_s: float) -> int:
    """Wait for the fleet with a progress bar over its schedule (connecting and the tail of
    late replies show as time beyond it); its exit code."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]fleet"), BarColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        bar = progress.add_task("fleet", total=duration_s, status="")
        started = time.monotonic()
        while process.poll() is None:
            elapsed = time.monotonic() - started
            status = f"{min(elapsed, duration_s):.0f} / {duration_s:g} s of requests"
            progress.update(bar, completed=min(elapsed, duration_s), status=status)
            time.sleep(0.2)
    return int(process.returncode)


def deploy(
    preset: PresetOption = None,
    config: ConfigOption = None,
    seed: SeedOption = None,
    devices: Annotated[
        int | None, typer.Option(help="Devices (default: the scenario's).", min=1)
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Requests/s per device (default: the scenario's).")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="Seconds of requests (default 10; 30 with --faults).", min=0),
    ] = None,
    out: OutOption = None,
    overwrite: OverwriteOption = False,
    broker_url: Annotated[
        str | None,
        typer.Option(
            "--broker", help="Use this broker (mqtt://HOST:PORT) instead of starting one."
        ),
    ] = None,
    run: Annotated[
        Path | None, typer.Option(help="Use this run directory's models instead of making them.")
    ] = None,
    policy: Annotated[str, typer.Option(help="Fitted policy the devices use.")] = "router",
    max_batch: Annotated[int, typer.Option(help="The edge's largest batch.", min=1)] = 32,
    max_wait_ms: Annotated[float, typer.Option(help="The edge's batching wait, ms.", min=0)] = 2.0,
    deadline_ms: Annotated[float, typer.Option(help="Device reply deadline, ms.", min=0)] = 500.0,
    update_every: Annotated[
        int, typer.Option(help="Offloads between pushed tiny models.", min=1)
    ] = 500,
    processes: Annotated[int, typer.Option(help="Fleet processes.", min=1)] = 1,
    qos: QosOption = 1,
    emulate_link: EmulateLinkOption = False,
    faults: Annotated[
        bool,
        typer.Option(
            help="Inject faults during the run: the edge SIGKILLed and restarted, the broker "
            "restarted, 10 % of devices disconnecting, a flood of forged and replayed "
            "messages, corrupted model bundles (deploy.faults in metrics.json)."
        ),
    ] = False,
) -> None:
    """Broker, edge server and device fleet as separate processes on this machine: run, stop,
    and write metrics.json (deploy.*) and a report."""
    from tinylarge.cli.reporter import RichReporter
    from tinylarge.deploy.broker import Broker
    from tinylarge.deploy.faults import FaultPlan
    from tinylarge.deploy.layout import DeployLayout
    from tinylarge.deploy.protocol import Topics
    from tinylarge.deploy.summary import (
        deploy_metrics,
        load_events,
        load_records,
        round_trip_split,
    )
    from tinylarge.models.cache import ModelCache
    from tinylarge.report.deploy_section import write_deploy_report
    from tinylarge.report.writer import write
    from tinylarge.sim import run as run_pipeline
    from tinylarge.sim.deployment import DEPLOY_STAGES, sim_vs_real
    from tinylarge.tiny.model_file import to_bytes

    if faults and emulate_link:
        raise fail(
            "--faults and --emulate-link measure different things (reliability under faults; "
            "the simulator's accuracy on a healthy system): run them separately"
        )
    duration = duration if duration is not None else (30.0 if faults else 10.0)
    plan = None
    if faults:
        try:
            plan = FaultPlan.spread(duration)
        except ValueError as error:
            raise fail(f"--duration: {error}") from None
    scenario = resolve_scenario(preset, config, seed)
    out_dir = run_directory(out, scenario, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = devices or scenario.devices.count
    hz = rate or scenario.policies.rate_per_device_hz
    run_dir = run
    if run_dir is None:
        run_dir = out_dir / "run"
        console.print(f"[bold]tinylarge deploy[/]: models for scenario '{scenario.name}'")
        with RichReporter(console) as reporter:
            result = run_pipeline(
                scenario, cache=ModelCache(), reporter=reporter, stages=DEPLOY_STAGES
            )
        write(result, run_dir)
    layout = DeployLayout(run_dir)
    layout.edge()
    layout.enroll(n)
    broker_process = None
    if broker_url is None:
        broker_process = Broker(out_dir / "broker")
        try:
            broker_url = broker_process.start().url
        except (FileNotFoundError, RuntimeError, TimeoutError) as error:
            raise fail(str(error)) from None
    broker_address(broker_url)
    prefix = f"tinylarge-{os.getpid()}"  # fresh topics: no retained leftovers of other runs
    serve_log, fleet_log = out_dir / "serve.log", out_dir / "fleet.log"
    records_path, started_file = out_dir / RECORDS_FILE, out_dir / "fleet_started"
    started_file.unlink(missing_ok=True)
    edge = EdgeProcess(
        _python_cli(
            "serve",
            run_dir,
            {
                "broker": broker_url,
                "max-batch": max_batch,
                "max-wait-ms": max_wait_ms,
                "update-every": update_every,
                "prefix": prefix,
                "qos": qos,
            },
            ["--no-live-loop"] if emulate_link else [],  # one model: sim vs real
        ),
        layout.edge_state / READY_FILE,
        serve_log,
    )
    fleet_options: dict[str, object] = {
        "broker": broker_url,
        "devices": n,
        "rate": hz,
        "duration": duration,
        "policy": policy,
        "deadline-ms": deadline_ms,
        "processes": processes,
        "out": records_path,
        "prefix": prefix,
        "qos": qos,
        "started-file": started_file,
    }
    fleet_flags = ["--emulate-link"] if emulate_link else []
    injector = None
    fleet: subprocess.Popen[bytes] | None = None
    try:
        try:
            edge.start()
        except RuntimeError as error:
            raise fail(str(error)) from None
        if plan is not None:
            at_s = plan.at_s["disconnect"]
            trigger = out_dir / "disconnect_now"
            trigger.unlink(missing_ok=True)
            fraction, off_s = plan.disconnect_fraction, plan.disconnect_s
            fleet_flags += ["--disconnect", f"{at_s}", f"{fraction}", f"{off_s}",
                            "--disconnect-trigger", str(trigger)]  # fmt: skip
            injector = FaultInjector(
                plan,
                edge=edge,
                broker=broker_process,
                address=broker_address(broker_url),
                topics=Topics(prefix),
                layout=layout,
                model_bytes=to_bytes(load_run_or_fail(run_dir).tiny),
                target=scenario.tiny.target_mcu,
                started_file=started_file,
                disconnect_trigger=trigger,
            )
            injector.start()
        console.print(f"edge server up; fleet of {n} devices for {duration:g} s ...")
        with fleet_log.open("wb") as log:
            fleet = subprocess.Popen(
                _python_cli("fleet", run_dir, fleet_options, fleet_flags),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            code = _follow(fleet, duration)
        if code != 0:
            tail = fleet_log.read_text(errors="replace")[-2000:]
            raise fail(f"the fleet exited with code {code}; its log:\n{tail}")
    finally:  # every step runs even if one fails: no broker or edge left behind
        with contextlib.ExitStack() as cleanup:
            if broker_process is not None:
                cleanup.callback(broker_process.stop)
            cleanup.callback(edge.stop)
            if injector is not None:
                cleanup.callback(injector.join)
            if fleet is not None and fleet.poll() is None:  # interrupted: the devices first
                cleanup.callback(fleet.wait, 30)
                cleanup.callback(fleet.terminate)
    records, labels, installed = load_records(records_path)
    stats = json.loads((layout.edge_state / STATS_FILE).read_text())
    metrics = {
        "deploy": deploy_metrics(
            records,
            labels,
            stats,
            devices=n,
            installed_versions=installed,
            extra={
                "policy": policy,
                "broker": broker_url,
                "duration_s": duration,
                "rate_per_device_hz": hz,
                "run_dir": str(run_dir),
            },
        )
    }
    simulated = None
    if emulate_link:  # the same requests through the simulator, with the edge as measured
        ids = [identity.device_id for identity in layout.enroll(n)]
        split = round_trip_split(records, ids, layout.edge_state / ANSWERED_FILE)
        transport = split["transport_s"]["p50"] or 0.0
        simulate = partial(_simulate, run_dir, policy, n, hz, duration, stats, max_batch,
                           max_wait_ms, deadline_ms)  # fmt: skip
        simulated, radio_only = simulate(transport), simulate(0.0)
        metrics["deploy"]["sim_vs_real"] = {
            **sim_vs_real(records, labels, simulated),
            "edge_service": stats.get("service_fit"),
            "round_trip_split": split,
            "transport_s": transport,
            "without_transport": sim_vs_real(records, labels, radio_only)["latency_s"],
        }
    if injector is not None:
        metrics["deploy"].update(
            _fault_metrics(injector, records, load_events(records_path), edge.starts)
        )
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    report = write_deploy_report(
        out_dir,
        metrics,
        records,
        f"tinylarge deploy: {scenario.name}",
        simulated_latency_s=None if simulated is None else simulated.latency_s,
    )
    d = metrics["deploy"]
    lat = d["latency_s"]
    console.print(
        f"{d['requests']:,} requests: {d['answered_by_edge']:,} by the edge, "
        f"{d['answered_on_device']:,} on device, {d['timed_out']:,} timed out, {d['lost']} lost; "
        f"p50 {_ms(lat['p50'])} ms, p99 {_ms(lat['p99'])} ms; accuracy "
        f"{100 * (d['accuracy'] or 0):.1f} %"
    )
    console.print(f"Report: [bold]{report}[/]")


def _simulate(
    run_dir: Path,
    policy: str,
    n: int,
    hz: float,
    duration: float,
    stats: dict[str, Any],
    max_batch: int,
    max_wait_ms: float,
    deadline_ms: float,
    transport_s: float,
) -> Any:
    from tinylarge.net.uplink import EdgeServiceModel as SimulatedEdge
    from tinylarge.sim.deployment import simulate_deployment

    fit = stats.get("service_fit") or {"setup_s": 0.0, "per_item_s": 0.0}
    edge = SimulatedEdge(
        setup_s=fit["setup_s"],
        per_item_s=fit["per_item_s"],
        max_batch=max_batch,
        max_wait_s=max_wait_ms / 1e3,
        source="measured on the deployed edge server",
    )
    _, outcome = simulate_deployment(
        load_run_or_fail(run_dir), policy, n, rate_per_device_hz=hz, duration_s=duration, edge=edge,
        deadline_s=deadline_ms / 1e3, transport_s=transport_s,
    )  # fmt: skip
    return outcome


def _fault_metrics(
    injector: FaultInjector, records: Any, events: Any, edge_starts: int
) -> dict[str, Any]:
    """``deploy.faults`` and what the devices saw during a fault run."""
    from dataclasses import asdict

    from tinylarge.deploy.faults import fault_metrics

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
        for name, error in injector.errors.items():
            console.print(f"[yellow]! injecting {name} failed:[/] {error}")
    return out


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{1e3 * value:.1f}"
