"""What every `tinylarge` subcommand shares: consoles, errors, scenario options."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tinylarge.config import Scenario, ScenarioError, load_preset, load_scenario, with_seed

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console()
err_console = Console(stderr=True)

PresetOption = Annotated[
    str | None, typer.Option("--preset", "-p", help="Built-in preset (see `tinylarge presets`).")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Scenario TOML file.", dir_okay=False)
]
SeedOption = Annotated[int | None, typer.Option(help="Override the scenario's seed.", min=0)]
OutOption = Annotated[
    Path | None, typer.Option(help="Run directory (default: runs/<name>-seed<N>-<time>).")
]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Retrain models even if cached.")]
OverwriteOption = Annotated[
    bool, typer.Option(help="Allow writing into a non-empty --out directory.")
]


def fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


@contextmanager
def errors_as_failures(*errors: type[Exception]) -> Iterator[None]:
    """Turn an expected error (bad input, a missing file) into a one-line ``error:`` message
    and exit code 2, not a traceback: ``with errors_as_failures(ValueError): ...``."""
    try:
        yield
    except errors as error:
        raise fail(str(error)) from None


def resolve_scenario(preset: str | None, config: Path | None, seed: int | None) -> Scenario:
    """The scenario from --preset or --config (default preset: 'default'), with --seed applied."""
    if preset is not None and config is not None:
        raise fail("give either --preset or --config, not both")
    with errors_as_failures(ScenarioError):
        scenario = load_scenario(config) if config is not None else load_preset(preset or "default")
        return with_seed(scenario, seed) if seed is not None else scenario


def run_directory(out: Path | None, scenario: Scenario, overwrite: bool) -> Path:
    """``--out``, or runs/<name>-seed<N>-<time>; refuses a non-empty one without --overwrite."""
    if out is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{scenario.name}-seed{scenario.seed}-{stamp}"
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise fail(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    return out


def step_progress(label: str) -> Progress:
    """A transient progress bar for a training loop of known steps: the label, the bar,
    steps done, a ``status`` field (loss, throughput), elapsed and remaining time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )  # fmt: skip
