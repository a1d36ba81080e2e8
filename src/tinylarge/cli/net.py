"""`tinylarge net ...`: inspect the 6G network model of a scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tinylarge.cli.common import (
    ConfigOption,
    PresetOption,
    console,
    errors_as_failures,
    resolve_scenario,
)

net_app = typer.Typer(help="Inspect the 6G network model.", no_args_is_help=True)


@net_app.command()
def inspect(
    preset: PresetOption = None,
    config: ConfigOption = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the SNR/rate map (PNG).")
    ] = Path("network_coverage.png"),
) -> None:
    """Per-profile coverage across the cell: SNR and rate (median, 5th percentile), outage."""
    from tinylarge.report.network_section import coverage_cells
    from tinylarge.report.plots import network_coverage
    from tinylarge.sim.net_stages import network_profiles, scenario_coverage

    scenario = resolve_scenario(preset, config, None)
    net = scenario.network
    with errors_as_failures(ValueError):
        profiles = network_profiles(scenario)
    results = scenario_coverage(scenario, profiles)
    per_cell = next(iter(results.values())).devices_per_cell
    title = f"Uplink coverage, scenario '{scenario.name}' ({net.coverage_devices:,} devices each)"
    table = Table(title=title)
    columns = (
        "profile",
        "carrier",
        "SNR median (dB)",
        "SNR p5 (dB)",
        "rate median",
        "rate p5",
        f"rate, {per_cell} sharing",
        "outage",
    )
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for name, result in results.items():
        s = result.summary()
        table.add_row(name, f"{s['carrier_ghz']:g} GHz", *coverage_cells(s))
    console.print(table)
    chosen = results[net.profile]
    topo = chosen.cells.topology
    out.parent.mkdir(parents=True, exist_ok=True)
    network_coverage(
        (topo.x_m, topo.y_m, chosen.snr_db),
        f"{net.profile}: uplink SNR over the cell",
        {name: r.rate_bps for name, r in results.items()},
        out,
    )
    console.print(f"wrote {out}", highlight=False)
