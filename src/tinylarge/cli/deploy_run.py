"""`tinylarge deploy`: broker, edge server and fleet as separate processes on this machine
(`tinylarge.deploy.run`), and with the link emulated, the simulator's prediction for the same
requests beside the result."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tinylarge.cli.common import (
    ConfigOption,
    OutOption,
    OverwriteOption,
    PresetOption,
    SeedOption,
    console,
    errors_as_failures,
    fail,
    resolve_scenario,
    run_directory,
)
from tinylarge.cli.deploy import (
    DeadlineOption,
    EmulateLinkOption,
    MaxBatchOption,
    MaxWaitOption,
    ProcessesOption,
    QosOption,
    deploy_settings,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from tinylarge.config import Scenario
    from tinylarge.deploy.protocol import Topics
    from tinylarge.deploy.result import DeployResult

DevicesOption = Annotated[
    int | None, typer.Option(help="Devices (default: the scenario's).", min=1)
]
RateOption = Annotated[
    float | None, typer.Option(help="Requests/s per device (default: the scenario's).")
]
DurationOption = Annotated[
    float | None,
    typer.Option(help="Seconds of requests (default 10; 30 with --faults).", min=0),
]
BrokerUrlOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Use this broker (mqtt://HOST:PORT, or mqtts://HOST:PORT for a locked-down one: "
        "the run's certificates) instead of starting one.",
    ),
]
TransportOption = Annotated[
    str | None,
    typer.Option(
        help="The broker the run starts: mqtt-tls (mutual TLS, per-device ACL, CRL) or mqtt "
        "(open, plaintext). Default: the scenario's \\[deploy] transport (mqtt-tls).",
        show_default=False,
    ),
]
ModelsRunOption = Annotated[
    Path | None, typer.Option(help="Use this run directory's models instead of making them.")
]
UpdateEveryOption = Annotated[int, typer.Option(help="Offloads between pushed tiny models.", min=1)]
FaultsOption = Annotated[
    bool,
    typer.Option(
        help="Inject faults during the run: the edge SIGKILLed and restarted, the broker "
        "restarted, 10 % of devices disconnecting, a flood of forged and replayed "
        "messages, corrupted model bundles (deploy.faults in metrics.json)."
    ),
]


class _RichProgress:
    """The run's progress on the console: a bar over the fleet's schedule (connecting and
    the tail of late replies show as time beyond it)."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._bar: TaskID | None = None

    def edge_ready(self, pid: int, topics: Topics) -> None:
        return None

    def message(self, text: str) -> None:
        console.print(text)

    def schedule_started(self, started_unix: float) -> None:
        return None

    def fleet_running(self, elapsed_s: float, duration_s: float) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        if self._progress is None:
            columns = (TextColumn("[bold]fleet"), BarColumn(), TextColumn("{task.fields[status]}"))
            self._progress = Progress(*columns, TimeElapsedColumn(), console=console,
                                      transient=True)  # fmt: skip
            self._progress.start()
            self._bar = self._progress.add_task("fleet", total=duration_s, status="")
        status = f"{elapsed_s:.0f} / {duration_s:g} s of requests"
        if self._bar is not None:
            self._progress.update(self._bar, completed=elapsed_s, status=status)

    def fleet_finished(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _make_models(scenario: Scenario, run_dir: Path) -> Path:
    """The models of ``scenario`` in a `tinylarge run` directory (trained ones from the
    cache), with the stages' progress on the console."""
    from tinylarge.cli.reporter import RichReporter
    from tinylarge.deploy.artefacts import DEPLOY_STAGES
    from tinylarge.models.cache import ModelCache
    from tinylarge.report.writer import write
    from tinylarge.sim import run as run_pipeline

    console.print(f"[bold]tinylarge deploy[/]: models for scenario '{scenario.name}'")
    with RichReporter(console) as reporter:
        result = run_pipeline(scenario, cache=ModelCache(), reporter=reporter, stages=DEPLOY_STAGES)
    write(result, run_dir)
    return run_dir


def deploy(
    preset: PresetOption = None,
    config: ConfigOption = None,
    seed: SeedOption = None,
    devices: DevicesOption = None,
    rate: RateOption = None,
    duration: DurationOption = None,
    out: OutOption = None,
    overwrite: OverwriteOption = False,
    broker_url: BrokerUrlOption = None,
    run: ModelsRunOption = None,
    policy: Annotated[str, typer.Option(help="Fitted policy the devices use.")] = "router",
    max_batch: MaxBatchOption = None,
    max_wait_ms: MaxWaitOption = None,
    deadline_ms: DeadlineOption = None,
    update_every: UpdateEveryOption = 500,
    processes: ProcessesOption = None,
    qos: QosOption = None,
    emulate_link: EmulateLinkOption = False,
    faults: FaultsOption = False,
    transport: TransportOption = None,
) -> None:
    """Broker, edge server and device fleet as separate processes on this machine: run, stop,
    and write metrics.json (deploy.*) and a report. A text scenario deploys its hybrid
    language model: every scheme of [hybrid_lm] (hybrid_lm_deploy.* in metrics.json)."""
    from tinylarge.deploy.faults import FaultPlan
    from tinylarge.deploy.runner import DeployError
    from tinylarge.deploy.runner import run as deploy_run

    if faults and emulate_link:
        raise fail(
            "--faults and --emulate-link measure different things (reliability under faults; "
            "the simulator's accuracy on a healthy system): run them separately"
        )
    duration = duration if duration is not None else (30.0 if faults else 10.0)
    try:
        plan = FaultPlan.spread(duration) if faults else None
    except ValueError as error:
        raise fail(f"--duration: {error}") from None
    scenario = resolve_scenario(preset, config, seed)
    settings = deploy_settings(scenario.deploy, max_batch=max_batch, max_wait_ms=max_wait_ms,
                               deadline_ms=deadline_ms, qos=qos, processes=processes,
                               transport=transport)  # fmt: skip
    scenario = scenario.model_copy(update={"deploy": settings})
    out_dir = run_directory(out, scenario, overwrite)
    if scenario.task.name == "text":
        if faults or run is not None:
            raise fail("--faults and --run are options of classification deployments")
        _deploy_text(scenario, out_dir, devices, broker_url, emulate_link)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    models = run if run is not None else _make_models(scenario, out_dir / "run")
    with errors_as_failures(ValueError, DeployError):
        result = deploy_run(
            scenario, run_dir=out_dir, devices=devices or None, duration_s=duration,
            rate_per_device_hz=rate or None, policy=policy, models=models, broker=broker_url,
            faults=plan, emulate_link=emulate_link, update_every=update_every,
            progress=_RichProgress(),
        )  # fmt: skip
    _print_result(result, f"tinylarge deploy: {scenario.name}")


def _deploy_text(
    scenario: Scenario, out_dir: Path, devices: int | None, broker: str | None, emulate: bool
) -> None:
    """A text scenario: the hybrid language model deployed (`run_hybrid_lm`), a table of
    every scheme."""
    from rich.table import Table

    from tinylarge.deploy.hlm_run import run_hybrid_lm
    from tinylarge.deploy.runner import DeployError

    console.print(f"[bold]tinylarge deploy[/]: hybrid language model of '{scenario.name}'")
    with errors_as_failures(ValueError, DeployError):
        result = run_hybrid_lm(scenario, run_dir=out_dir, devices=devices, broker=broker,
                               emulate_link=emulate, progress=_RichProgress())  # fmt: skip
    table = Table(title="hybrid language model, deployed")
    for column in ("scheme", "tokens/s", "p50 ms", "p99 ms", "uplinks", "B up", "B down",
                   "timed out", "lost"):  # fmt: skip
        table.add_column(column, justify="left" if column == "scheme" else "right")
    for name, m in result.metrics["hybrid_lm_deploy"].items():
        table.add_row(
            name, f"{m['tokens_per_s'] or 0:.1f}", _ms(m["p50_token_latency_s"]),
            _ms(m["p99_token_latency_s"]), f"{100 * (m['uplink_fraction'] or 0):.1f} %",
            f"{m['bytes_up_per_token']:.0f}", f"{m['bytes_down_per_token']:.0f}",
            str(m["timed_out"]), str(m["lost"]),
        )  # fmt: skip
    console.print(table)
    console.print(f"Metrics: [bold]{result.metrics_path}[/]")


def _print_result(result: DeployResult, title: str) -> None:
    """Fault injections that failed, the report, and the run in one line."""
    from tinylarge.report.deploy_section import write_deploy_report

    d = result.deploy
    for name, error in d.get("faults_errors", {}).items():
        console.print(f"[yellow]! injecting {name} failed:[/] {error}")
    simulated = None if result.simulated is None else result.simulated.latency_s
    report = write_deploy_report(
        result.out_dir, result.metrics, result.records, title, simulated_latency_s=simulated
    )
    lat = d["latency_s"]
    console.print(
        f"{d['requests']:,} requests: {d['answered_by_edge']:,} by the edge, "
        f"{d['answered_on_device']:,} on device, {d['timed_out']:,} timed out, {d['lost']} lost; "
        f"p50 {_ms(lat['p50'])} ms, p99 {_ms(lat['p99'])} ms; accuracy "
        f"{100 * (d['accuracy'] or 0):.1f} %"
    )
    refused = d.get("broker_refused") or {}
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in refused.items() if v is not None)
    console.print(f"transport {d.get('transport')}; the broker refused: {counts or 'n/a'}")
    if d.get("edge_exit") is not None:
        died = d["edge_exit"]
        console.print(
            f"[yellow]! the edge server ended on its own ({died['signal'] or died['exit_code']})"
            " and was not restarted:[/] its requests fell back to the devices (deploy.edge_exit)"
        )
    console.print(f"Report: [bold]{report}[/]")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{1e3 * value:.1f}"
