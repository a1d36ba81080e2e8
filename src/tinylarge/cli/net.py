"""`tinylarge net ...`: inspect the 6G network model of a scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tinylarge.cli.common import ConfigOption, PresetOption, console, resolve_scenario
from tinylarge.cli.common import fail as _fail

net_app = typer.Typer(help="Inspect the 6G network model.", no_args_is_help=True)


def _rate(bps: float) -> str:
    for unit, factor in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bps >= factor:
            return f"{bps / factor:.3g} {unit}"
    return f"{bps:.3g} b/s"


@net_app.command()
def inspect(
    preset: PresetOption = None,
    config: ConfigOption = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the SNR/rate map (PNG).")
    ] = Path("network_coverage.png"),
) -> None:
    """Per-profile coverage across the cell: SNR and rate (median, 5th percentile), outage."""
    from tinylarge.net import coverage
    from tinylarge.report.plots import network_coverage
    from tinylarge.seeding import rng_for
    from tinylarge.sim.net_stages import network_profiles

    scenario = resolve_scenario(preset, config, None)
    net = scenario.network
    try:
        profiles = network_profiles(scenario)
    except ValueError as error:
        raise _fail(str(error)) from None
    per_cell = max(1, scenario.devices.count // net.n_cells)
    results = {
        name: coverage(
            rng_for(scenario.seed, "network", "coverage", name),
            name,
            profile,
            net.coverage_devices,
            devices_per_cell=per_cell,
            indoor_fraction=net.indoor_fraction,
            device_height_m=net.device_height_m,
            fading=net.fading,
            rician_k_db=net.rician_k_db,
            method=net.spectral_efficiency,
        )
        for name, profile in profiles.items()
    }
    title = f"Uplink coverage, scenario '{scenario.name}' ({net.coverage_devices:,} devices each)"
    table = Table(title=title)
    columns = (
        "profile",
        "carrier",
        "SNR median",
        "SNR p5",
        "rate median",
        "rate p5",
        f"rate, {per_cell} sharing",
        "outage",
    )
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for name, result in results.items():
        s = result.summary()
        table.add_row(
            name,
            f"{s['carrier_ghz']:g} GHz",
            f"{s['snr_db_median']:.1f} dB",
            f"{s['snr_db_p5']:.1f} dB",
            _rate(s["rate_bps_median"]),
            _rate(s["rate_bps_p5"]),
            _rate(s["shared_rate_bps_median"]),
            f"{100 * s['outage_fraction']:.2f} %",
        )
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
