"""The `tinylarge` command."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tinylarge.cli import broker as broker_commands
from tinylarge.cli import deploy as deploy_commands
from tinylarge.cli import deploy_run
from tinylarge.cli import pretrain as pretrain_command
from tinylarge.cli import sweep as sweep_command
from tinylarge.cli.colearn import rounds_table, run_colearn, scenario_for_scheme
from tinylarge.cli.common import (
    ConfigOption,
    NoCacheOption,
    OutOption,
    OverwriteOption,
    PresetOption,
    SeedOption,
    console,
    errors_as_failures,
    run_directory,
)
from tinylarge.cli.common import fail as _fail
from tinylarge.cli.common import resolve_scenario as _resolve
from tinylarge.cli.net import net_app
from tinylarge.cli.tiny import tiny_app
from tinylarge.config import (
    ScenarioError,
    preset_descriptions,
    scenario_to_toml,
)
from tinylarge.config.colearning_config import SCHEME_NAMES

app = typer.Typer(
    name="tinylarge",
    help="Integrate TinyML devices with LargeML edge/cloud models over 6G: simulate and report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect scenario configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(tiny_app, name="tiny")
app.add_typer(net_app, name="net")
app.command()(broker_commands.broker)
app.command()(deploy_commands.serve)
app.command()(deploy_commands.fleet)
app.command()(broker_commands.revoke)
app.command()(deploy_run.deploy)
app.command()(sweep_command.sweep)
app.command()(pretrain_command.pretrain)


def _hybrid_lm_table(hybrid: dict[str, Any]) -> Table:
    """Every scheme of a text run: uplinks, quality, tokens/s, p99 latency, bytes."""
    table = Table(title="Hybrid language models (main link quality)")
    columns = ["scheme", "uplinks", "quality vs LLM", "tokens/s", "p99 token latency", "B/token"]
    for column in columns:
        table.add_column(column, justify="left" if column == "scheme" else "right")
    for name in ("slm", "llm", "hlm", "u_hlm", "cu_hlm"):
        s = hybrid.get(name)
        if isinstance(s, dict):
            quality = s.get("quality_vs_llm")
            table.add_row(
                name, f"{100 * s['uplink_fraction']:.1f} %",
                "n/a" if quality is None else f"{100 * quality:.1f} %",
                f"{s['tokens_per_s']:.1f}", f"{1e3 * s['p99_token_latency_s']:.1f} ms",
                f"{s['bytes_per_token']:.1f}",
            )  # fmt: skip
    return table


def _results_table(metrics: dict[str, Any]) -> Table:
    if "models" not in metrics:  # a text run
        return _hybrid_lm_table(metrics.get("hybrid_lm", {}))
    table = Table(title="Results")
    high = "accuracy_snr_ge_6db"
    has_snr = any(high in m for m in metrics["models"].values())
    for column in ["model", "architecture", "parameters", "test accuracy"]:
        table.add_column(column, justify="left" if column in ("model", "architecture") else "right")
    if has_snr:
        table.add_column("accuracy, SNR >= 6 dB", justify="right")
    for role, m in metrics["models"].items():
        name = m.get("name", "int8 (integer runtime)")
        row = [role, name, f"{m['params']:,}", f"{100 * m['accuracy']:.1f} %"]
        if has_snr:
            row.append(f"{100 * m[high]:.1f} %" if m.get(high) is not None else "n/a")
        table.add_row(*row)
    return table


@app.command()
def run(
    preset: PresetOption = None,
    config: ConfigOption = None,
    seed: SeedOption = None,
    out: OutOption = None,
    no_cache: NoCacheOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Run the main job on a scenario (default: the 'default' preset) and write a report."""
    scenario = _resolve(preset, config, seed)
    run_dir = run_directory(out, scenario, overwrite)

    from tinylarge.cli.reporter import RichReporter  # heavy imports (torch) only when running
    from tinylarge.models.cache import ModelCache
    from tinylarge.report import collect, write
    from tinylarge.sim import run as run_pipeline

    console.print(f"[bold]tinylarge run[/]: scenario '{scenario.name}', seed {scenario.seed}")
    with errors_as_failures(ScenarioError, ValueError):
        with RichReporter(console) as reporter:
            result = run_pipeline(
                scenario, cache=ModelCache(enabled=not no_cache), reporter=reporter
            )
        report = write(result, run_dir)
    console.print(_results_table(collect(result)))
    if result.skipped or result.warnings:
        console.print(
            f"[yellow]{len(result.skipped)} part(s) skipped, {len(result.warnings)} warning(s)[/]"
            f": {', '.join([*result.skipped, *result.warnings])} (reasons above, in "
            "metrics.json 'skipped'/'warnings' and in the report's summary)"
        )
    console.print(f"Run directory: {run_dir}")
    console.print(f"Report: [bold]{report}[/]")


@app.command()
def colearn(
    scheme: Annotated[str, typer.Option(help=f"One of: {', '.join(SCHEME_NAMES)}.")],
    preset: PresetOption = None,
    config: ConfigOption = None,
    seed: SeedOption = None,
    rounds: Annotated[
        int | None, typer.Option(help="Override the scheme's number of rounds.", min=1)
    ] = None,
    out: OutOption = None,
    no_cache: NoCacheOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Run one co-learning scheme alone (after the stages it needs) and write its report."""
    if scheme not in SCHEME_NAMES:
        raise _fail(f"unknown scheme {scheme!r}; choose one of: {', '.join(SCHEME_NAMES)}")
    scenario = scenario_for_scheme(_resolve(preset, config, seed), scheme, rounds)
    run_dir = run_directory(out, scenario, overwrite)
    console.print(f"[bold]tinylarge colearn[/]: {scheme} on scenario '{scenario.name}'")
    with errors_as_failures(ScenarioError, ValueError):
        report, result = run_colearn(scenario, run_dir, no_cache=no_cache)
    skipped = result.skipped.get(f"colearning.{scheme}")
    if skipped is not None:
        raise _fail(f"{scheme} could not run on this scenario: {skipped} (report: {report})")
    console.print(rounds_table(scheme, result.colearning[scheme]))
    console.print(f"Run directory: {run_dir}")
    console.print(f"Report: [bold]{report}[/]")


@app.command()
def presets() -> None:
    """List the built-in presets with one-line descriptions."""
    table = Table(title="Presets")
    table.add_column("name")
    table.add_column("description")
    for name, description in preset_descriptions().items():
        table.add_row(name, description)
    console.print(table)


@app.command()
def models() -> None:
    """List the registered models with their options and defaults."""
    from tinylarge.models import model_entry, model_names

    table = Table(title=r"Models (use in a scenario as \[models.tiny] / \[models.large])")
    for column in ("name", "options (defaults)", "description"):
        table.add_column(column)
    for name in model_names():
        entry = model_entry(name)
        options = ", ".join(f"{k}={v!r}" for k, v in entry.options.items())
        table.add_row(name, options, entry.description)
    console.print(table)


@config_app.command("show")
def config_show(preset: PresetOption = None, config: ConfigOption = None) -> None:
    """Print the fully resolved scenario as TOML (it loads back to the same scenario)."""
    scenario = _resolve(preset, config, None)
    typer.echo(scenario_to_toml(scenario), nl=False)


if __name__ == "__main__":
    app()
