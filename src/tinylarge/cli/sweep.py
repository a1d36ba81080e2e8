"""`tinylarge sweep`: a scenario sweep on Ray (a local cluster, or one to join)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tinylarge.cli.common import console, errors_as_failures, fail

if TYPE_CHECKING:
    from tinylarge.sim.sweep_results import PointResult
    from tinylarge.sim.sweep_spec import SweepSpec


def _load_spec(sweep_file: Path | None, example: bool) -> SweepSpec:
    """The sweep of ``sweep_file``, or the built-in example; exits with the reason if invalid."""
    from tinylarge.sim.sweep_spec import SweepError, SweepSpec

    if (sweep_file is None) == (not example):
        raise fail("give a sweep file or --example (one of them)")
    with errors_as_failures(SweepError):
        return SweepSpec.example() if sweep_file is None else SweepSpec.load(sweep_file)


def _sweep_dir(out: Path | None, spec: SweepSpec, resume: bool) -> Path:
    """``out`` (default: a new ``runs/sweep-<name>-<time>``), checked against ``resume``."""
    if out is None:
        out = Path("runs") / f"sweep-{spec.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if resume and not out.is_dir():
        raise fail(f"--resume: {out} is not a sweep directory")
    if not resume and out.exists() and any(out.iterdir()):
        raise fail(f"{out} exists and is not empty; choose another --out or pass --resume")
    return out


def _run_with_progress(
    spec: SweepSpec, out: Path, address: str | None, resume: bool, workers: int | None
) -> list[PointResult]:
    """`run_sweep` with a progress bar of finished points (failures printed as they come)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tinylarge.report import write
    from tinylarge.sim.sweep import run_sweep
    from tinylarge.sim.sweep_spec import SweepError

    columns = (TextColumn("[bold]points"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[last]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("points", total=len(spec.points), last="")

        def done(result: PointResult, finished: int, total: int) -> None:
            mark = "ok" if result.status == "ok" else f"[red]{result.status}[/]"
            progress.update(bar, completed=finished, last=f"{result.point.key} {mark}")
            if result.error:
                progress.console.print(f"[red]! {result.point.key}[/]: {result.error}")

        with errors_as_failures(SweepError):
            results = run_sweep(spec, out, write=write, address=address, resume=resume,
                                num_cpus=workers, on_done=done)  # fmt: skip
        progress.update(bar, completed=len(results))
    return results


def sweep(
    sweep_file: Annotated[
        Path | None,
        typer.Argument(help="A sweep file (TOML: [sweep] and [axes]).", dir_okay=False),
    ] = None,
    example: Annotated[
        bool,
        typer.Option(
            help="Run the built-in example: radio profiles x device counts x "
            "{cascade, router, early_exit} on the smoke preset (a few minutes)."
        ),
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(
            help="Join this Ray cluster ('auto' or HOST:PORT) instead of starting a local one."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Skip the points already finished in --out.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Sweep directory (default: runs/sweep-<name>-<time>).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="CPUs of the local Ray cluster (default: all cores).", min=1),
    ] = None,
) -> None:
    """Run every point of a sweep as a Ray task (one run directory each), then write
    results.csv and a comparison report (metrics against each axis, error bars over seeds,
    the Pareto front of accuracy vs device energy vs p99 latency)."""  # fmt: skip
    from tinylarge.report.sweep_report import write_report

    spec = _load_spec(sweep_file, example)
    out = _sweep_dir(out, spec, resume)
    console.print(
        f"[bold]tinylarge sweep[/] {spec.name}: {len(spec.points)} runs "
        f"({' x '.join(str(len(v)) for v in spec.axes.values()) or '1'} points x "
        f"{len(spec.seeds)} seeds) into {out}"
    )
    results = _run_with_progress(spec, out, address, resume, workers)
    report = write_report(spec, results, out)
    failed = sum(r.status != "ok" for r in results)
    console.print(f"{len(results) - failed} of {len(results)} runs finished, {failed} failed; "
                  f"results: {out / 'results.csv'}; report: [bold]{report}[/]")  # fmt: skip
    if failed:
        raise typer.Exit(code=1)
