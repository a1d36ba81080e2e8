"""The user `.npz` loader: round trip and every validation error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinylarge.data import load_npz_task


def _valid(**overrides: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    arrays: dict[str, Any] = {
        "x_train": rng.standard_normal((12, 3, 5)),
        "y_train": np.arange(12) % 3,
        "x_test": rng.standard_normal((6, 3, 5)),
        "y_test": np.arange(6) % 3,
    }
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def _write(tmp_path: Path, **arrays: Any) -> Path:
    path = tmp_path / "task.npz"
    np.savez(path, **arrays)
    return path


def test_round_trip_with_names_and_metadata(tmp_path: Path) -> None:
    arrays = _valid(
        class_names=np.array(["cat", "dog", "eel"]),
        meta_train_snr_db=np.linspace(0, 1, 12),
        meta_test_snr_db=np.linspace(0, 1, 6),
    )
    task = load_npz_task(_write(tmp_path, **arrays))
    assert task.name == "npz"
    assert task.class_names == ("cat", "dog", "eel")
    assert task.x_train.dtype == np.float32 and task.y_train.dtype == np.int64
    np.testing.assert_allclose(task.x_train, arrays["x_train"].astype(np.float32))
    np.testing.assert_array_equal(task.y_test, arrays["y_test"])
    np.testing.assert_array_equal(task.meta_train["snr_db"], arrays["meta_train_snr_db"])
    assert set(task.meta_test) == {"snr_db"}


def test_defaults_integer_x_2d_x_and_integral_float_labels(tmp_path: Path) -> None:
    arrays = _valid(
        x_train=np.arange(24, dtype=np.int16).reshape(12, 2),
        x_test=np.ones((6, 2), dtype=np.uint8),
        y_train=(np.arange(12) % 4).astype(np.float64),
        y_test=np.array([0, 1, 5, 0, 1, 2]),
    )
    task = load_npz_task(str(_write(tmp_path, **arrays)))
    assert task.input_shape == (1, 2)  # (n, F) becomes (n, 1, F)
    assert task.class_names == ("0", "1", "2", "3", "4", "5")  # max label 5 over both splits
    assert task.meta_train == {}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope.npz' does not exist"):
        load_npz_task(tmp_path / "nope.npz")


def test_not_an_npz(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive at all" * 4)
    with pytest.raises(ValueError, match=r"junk.npz' is not a readable .npz archive"):
        load_npz_task(junk)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match=r"holds a single array \(.npy\)"):
        load_npz_task(single)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(_write(tmp_path, **_valid()).read_bytes()[:200])
    with pytest.raises(ValueError, match=r"truncated\.npz"):
        load_npz_task(truncated)


def test_missing_required_key(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(y_test=None))
    with pytest.raises(ValueError, match=r"task.npz'.*missing required array\(s\) \['y_test'\]"):
        load_npz_task(path)


def test_unknown_key_lists_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(labels=np.zeros(3)))
    with pytest.raises(ValueError, match=r"unknown array\(s\) \['labels'\]; allowed keys: x_train"):
        load_npz_task(path)
    path = _write(tmp_path, **_valid(meta_train_=np.zeros(12), meta_test_=np.zeros(6)))
    with pytest.raises(ValueError, match=r"unknown array\(s\).*meta_train_<name>"):
        load_npz_task(path)


@pytest.mark.parametrize(
    "x_test",
    [
        np.zeros((6, 3, 5), dtype=bool),
        np.zeros((6, 3, 5), dtype=np.complex64),
        np.full((6, 3, 5), "a"),
    ],
)
def test_non_numeric_x_is_rejected(tmp_path: Path, x_test: np.ndarray) -> None:
    path = _write(tmp_path, **_valid(x_test=x_test))
    with pytest.raises(ValueError, match=r"array 'x_test' has dtype .*; x must be numeric"):
        load_npz_task(path)


def test_object_array_is_rejected(tmp_path: Path) -> None:
    x = np.empty((12, 2), dtype=object)
    x[:] = 1.0
    path = _write(tmp_path, **_valid(x_train=x))
    with pytest.raises(ValueError, match=r"array 'x_train' cannot be read.*object \(pickled\)"):
        load_npz_task(path)


def test_x_with_one_dimension(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(x_train=np.zeros(12)))
    with pytest.raises(ValueError, match=r"'x_train' has shape \(12,\); x needs at least 2"):
        load_npz_task(path)


def test_per_sample_shape_mismatch(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(x_test=np.zeros((6, 5, 3))))
    with pytest.raises(ValueError, match=r"'x_test' \(5, 3\) differs from that of 'x_train'"):
        load_npz_task(path)


def test_labels_not_1d(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(y_train=np.zeros((12, 1), dtype=int)))
    with pytest.raises(ValueError, match=r"'y_train' has shape \(12, 1\); labels must be 1-D"):
        load_npz_task(path)


def test_non_integer_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(y_test=np.array([0, 1, 2, 0.5, 1, 2])))
    with pytest.raises(ValueError, match=r"'y_test' holds non-integer labels \(e.g. \[0.5\]\)"):
        load_npz_task(path)
    path = _write(tmp_path, **_valid(y_test=np.array(["a"] * 6)))
    with pytest.raises(ValueError, match="labels must be integers"):
        load_npz_task(path)


def test_label_length_mismatch(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(y_train=np.zeros(11, dtype=int)))
    with pytest.raises(ValueError, match="'y_train' has 11 labels but 'x_train' has 12 samples"):
        load_npz_task(path)


def test_negative_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(y_train=np.arange(12) - 1))
    with pytest.raises(ValueError, match="'y_train' has negative label -1; labels must be >= 0"):
        load_npz_task(path)


def test_label_beyond_class_names(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(class_names=np.array(["a", "b"])))
    with pytest.raises(ValueError, match="label 2 found but 'class_names' has only 2 names"):
        load_npz_task(path)


def test_bad_class_names(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(class_names=np.array([1, 2, 3])))
    with pytest.raises(ValueError, match=r"'class_names'.*non-empty 1-D array of strings"):
        load_npz_task(path)
    path = _write(tmp_path, **_valid(class_names=np.array(["a", "a", "b"])))
    with pytest.raises(ValueError, match="'class_names' repeats a name"):
        load_npz_task(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(tmp_path: Path, bad: float) -> None:
    x = np.zeros((12, 3, 5))
    x[4, 1, 2] = bad
    with pytest.raises(ValueError, match="'x_train' contains NaN or inf"):
        load_npz_task(_write(tmp_path, **_valid(x_train=x)))


def test_x_overflowing_float32_is_rejected(tmp_path: Path) -> None:
    x = np.zeros((6, 3, 5))
    x[0, 0, 0] = 1e300
    with pytest.raises(ValueError, match=r"'x_test' contains NaN or inf \(after conversion"):
        load_npz_task(_write(tmp_path, **_valid(x_test=x)))


def test_non_finite_metadata(tmp_path: Path) -> None:
    meta = np.zeros(6)
    meta[2] = np.nan
    path = _write(tmp_path, **_valid(meta_train_snr=np.zeros(12), meta_test_snr=meta))
    with pytest.raises(ValueError, match="'meta_test_snr' contains NaN or inf"):
        load_npz_task(path)


def test_metadata_names_must_pair_and_fit(tmp_path: Path) -> None:
    path = _write(tmp_path, **_valid(meta_train_snr=np.zeros(12)))
    with pytest.raises(ValueError, match=r"meta_train_ has \['snr'\], meta_test_ has \[\]"):
        load_npz_task(path)
    path = _write(tmp_path, **_valid(meta_train_snr=np.zeros(11), meta_test_snr=np.zeros(6)))
    with pytest.raises(ValueError, match=r"'meta_train_snr' has shape \(11,\); metadata must"):
        load_npz_task(path)
    path = _write(
        tmp_path, **_valid(meta_train_tag=np.full(12, "a"), meta_test_tag=np.full(6, "b"))
    )
    with pytest.raises(ValueError, match="'meta_train_tag' has dtype <U1; metadata must be"):
        load_npz_task(path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_empty_split(tmp_path: Path, split: str) -> None:
    path = _write(
        tmp_path, **_valid(**{f"x_{split}": np.zeros((0, 3, 5)), f"y_{split}": np.zeros(0, int)})
    )
    with pytest.raises(ValueError, match=f"'x_{split}' is empty"):
        load_npz_task(path)
