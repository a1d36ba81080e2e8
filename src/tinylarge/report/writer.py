"""`write(result, run_dir)`: the run directory with scenario, metrics, plots, models and report."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from tinylarge.config import scenario_to_toml
from tinylarge.integrate.inference.persistence import DEPLOYABLE, save_policy
from tinylarge.models.persistence import save_model
from tinylarge.report.html import page
from tinylarge.report.metrics import collect
from tinylarge.report.sections import SECTIONS, scenario_is_text, text_sections
from tinylarge.sim.state import RunResult
from tinylarge.tiny.codegen import export_c
from tinylarge.tiny.model_file import save_tiny_model
from tinylarge.tiny.onnx_export import export_onnx
from tinylarge.tiny.tflite_export import export_tflite

#: The int8 tiny model in the run directory, and its ONNX export beside it.
TINY_INT8_FILE = "tiny_int8.tlm"
TINY_INT8_ONNX_FILE = "tiny_int8.onnx"
TINY_INT8_TFLITE_FILE = "tiny_int8.tflite"
TINY_INT8_C_DIR = "tiny_int8_c"
#: The run's fitted deployable policies, one JSON file each
#: (`tinylarge.integrate.inference.persistence`).
POLICIES_DIR = "policies"


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a truncated file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


def write(result: RunResult, run_dir: str | Path) -> Path:
    """Write the run directory and return the path of ``report.html``.

    Layout: ``scenario.toml`` (resolved), ``metrics.json``, ``plots/*.png``,
    ``models/<role>.safetensors`` + ``models/<role>.json``, ``tiny_int8.tlm`` (the int8 model),
    ``tiny_int8.onnx``, ``tiny_int8.tflite`` and ``tiny_int8_c/`` (its ONNX, TFLite and C99
    exports),
    ``policies/<name>.json`` (the fitted policies a device can run), ``report.html``
    (self-contained).
    """
    run_dir = Path(run_dir)
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    _write_text(run_dir / "scenario.toml", scenario_to_toml(result.scenario))
    for role, trained in result.models.items():
        extra = {"role": role, "cache_key": trained.cache_key}
        if trained.training is not None:
            extra["training"] = trained.training.to_dict()  # type: ignore[assignment]
        save_model(trained.model, run_dir / "models" / role, trained.manifest, extra)
    fitted = result.policies.fitted if result.policies is not None else {}
    for name, policy in fitted.items():
        if name in DEPLOYABLE:  # what `tinylarge fleet` runs on the devices
            save_policy(policy, run_dir / POLICIES_DIR / f"{name}.json")
    if result.tiny_int8 is not None:
        save_tiny_model(result.tiny_int8, run_dir / TINY_INT8_FILE)
        export_onnx(result.tiny_int8, run_dir / TINY_INT8_ONNX_FILE)
        export_tflite(result.tiny_int8, run_dir / TINY_INT8_TFLITE_FILE)
        export_c(result.tiny_int8, run_dir / TINY_INT8_C_DIR)
    metrics = collect(result)
    _write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if scenario_is_text(result):
        sections = text_sections(result, metrics, plots_dir)
    else:
        sections = [s for build in SECTIONS if (s := build(result, metrics, plots_dir)) is not None]
    scenario = result.scenario
    subtitle = (
        f"scenario '{scenario.name}', seed {scenario.seed}, written "
        f"{dt.datetime.now().astimezone().isoformat(timespec='seconds')}"
    )
    report = run_dir / "report.html"
    _write_text(report, page(f"tinylarge report: {scenario.name}", subtitle, sections))
    return report
