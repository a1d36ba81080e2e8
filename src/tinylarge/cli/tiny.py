"""`tinylarge tiny ...`: inspect, export and run an int8 TinyModel file (``.tlm``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from rich.table import Table

from tinylarge.cli.common import console
from tinylarge.cli.common import fail as _fail
from tinylarge.tiny.footprint import LAYER_TABLE_COLUMNS, footprint, layer_table_rows
from tinylarge.tiny.graph import TinyModel, TinyModelError
from tinylarge.tiny.mcu import MCU_PROFILES, UnknownMcuError, mcu_profile
from tinylarge.tiny.model_file import load_tiny_model

tiny_app = typer.Typer(
    help="Inspect, export and run int8 tiny models (.tlm files).", no_args_is_help=True
)

ModelArgument = Annotated[
    Path, typer.Argument(help="A TinyModel file, e.g. <run dir>/tiny_int8.tlm.", dir_okay=False)
]


def _load(path: Path) -> TinyModel:
    try:
        return load_tiny_model(path)
    except TinyModelError as error:
        raise _fail(str(error)) from None


@tiny_app.command()
def inspect(
    model_path: ModelArgument,
    mcu: Annotated[
        str, typer.Option("--mcu", help=f"MCU profile: {', '.join(MCU_PROFILES)}.")
    ] = "stm32l4r5",
) -> None:
    """Per-layer MACs, parameter and activation bytes; flash, peak SRAM, latency, energy."""
    model = _load(model_path)
    try:
        profile = mcu_profile(mcu)
    except UnknownMcuError as error:
        raise _fail(str(error.args[0])) from None
    fp = footprint(model, profile)
    table = Table(title=f"{model_path.name} on {mcu} ({profile.part})")
    for i, column in enumerate(LAYER_TABLE_COLUMNS):
        table.add_column(column, justify="left" if i < 2 else "right", no_wrap=i < 2)
    for row in layer_table_rows(fp):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"MACs {fp.macs:,} | flash {fp.flash_bytes:,} B of {profile.flash_bytes:,} B | "
        f"peak SRAM {fp.peak_sram_bytes:,} B of {profile.sram_bytes:,} B | "
        f"latency {fp.latency_s * 1e3:.3f} ms | energy {fp.energy_j * 1e6:.1f} uJ",
        highlight=False,
    )
    if fp.fits:
        console.print(f"[green]fits[/] on {mcu}")
    else:
        for violation in fp.violations:
            console.print(f"[bold red]does not fit[/] on {mcu}: {violation}", highlight=False)
        raise typer.Exit(code=1)


@tiny_app.command()
def export(
    model_path: ModelArgument,
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (default: MODEL with .onnx).")
    ] = None,
) -> None:
    """Export the int8 model (ONNX with QLinear operators, int8 in and out)."""
    if format != "onnx":
        raise _fail(f"--format {format!r} is not supported; supported: onnx")
    from tinylarge.tiny.onnx_export import export_onnx  # onnx: only when exporting

    model = _load(model_path)
    path = export_onnx(model, out or model_path.with_suffix(".onnx"))
    console.print(f"wrote {path}", highlight=False)


@tiny_app.command("run")
def run_command(
    model_path: ModelArgument,
    input_path: Annotated[Path, typer.Option("--input", "-i", help="int8 .npy, batch first.")],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="Where to write .npy.")],
    arithmetic: Annotated[
        str,
        typer.Option(
            "--arithmetic",
            help="'onnx': the bytes ONNX Runtime gives for the exported file; 'tflm': "
            "TensorFlow Lite Micro's fixed-point requantization (what a microcontroller runs).",
        ),
    ] = "onnx",
) -> None:
    """Run the integer runtime on an int8 input array and write the int8 output array."""
    if arithmetic not in ("onnx", "tflm"):
        raise _fail(f"--arithmetic {arithmetic!r} is not supported; use 'onnx' or 'tflm'")
    mode: Literal["onnx", "tflm"] = "onnx" if arithmetic == "onnx" else "tflm"
    model = _load(model_path)
    try:
        x = np.load(input_path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise _fail(f"cannot read {input_path} as a .npy array: {error}") from None
    expected = model.input_spec.shape
    if x.dtype != np.int8 or x.shape[1:] != expected:
        raise _fail(
            f"{input_path} holds {x.dtype} of shape {x.shape}; the model needs int8 of shape "
            f"(batch, {', '.join(map(str, expected))})"
        )
    from tinylarge.tiny.runtime import run as run_int8

    y = run_int8(model, x, arithmetic=mode)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(output_path, y)
    console.print(f"wrote {output_path}: int8 {y.shape}", highlight=False)
