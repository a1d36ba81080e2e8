from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tinylarge.cli.main import app
from tinylarge.config import load_preset, scenario_from_table

runner = CliRunner()


def test_presets_lists_default_and_smoke() -> None:
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0
    assert "default" in result.output and "smoke" in result.output


def test_config_show_prints_toml_that_loads_back() -> None:
    result = runner.invoke(app, ["config", "show", "--preset", "smoke"])
    assert result.exit_code == 0
    assert scenario_from_table(tomllib.loads(result.output), "stdout") == load_preset("smoke")
    default = runner.invoke(app, ["config", "show"])
    assert scenario_from_table(tomllib.loads(default.output), "stdout") == load_preset("default")


def test_errors_are_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["run", "--preset", "nope"])
    assert unknown.exit_code == 2
    assert "unknown preset 'nope'" in unknown.output
    assert "Traceback" not in unknown.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[task.radio]\nsnr_db_step = 0\n")
    result = runner.invoke(app, ["config", "show", "--config", str(bad)])
    assert result.exit_code == 2
    assert "task.radio.snr_db_step = 0" in result.output
    both = runner.invoke(app, ["run", "--preset", "smoke", "--config", str(bad)])
    assert both.exit_code == 2 and "not both" in both.output


def test_run_smoke_writes_a_run_directory_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--preset", "smoke", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"Report: {out / 'report.html'}" in " ".join(result.output.split())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scenario"] == {"name": "smoke", "seed": 3}
    assert "Results" in result.output
    again = runner.invoke(app, ["run", "--preset", "smoke", "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_models_lists_the_zoo_with_options() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "tiny_cnn" in result.output and "large_resnet" in result.output
    assert "width=8" in result.output
    # The title names the scenario tables literally (rich must not eat them as markup).
    assert "[models.tiny] / [models.large]" in result.output


@pytest.fixture(scope="module")
def tlm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinylarge.models.registry import build_model
    from tinylarge.tiny.model_file import save_tiny_model
    from tinylarge.tiny.quantize import quantize_model

    model = build_model("tiny_cnn", (2, 128), 8, {"width": 6}, seed=0).eval()
    x = np.random.default_rng(0).standard_normal((64, 2, 128)).astype(np.float32)
    tiny = quantize_model(model, x, tuple("abcdefgh"))
    return save_tiny_model(tiny, tmp_path_factory.mktemp("tlm") / "tiny.tlm")


def test_tiny_inspect_prints_layers_and_whether_it_fits(tlm_file: Path) -> None:
    result = runner.invoke(app, ["tiny", "inspect", str(tlm_file), "--mcu", "nrf52840"])
    assert result.exit_code == 0, result.output
    assert "blocks_0_0" in result.output and "MACs" in result.output
    assert "fits on nrf52840" in result.output
    bad = runner.invoke(app, ["tiny", "inspect", str(tlm_file), "--mcu", "z80"])
    assert bad.exit_code == 2 and "unknown MCU 'z80'; known:" in bad.output


def test_tiny_inspect_reports_the_budget_a_model_exceeds(tmp_path: Path) -> None:
    from tinylarge.models.registry import build_model
    from tinylarge.tiny.model_file import save_tiny_model
    from tinylarge.tiny.quantize import quantize_model

    model = build_model("large_resnet", (2, 1024), 8, {"width": 64}, seed=0).eval()
    x = np.random.default_rng(0).standard_normal((8, 2, 1024)).astype(np.float32)
    path = save_tiny_model(quantize_model(model, x, tuple("abcdefgh")), tmp_path / "big.tlm")
    result = runner.invoke(app, ["tiny", "inspect", str(path), "--mcu", "nrf52840"])
    assert result.exit_code == 1
    assert re.search(
        r"does not fit on nrf52840: Flash: needs [\d,]+ B, has 1,048,576 B", result.output
    )


def test_tiny_export_and_run_give_onnx_runtime_bytes(tlm_file: Path, tmp_path: Path) -> None:
    from tinylarge.tiny.onnx_export import run_onnxruntime

    onnx_path = tmp_path / "m.onnx"
    result = runner.invoke(app, ["tiny", "export", str(tlm_file), "--out", str(onnx_path)])
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(1).integers(-128, 128, (32, 2, 128), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    args = [
        "tiny",
        "run",
        str(tlm_file),
        "-i",
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "y.npy"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int8 and y.shape == (32, 8)
    np.testing.assert_array_equal(y, run_onnxruntime(onnx_path, x))


def test_tiny_run_refuses_wrong_dtype_shape_and_damaged_models(
    tlm_file: Path, tmp_path: Path
) -> None:
    np.save(tmp_path / "f.npy", np.zeros((4, 2, 128), np.float32))
    np.save(tmp_path / "s.npy", np.zeros((4, 2, 64), np.int8))
    for name, message in (
        (
            "f.npy",
            "holds float32 of shape (4, 2, 128); the model needs int8 of shape (batch, 2, 128)",
        ),
        ("s.npy", "holds int8 of shape (4, 2, 64)"),
    ):
        args = [
            "tiny",
            "run",
            str(tlm_file),
            "-i",
            str(tmp_path / name),
            "-o",
            str(tmp_path / "y.npy"),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    broken = tmp_path / "broken.tlm"
    broken.write_bytes(tlm_file.read_bytes()[:100])
    result = runner.invoke(app, ["tiny", "inspect", str(broken)])
    assert result.exit_code == 2 and "not a valid TinyModel file" in result.output


def test_net_inspect_prints_coverage_per_profile_and_writes_the_map(tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    result = runner.invoke(app, ["net", "inspect", "--preset", "smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("nb_iot", "redcap", "fr2_mmwave", "sub_thz"):
        assert name in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_export_tflite_and_run_it_through_tflm(tlm_file: Path, tmp_path: Path) -> None:
    from tinylarge.tiny.model_file import load_tiny_model
    from tinylarge.tiny.runtime import run as run_int8
    from tinylarge.tiny.tflite_export import to_nhwc

    tflite = tmp_path / "m.tflite"
    result = runner.invoke(
        app, ["tiny", "export", str(tlm_file), "--format", "tflite", "--out", str(tflite)]
    )
    assert result.exit_code == 0, result.output
    assert tflite.read_bytes()[4:8] == b"TFL3"
    x = np.random.default_rng(2).integers(-128, 128, (16, 2, 128), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "x_nhwc.npy", to_nhwc(x))  # a .tflite takes its own layout
    expected = run_int8(load_tiny_model(tlm_file), x, arithmetic="tflm")
    for model, frames in ((tlm_file, "x.npy"), (tflite, "x_nhwc.npy")):
        args = ["tiny", "run", str(model), "--runtime", "tflm-interpreter",
                "-i", str(tmp_path / frames), "-o", str(tmp_path / "y.npy")]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(np.load(tmp_path / "y.npy").reshape(16, 8), expected)


def test_tiny_export_and_run_refuse_unknown_formats_and_runtimes(
    tlm_file: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["tiny", "export", str(tlm_file), "--format", "pb"])
    assert result.exit_code == 2 and "supported: onnx, tflite, c" in result.output
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 128), np.int8))
    base = ["tiny", "run", "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]
    result = runner.invoke(app, [*base, str(tlm_file), "--runtime", "litert"])
    assert result.exit_code == 2 and "use 'numpy' or 'tflm-interpreter'" in result.output
    fake = tmp_path / "m.tflite"
    fake.write_bytes(b"not a model")
    result = runner.invoke(app, [*base, str(fake)])
    assert result.exit_code == 2 and "run it with --runtime tflm-interpreter" in result.output
    result = runner.invoke(app, [*base, str(fake), "--runtime", "tflm-interpreter"])
    assert result.exit_code == 2 and "TFLM cannot load" in result.output


def test_tiny_export_c_writes_a_self_contained_library(tlm_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "lib"
    result = runner.invoke(app, ["tiny", "export", str(tlm_file), "--format", "c", "-o", str(out)])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"tl_model.h", "tl_kernels.c"} <= names and any(n.endswith("model.c") for n in names)
    assert "malloc" not in "".join(p.read_text() for p in out.glob("*.c") if "main" not in p.name)


@pytest.mark.slow
def test_tiny_inspect_measure_shows_the_generated_c_beside_the_estimate(
    tlm_file: Path, m4_toolchain: None
) -> None:
    result = runner.invoke(app, ["tiny", "inspect", str(tlm_file), "--measure"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "measured: generated C" in text and "instructions per MAC" in text
    assert "generated C vs the integer runtime: 0 of 2,048 outputs differ" in text


def test_sweep_refuses_bad_arguments_before_starting_ray(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nbase = "smoke"\n[axes]\n"network.profiel" = ["redcap"]\n')
    cases = [
        ([], "give a sweep file or --example"),
        ([str(bad), "--example"], "give a sweep file or --example"),
        ([str(tmp_path / "none.toml")], "sweep file not found"),
        ([str(bad)], "profiel"),
        (["--example", "--resume", "--out", str(tmp_path / "nowhere")], "not a sweep directory"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["sweep", *args])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    result = runner.invoke(app, ["sweep", "--example", "--out", str(full)])
    assert result.exit_code == 2 and "pass --resume" in result.output
