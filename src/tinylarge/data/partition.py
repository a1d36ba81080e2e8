"""Split a data set's samples across N devices: IID, Dirichlet label skew, or by SNR.

A `Partition` is two arrays in CSR form (never one object per device), so a million devices
cost two int64 arrays. Every function here returns a disjoint partition of
``range(n_samples)`` that holds every sample exactly once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Partition:
    """Which samples each of N devices holds, in CSR form (arrays, not per-device objects).

    Attributes
    ----------
    indices : numpy.ndarray of int64, shape (n_assigned,)
        Sample indices of device 0, then device 1, ...
    offsets : numpy.ndarray of int64, shape (n_devices + 1,)
        Device ``d`` holds ``indices[offsets[d]:offsets[d + 1]]``; ``offsets[0] == 0`` and
        ``offsets[-1] == len(indices)``.
    """

    indices: IntArray
    offsets: IntArray

    def __post_init__(self) -> None:
        for name in ("indices", "offsets"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype != np.int64 or value.ndim != 1:
                raise ValueError(f"Partition.{name} must be a 1-D int64 numpy array, got {value!r}")
        if self.offsets.size < 2:
            raise ValueError(
                f"Partition.offsets must have n_devices + 1 >= 2 entries, got {self.offsets.size}"
            )
        if self.offsets[0] != 0 or self.offsets[-1] != self.indices.size:
            raise ValueError(
                f"Partition.offsets must start at 0 and end at len(indices) = "
                f"{self.indices.size}, got {self.offsets[0]} .. {self.offsets[-1]}"
            )
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError("Partition.offsets must be non-decreasing")
        if self.indices.size and self.indices.min() < 0:
            raise ValueError(f"Partition.indices must be >= 0, got {self.indices.min()}")

    @property
    def n_devices(self) -> int:
        """Number of devices."""
        return int(self.offsets.size - 1)

    @property
    def sizes(self) -> IntArray:
        """Samples per device, int64 of shape (n_devices,)."""
        return np.diff(self.offsets).astype(np.int64)

    def device(self, d: int) -> IntArray:
        """Sample indices of device ``d`` (a view), int64 of shape (sizes[d],)."""
        if (
            isinstance(d, bool)
            or not isinstance(d, int | np.integer)
            or not (0 <= d < self.n_devices)
        ):
            raise ValueError(f"device index must be an integer in [0, {self.n_devices}), got {d!r}")
        return self.indices[self.offsets[d] : self.offsets[d + 1]]

    def label_histogram(self, labels: npt.ArrayLike, num_classes: int) -> IntArray:
        """Count each device's samples per class.

        Parameters
        ----------
        labels : array_like of int, shape (n_samples,)
            Class of every sample, in ``[0, num_classes)``.
        num_classes : int
            Number of classes (>= 1).

        Returns
        -------
        numpy.ndarray of int64, shape (n_devices, num_classes)
        """
        y = _check_labels(labels)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]"
            )
        if self.indices.size and self.indices.max() >= y.size:
            raise ValueError(
                f"partition refers to sample {self.indices.max()} but labels has only {y.size}"
            )
        device_of = np.repeat(np.arange(self.n_devices, dtype=np.int64), self.sizes)
        flat = device_of * num_classes + y[self.indices]
        counts = np.bincount(flat, minlength=self.n_devices * num_classes)
        return counts.reshape(self.n_devices, num_classes).astype(np.int64)


def _check_labels(labels: npt.ArrayLike) -> IntArray:
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(
            f"labels must be a 1-D integer array, got shape {y.shape} and dtype {y.dtype}"
        )
    return y.astype(np.int64)


def _check_devices(n_devices: int, n_samples: int) -> None:
    if isinstance(n_devices, bool) or not isinstance(n_devices, int | np.integer):
        raise ValueError(f"n_devices must be an integer, got {n_devices!r}")
    if not (1 <= n_devices <= n_samples):
        raise ValueError(
            f"n_devices must lie in [1, n_samples] = [1, {n_samples}] so that every device "
            f"holds at least one sample, got {n_devices}"
        )


def _even_offsets(n_samples: int, n_devices: int) -> IntArray:
    """Offsets splitting n_samples into n_devices contiguous chunks differing by at most 1."""
    sizes = np.full(n_devices, n_samples // n_devices, dtype=np.int64)
    sizes[: n_samples % n_devices] += 1
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _from_assignment(device_of: IntArray, n_devices: int) -> Partition:
    """Build a partition from each sample's device (samples ascending within a device)."""
    indices = np.argsort(device_of, kind="stable").astype(np.int64)
    counts = np.bincount(device_of, minlength=n_devices)
    return Partition(
        indices=indices, offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    )


def partition_iid(n_samples: int, n_devices: int, rng: np.random.Generator) -> Partition:
    """Shuffle the samples and deal them out in near-equal shares (sizes differ by <= 1).

    Parameters
    ----------
    n_samples : int
        Number of samples (>= 1).
    n_devices : int
        Number of devices, in [1, n_samples].
    rng : numpy.random.Generator
        Source of the permutation.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    _check_devices(n_devices, int(n_samples))
    indices = rng.permutation(int(n_samples)).astype(np.int64)
    return Partition(indices=indices, offsets=_even_offsets(int(n_samples), int(n_devices)))


def partition_dirichlet(
    labels: npt.ArrayLike,
    n_devices: int,
    alpha: float,
    rng: np.random.Generator,
    *,
    min_samples_per_device: int = 1,
    max_tries: int = 100,
) -> Partition:
    """Label-skewed split: each class's samples are spread over devices by Dirichlet(alpha).

    The standard non-IID benchmark split (Yurochkin et al., ICML 2019; Hsu, Qi & Brown,
    arXiv:1909.06335, 2019): for every class, device shares ``p ~ Dir(alpha · 1_N)``, and the
    class's shuffled samples are cut at ``round(cumsum(p) · n_class)``. Small ``alpha`` (e.g.
    0.1) gives each device few classes; large ``alpha`` (e.g. 100) approaches IID. Draws are
    repeated until every device holds at least ``min_samples_per_device`` samples.

    Parameters
    ----------
    labels : array_like of int, shape (n_samples,)
        Class of every sample (>= 0).
    n_devices : int
        Number of devices, in [1, n_samples].
    alpha : float
        Dirichlet concentration (> 0).
    rng : numpy.random.Generator
        Source of the shares and shuffles.
    min_samples_per_device : int
        Smallest acceptable device (>= 0).
    max_tries : int
        Number of draws before giving up (>= 1).

    Raises
    ------
    ValueError
        On bad arguments, or if no draw in ``max_tries`` gives every device enough samples.
    """
    y = _check_labels(labels)
    if y.size == 0:
        raise ValueError("labels must hold at least one sample")
    if y.min() < 0:
        raise ValueError(f"labels must be >= 0, got {y.min()}")
    _check_devices(n_devices, y.size)
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0.0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    if min_samples_per_device < 0 or max_tries < 1:
        raise ValueError(
            f"min_samples_per_device must be >= 0 and max_tries >= 1, got "
            f"{min_samples_per_device} and {max_tries}"
        )
    if n_devices * min_samples_per_device > y.size:
        raise ValueError(
            f"{n_devices} devices x min_samples_per_device {min_samples_per_device} exceeds "
            f"the {y.size} samples; use fewer devices or a smaller minimum"
        )
    classes = np.unique(y)
    smallest = 0
    for _ in range(max_tries):
        shares = rng.dirichlet(np.full(n_devices, float(alpha)), size=classes.size)
        device_of = np.empty(y.size, dtype=np.int64)
        for c, share in zip(classes, shares, strict=True):
            members = rng.permutation(np.flatnonzero(y == c))
            cuts = np.round(np.cumsum(share)[:-1] * members.size).astype(np.int64)
            counts = np.diff(np.concatenate([[0], cuts, [members.size]]))
            device_of[members] = np.repeat(np.arange(n_devices, dtype=np.int64), counts)
        smallest = int(np.bincount(device_of, minlength=n_devices).min())
        if smallest >= min_samples_per_device:
            return _from_assignment(device_of, int(n_devices))
    raise ValueError(
        f"partition_dirichlet: after {max_tries} tries some device still held fewer than "
        f"{min_samples_per_device} samples (last try: {smallest}) with alpha={alpha}, "
        f"{n_devices} devices and {y.size} samples; use a larger alpha, fewer devices, a "
        "smaller min_samples_per_device or more max_tries"
    )


def partition_by_snr(
    snr_db: npt.ArrayLike, n_devices: int, rng: np.random.Generator, *, mixing: float = 0.1
) -> Partition:
    """Geographic split by link quality: device 0 farthest (lowest SNR), device N-1 nearest.

    Samples are ranked by SNR (ties broken at random), the normalized rank ``r in [0, 1)`` is
    jittered by Gaussian noise of std ``mixing``, and the samples, sorted by the jittered rank,
    are cut into N contiguous near-equal chunks. ``mixing = 0`` sorts perfectly; ``mixing``
    around 1 or more gives nearly IID devices.

    Parameters
    ----------
    snr_db : array_like of float, shape (n_samples,)
        Per-sample SNR in dB (finite).
    n_devices : int
        Number of devices, in [1, n_samples].
    rng : numpy.random.Generator
        Source of the tie-breaks and jitter.
    mixing : float
        Jitter std in units of normalized rank (>= 0).
    """
    snr = np.asarray(snr_db)
    if snr.ndim != 1 or snr.size == 0 or snr.dtype.kind not in "iuf":
        raise ValueError(
            f"snr_db must be a non-empty 1-D numeric array, got shape {snr.shape} and dtype "
            f"{snr.dtype}"
        )
    if not np.all(np.isfinite(snr)):
        raise ValueError("snr_db must be finite (no NaN or inf)")
    _check_devices(n_devices, snr.size)
    if not (isinstance(mixing, int | float) and math.isfinite(mixing) and mixing >= 0.0):
        raise ValueError(f"mixing must be a finite number >= 0, got {mixing!r}")
    n = snr.size
    order = np.lexsort((rng.random(n), snr))  # ascending SNR, random tie-break
    rank = np.empty(n, dtype=np.float64)
    rank[order] = np.arange(n, dtype=np.float64) / n
    key = rank + float(mixing) * rng.standard_normal(n)
    indices = np.argsort(key, kind="stable").astype(np.int64)
    return Partition(indices=indices, offsets=_even_offsets(n, int(n_devices)))
