"""The `npz` task: a user's own data set in one NumPy ``.npz`` archive, strictly validated.

File layout (array names):

- required: ``x_train``, ``y_train``, ``x_test``, ``y_test``;
- optional: ``class_names`` (1-D string array), ``meta_train_<name>`` / ``meta_test_<name>``
  (1-D numeric, one value per sample; every name present for one split must be present for
  the other).

``x`` may be integer or floating point (cast to float32) with shape (n, *input_shape); a 2-D
``x`` of shape (n, F) is taken as F features on one channel and reshaped to (n, 1, F).
Labels may be integers or integral floats. Without ``class_names`` the number of classes is
``max label + 1`` over train and test, and the names are "0".."C-1".
"""

from __future__ import annotations

import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tinylarge.data.task import Task

REQUIRED_KEYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_KEYS: tuple[str, ...] = ("class_names",)
META_PREFIXES: tuple[str, ...] = ("meta_train_", "meta_test_")
_ALLOWED = (
    f"allowed keys: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}, "
    f"and metadata arrays named {META_PREFIXES[0]}<name> / {META_PREFIXES[1]}<name>"
)
#: Labels beyond this cannot be class indices of any realistic task (and could overflow int64).
_MAX_LABEL = 2**31 - 1
_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    pickle.UnpicklingError,
)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ValueError(f"npz task file {str(path)!r} does not exist or is not a file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise ValueError(
            f"npz task file {str(path)!r} is not a readable .npz archive ({exc})"
        ) from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(
            f"npz task file {str(path)!r} holds a single array (.npy), not an .npz archive of "
            f"named arrays; save it with numpy.savez(path, x_train=..., y_train=..., ...)"
        )
    arrays: dict[str, np.ndarray] = {}
    with loaded:
        for key in loaded.files:
            try:
                arrays[key] = np.asarray(loaded[key])
            except _READ_ERRORS as exc:
                raise ValueError(
                    f"npz task file {str(path)!r}: array {key!r} cannot be read ({exc}); "
                    "object (pickled) arrays are not allowed"
                ) from exc
    return arrays


def _check_keys(where: str, arrays: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Validate array names; return the metadata names."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(
            f"{where}: missing required array(s) {missing}; found {sorted(arrays)}; {_ALLOWED}"
        )
    unknown = [
        k
        for k in arrays
        if k not in REQUIRED_KEYS + OPTIONAL_KEYS
        and not any(k.startswith(p) and len(k) > len(p) for p in META_PREFIXES)
    ]
    if unknown:
        raise ValueError(f"{where}: unknown array(s) {sorted(unknown)}; {_ALLOWED}")
    train_names = {k.removeprefix("meta_train_") for k in arrays if k.startswith("meta_train_")}
    test_names = {k.removeprefix("meta_test_") for k in arrays if k.startswith("meta_test_")}
    if train_names != test_names:
        raise ValueError(
            f"{where}: metadata names must match between splits; meta_train_ has "
            f"{sorted(train_names)}, meta_test_ has {sorted(test_names)}"
        )
    return tuple(sorted(train_names))


def _as_x(where: str, key: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "iuf":
        raise ValueError(
            f"{where}: array {key!r} has dtype {x.dtype}; x must be numeric (integer or "
            "floating point); bool, complex, string and object arrays are not allowed"
        )
    if x.ndim < 2:
        raise ValueError(
            f"{where}: array {key!r} has shape {x.shape}; x needs at least 2 dimensions "
            "(n_samples, *input_shape)"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{where}: array {key!r} is empty (0 samples); at least 1 is required")
    if int(np.prod(x.shape[1:])) == 0:
        raise ValueError(f"{where}: array {key!r} has empty samples (shape {x.shape})")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
        out = x.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"{where}: array {key!r} contains NaN or inf (after conversion to float32); "
            "only finite values are allowed"
        )
    return out.reshape(out.shape[0], 1, out.shape[1]) if out.ndim == 2 else out


def _as_labels(where: str, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"{where}: array {key!r} has shape {y.shape}; labels must be 1-D")
    if y.shape[0] != n:
        x_key = "x_" + key.removeprefix("y_")
        raise ValueError(
            f"{where}: array {key!r} has {y.shape[0]} labels but {x_key!r} has {n} samples; "
            "they must match"
        )
    if y.dtype.kind == "f":
        if not (np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            bad = y[~(np.isfinite(y) & (y == np.round(y)))][:5]
            raise ValueError(
                f"{where}: array {key!r} holds non-integer labels (e.g. {bad.tolist()}); labels "
                "must be integers (integral floats such as 3.0 are accepted)"
            )
    elif y.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: array {key!r} has dtype {y.dtype}; labels must be integers "
            "(or integral floats)"
        )
    if y.min() < 0:
        raise ValueError(
            f"{where}: array {key!r} has negative label {y.min()}; labels must be >= 0"
        )
    if y.max() > _MAX_LABEL:
        raise ValueError(
            f"{where}: array {key!r} has label {y.max()}; labels must be <= {_MAX_LABEL}"
        )
    return y.astype(np.int64)


def _class_names(where: str, names: np.ndarray) -> tuple[str, ...]:
    if names.ndim != 1 or names.dtype.kind not in "US" or names.size == 0:
        raise ValueError(
            f"{where}: array 'class_names' has shape {names.shape} and dtype {names.dtype}; "
            "it must be a non-empty 1-D array of strings"
        )
    decoded = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names.tolist())
    if len(set(decoded)) != len(decoded):
        raise ValueError(f"{where}: array 'class_names' repeats a name: {list(decoded)}")
    return decoded


def _as_meta(where: str, key: str, values: np.ndarray, n: int) -> np.ndarray:
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(
            f"{where}: array {key!r} has shape {values.shape}; metadata must be 1-D with one "
            f"value per sample, shape ({n},)"
        )
    if values.dtype.kind not in "biuf":
        raise ValueError(
            f"{where}: array {key!r} has dtype {values.dtype}; metadata must be numeric "
            "(bool, integer or floating point)"
        )
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise ValueError(
            f"{where}: array {key!r} contains NaN or inf; only finite values are allowed"
        )
    return values


def load_npz_task(path: str | Path) -> Task:
    """Load and validate a user's task from an ``.npz`` file (see the module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.npz`` archive. It is read with ``allow_pickle=False``.

    Returns
    -------
    Task
        ``name == "npz"``; x float32 of shape (n, *input_shape) (2-D x becomes (n, 1, F)),
        labels int64, metadata arrays as stored.

    Raises
    ------
    ValueError
        Naming the file, the offending array, what was found and what is allowed.
    """
    file = Path(path)
    where = f"npz task file {str(file)!r}"
    arrays = _read_arrays(file)
    meta_names = _check_keys(where, arrays)
    x_train = _as_x(where, "x_train", arrays["x_train"])
    x_test = _as_x(where, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{where}: per-sample shape of 'x_test' {arrays['x_test'].shape[1:]} differs from "
            f"that of 'x_train' {arrays['x_train'].shape[1:]}; they must be equal"
        )
    y_train = _as_labels(where, "y_train", arrays["y_train"], x_train.shape[0])
    y_test = _as_labels(where, "y_test", arrays["y_test"], x_test.shape[0])
    top_label = int(max(y_train.max(), y_test.max()))
    if "class_names" in arrays:
        class_names = _class_names(where, arrays["class_names"])
        if top_label >= len(class_names):
            raise ValueError(
                f"{where}: label {top_label} found but 'class_names' has only "
                f"{len(class_names)} names; labels must be < {len(class_names)}"
            )
    else:
        class_names = tuple(str(c) for c in range(top_label + 1))
    meta_train = {
        m: _as_meta(where, f"meta_train_{m}", arrays[f"meta_train_{m}"], x_train.shape[0])
        for m in meta_names
    }
    meta_test = {
        m: _as_meta(where, f"meta_test_{m}", arrays[f"meta_test_{m}"], x_test.shape[0])
        for m in meta_names
    }
    return Task(
        name="npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=class_names, meta_train=meta_train, meta_test=meta_test,
        description=f"User data from {file.name}: {len(class_names)} classes.",
    )  # fmt: skip
