"""`tinylarge deploy`: broker, edge server and fleet as separate processes on this machine, and
with the link emulated, the simulator's prediction for the same requests beside the result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
    READY_FILE,
    RECORDS_FILE,
    STATS_FILE,
    EmulateLinkOption,
    QosOption,
    broker_address,
    load_run_or_fail,
)


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


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready.is_file():
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise fail(f"the edge server exited with code {process.returncode}; its log:\n{tail}")
        if time.monotonic() > deadline:
            process.kill()
            raise fail(f"the edge server was not ready within {timeout_s:g} s (log: {log})")
        time.sleep(0.1)


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
    duration: Annotated[float, typer.Option(help="Seconds of requests.", min=0)] = 10.0,
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
) -> None:
    """Broker, edge server and device fleet as separate processes on this machine: run, stop,
    and write metrics.json (deploy.*) and a report."""
    from tinylarge.cli.reporter import RichReporter
    from tinylarge.deploy.broker import Broker
    from tinylarge.deploy.layout import DeployLayout
    from tinylarge.deploy.summary import deploy_metrics, load_records
    from tinylarge.models.cache import ModelCache
    from tinylarge.report.deploy_section import write_deploy_report
    from tinylarge.report.writer import write
    from tinylarge.sim import run as run_pipeline
    from tinylarge.sim.deployment import DEPLOY_STAGES, sim_vs_real

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
    records_path = out_dir / RECORDS_FILE
    server: subprocess.Popen[bytes] | None = None
    fleet: subprocess.Popen[bytes] | None = None
    try:
        with serve_log.open("wb") as log:
            server = subprocess.Popen(
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
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_ready(server, layout.edge_state / READY_FILE, serve_log, 120.0)
        console.print(f"edge server up; fleet of {n} devices for {duration:g} s ...")
        with fleet_log.open("wb") as log:
            fleet = subprocess.Popen(
                _python_cli(
                    "fleet",
                    run_dir,
                    {
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
                    },
                    ["--emulate-link"] if emulate_link else [],
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            code = _follow(fleet, duration)
        if code != 0:
            tail = fleet_log.read_text(errors="replace")[-2000:]
            raise fail(f"the fleet exited with code {code}; its log:\n{tail}")
    finally:
        if fleet is not None and fleet.poll() is None:  # interrupted: stop the devices first
            fleet.terminate()
            fleet.wait(30)
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
        if broker_process is not None:
            broker_process.stop()
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
        simulated = _simulate(
            run_dir, policy, n, hz, duration, stats, max_batch, max_wait_ms, deadline_ms
        )
        metrics["deploy"]["sim_vs_real"] = {
            **sim_vs_real(records, labels, simulated),
            "edge_service": stats.get("service_fit"),
        }
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
) -> Any:
    from tinylarge.net.uplink import EdgeServer as SimulatedEdge
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
        deadline_s=deadline_ms / 1e3,
    )  # fmt: skip
    return outcome


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{1e3 * value:.1f}"
