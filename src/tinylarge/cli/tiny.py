"""`tinylarge tiny ...`: inspect, export and run an int8 TinyModel file (``.tlm``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from rich.table import Table

from tinylarge.cli.common import console, errors_as_failures
from tinylarge.cli.common import fail as _fail
from tinylarge.tiny.footprint import LAYER_TABLE_COLUMNS, Footprint, footprint, layer_table_rows
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
    with errors_as_failures(TinyModelError):
        return load_tiny_model(path)


@tiny_app.command()
def inspect(
    model_path: ModelArgument,
    mcu: Annotated[
        str, typer.Option("--mcu", help=f"MCU profile: {', '.join(MCU_PROFILES)}.")
    ] = "stm32l4r5",
    measure: Annotated[
        bool,
        typer.Option(
            "--measure",
            help="Also build the generated C for a Cortex-M4, run it under QEMU and show the "
            "measured flash, SRAM, stack and instructions beside the estimate.",
        ),
    ] = False,
) -> None:
    """Per-layer MACs, parameter and activation bytes; flash, peak SRAM, latency, energy
    (estimated for the MCU's runtime; with --measure, measured for the generated C)."""
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
    if measure:
        _print_measured(model, fp)
    if fp.fits:
        console.print(f"[green]fits[/] on {mcu}")
    else:
        for violation in fp.violations:
            console.print(f"[bold red]does not fit[/] on {mcu}: {violation}", highlight=False)
        raise typer.Exit(code=1)


def _print_measured(model: TinyModel, estimate: Footprint) -> None:
    """The generated C measured on an emulated Cortex-M4, beside the estimate."""
    import tempfile

    from tinylarge.tiny.codegen import ToolchainError, c_check
    from tinylarge.tiny.footprint import comparison_rows
    from tinylarge.tiny.measured import applies_to

    frames = np.random.default_rng(0).integers(-128, 128, (256, *model.input_spec.shape))
    try:
        with tempfile.TemporaryDirectory(prefix="tinylarge-inspect-") as work:
            check = c_check(model, frames.astype(np.int8), work)
    except ToolchainError as error:
        raise _fail(f"--measure needs the Cortex-M4 toolchain and QEMU: {error}") from None
    table = Table(title="estimate vs measured (generated C, Cortex-M4 under QEMU, 256 frames)")
    for column in ("", f"estimate: {estimate.mcu.runtime}", "measured: generated C"):
        table.add_column(column, justify="right")
    for row in comparison_rows(estimate, check):
        table.add_row(*row)
    console.print(table)
    if not applies_to(estimate.mcu):
        console.print(
            f"note: {estimate.mcu.part} has a {estimate.mcu.core}; the measurement is for a "
            "Cortex-M4 binary",
            highlight=False,
        )
    console.print(
        f"generated C vs the integer runtime: {check.mismatches} of "
        f"{check.frames * model.output_spec.size:,} outputs differ",
        highlight=False,
    )


EXPORT_FORMATS = ("onnx", "tflite", "c")


@tiny_app.command()
def export(
    model_path: ModelArgument,
    format: Annotated[
        str, typer.Option("--format", help=f"Export format: {', '.join(EXPORT_FORMATS)}.")
    ] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file (onnx, tflite; default MODEL with its suffix) or "
            "directory (c; default MODEL_c/).",
        ),
    ] = None,
) -> None:
    """Export the int8 model: ONNX (QLinear operators), a standard int8 .tflite that
    TensorFlow Lite Micro runs, or a self-contained C99 library (no interpreter, no malloc)."""
    if format not in EXPORT_FORMATS:
        raise _fail(f"--format {format!r} is not supported; supported: {', '.join(EXPORT_FORMATS)}")
    model = _load(model_path)
    if format == "onnx":
        from tinylarge.tiny.onnx_export import export_onnx  # onnx: only when exporting

        path = export_onnx(model, out or model_path.with_suffix(".onnx"))
    elif format == "tflite":
        from tinylarge.tiny.tflite_export import export_tflite

        path = export_tflite(model, out or model_path.with_suffix(".tflite"))
    else:
        from tinylarge.tiny.codegen import export_c

        path = Path(out or model_path.with_name(f"{model_path.stem}_c"))
        export_c(model, path)
    console.print(f"wrote {path}", highlight=False)


def _read_frames(input_path: Path, shape: tuple[int, ...], layout: str) -> np.ndarray:
    try:
        x: np.ndarray = np.load(input_path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise _fail(f"cannot read {input_path} as a .npy array: {error}") from None
    if x.dtype != np.int8 or tuple(x.shape[1:]) != tuple(shape):
        raise _fail(
            f"{input_path} holds {x.dtype} of shape {x.shape}; the model needs int8 of shape "
            f"(batch, {', '.join(map(str, shape))}) ({layout})"
        )
    return x


@tiny_app.command("run")
def run_command(
    model_path: Annotated[
        Path,
        typer.Argument(
            help="A TinyModel file (.tlm) or, with the TFLM runtime, a .tflite.", dir_okay=False
        ),
    ],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="int8 .npy, batch first.")],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="Where to write .npy.")],
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            help="'numpy': this project's integer runtime; 'tflm-interpreter': TensorFlow Lite "
            "Micro's own interpreter and reference kernels (the tflite-micro package).",
        ),
    ] = "numpy",
    arithmetic: Annotated[
        str,
        typer.Option(
            "--arithmetic",
            help="numpy runtime: 'onnx': the bytes ONNX Runtime gives for the exported file; "
            "'tflm': TensorFlow Lite Micro's fixed-point requantization (what a "
            "microcontroller runs).",
        ),
    ] = "onnx",
) -> None:
    """Run an int8 model on an int8 input array and write the int8 output array. Frames are
    channel-major as in the .tlm model; a .tflite file takes them in its own NHWC layout."""
    if runtime not in ("numpy", "tflm-interpreter"):
        raise _fail(f"--runtime {runtime!r} is not supported; use 'numpy' or 'tflm-interpreter'")
    if arithmetic not in ("onnx", "tflm"):
        raise _fail(f"--arithmetic {arithmetic!r} is not supported; use 'onnx' or 'tflm'")
    if model_path.suffix == ".tflite":
        if runtime != "tflm-interpreter":
            raise _fail(f"{model_path} is a .tflite file: run it with --runtime tflm-interpreter")
        y = _run_tflite(model_path, input_path)
    else:
        model = _load(model_path)
        x = _read_frames(input_path, model.input_spec.shape, "channel-major")
        if runtime == "tflm-interpreter":
            from tinylarge.tiny.tflm_check import tflm_run

            y = tflm_run(model, x)
        else:
            import tinylarge.tiny.runtime

            mode: Literal["onnx", "tflm"] = "onnx" if arithmetic == "onnx" else "tflm"
            y = tinylarge.tiny.runtime.run(model, x, arithmetic=mode)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(output_path, y)
    console.print(f"wrote {output_path}: int8 {y.shape}", highlight=False)


def _run_tflite(model_path: Path, input_path: Path) -> np.ndarray:
    """A .tflite file through TFLM, frames in the file's own input layout."""
    from tflite_micro import runtime as tflm

    try:
        interpreter = tflm.Interpreter.from_bytes(model_path.read_bytes())
    except Exception as error:  # OSError, TFLM's RuntimeError, parse errors of non-models
        raise _fail(f"TFLM cannot load {model_path}: {error} (its reason is on stderr)") from None
    details = interpreter.get_input_details(0)
    if details["dtype"] is not np.int8:
        raise _fail(f"{model_path} takes {details['dtype']}; only int8 models are supported")
    x = _read_frames(input_path, tuple(int(d) for d in details["shape"][1:]), "NHWC")
    outputs = []
    for frame in x:
        interpreter.set_input(np.ascontiguousarray(frame[None]), 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0)[0].copy())
    return np.stack(outputs)
