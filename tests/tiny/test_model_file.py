"""The `.tlm` file: exact round trip, and clear errors for damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylarge.models.registry import build_model
from tinylarge.tiny.graph import TinyModel, TinyModelError
from tinylarge.tiny.model_file import from_bytes, load_tiny_model, save_tiny_model, to_bytes
from tinylarge.tiny.quantize import quantize_model


@pytest.fixture(scope="module")
def tiny_model() -> TinyModel:
    model = build_model("large_resnet", (2, 32), 4, {"width": 4}, seed=0).eval()
    x = np.random.default_rng(0).standard_normal((16, 2, 32)).astype(np.float32)
    return quantize_model(model, x, ("w", "x", "y", "z"), extra_manifest={"note": "test"})


def test_save_load_round_trips_exactly(tiny_model: TinyModel, tmp_path: Path) -> None:
    path = save_tiny_model(tiny_model, tmp_path / "m.tlm")
    loaded = load_tiny_model(path)
    assert loaded.ops == tiny_model.ops
    assert loaded.tensors == tiny_model.tensors  # float32 scales survive JSON exactly
    assert loaded.class_names == tiny_model.class_names
    assert loaded.manifest == tiny_model.manifest
    assert loaded.constants.keys() == tiny_model.constants.keys()
    for name, array in tiny_model.constants.items():
        assert loaded.constants[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded.constants[name], array)
    assert to_bytes(loaded) == to_bytes(tiny_model)


def test_truncated_file_is_a_clear_error(tiny_model: TinyModel, tmp_path: Path) -> None:
    data = to_bytes(tiny_model)
    path = tmp_path / "cut.tlm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TinyModelError, match=r"cut\.tlm is not a valid TinyModel file"):
        load_tiny_model(path)


def test_flipped_weight_byte_fails_the_hash(tiny_model: TinyModel) -> None:
    data = bytearray(to_bytes(tiny_model))
    data[-3] ^= 0x01  # inside the last constant's bytes
    with pytest.raises(TinyModelError, match="SHA-256"):
        from_bytes(bytes(data))


def test_missing_file_and_foreign_version(tiny_model: TinyModel, tmp_path: Path) -> None:
    with pytest.raises(TinyModelError, match="no TinyModel file"):
        load_tiny_model(tmp_path / "absent.tlm")
    data = to_bytes(tiny_model).replace(b'\\"format_version\\": 1', b'\\"format_version\\": 9')
    with pytest.raises(TinyModelError, match="format version 9"):
        from_bytes(data)
