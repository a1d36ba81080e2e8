"""Device drops: base-station sites on a grid, devices uniform over an annulus around each.

`drop_devices` returns a `Topology`, a frozen record of per-device arrays (positions,
serving cell, distance to it, antenna height, indoor flag) plus per-cell site positions.
Nothing is a per-device Python object; a million devices are arrays of length 10^6.

Layout (documented choices):

- Sites sit on a hexagonal grid, filled ring by ring around site 0 at the origin (ring 1:
  sites 1-6, ring 2: sites 7-18, ...), or on a line along x (``layout="line"``). Neighbouring
  sites are ``inter_site_distance_m`` apart.
- The default inter-site distance is ``2 R cos(30°) = sqrt(3) R`` for cell radius ``R``: the
  spacing of hexagonal cells whose corners lie at distance ``R`` from their site, so the
  drop disks cover the plane (with overlap). TR 38.901 Table 7.2-1 (UMa ISD 500 m) then
  corresponds to ``R = 500 / sqrt(3) ≈ 289 m``.
- Devices are spread evenly over cells (device ``i`` belongs to cell ``i mod n_cells``; cell
  sizes differ by at most one) and each is served by the cell it was dropped in: serving
  distance <= ``R`` by construction, even where disks of neighbouring cells overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from tinylarge.validation import check_int

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int32]
Layout = Literal["hex", "line"]
LAYOUTS: tuple[str, ...] = ("hex", "line")

#: Axial-coordinate steps that walk once around a hexagonal ring, starting from its corner
#: ``ring * (-1, 1)`` (the ring algorithm of redblobgames.com/grids/hexagons).
_HEX_DIRECTIONS: tuple[tuple[int, int], ...] = ((1, 0), (1, -1), (0, -1), (-1, 0), (-1, 1), (0, 1))


@dataclass(frozen=True)
class Topology:
    """Positions of devices and of the base-station sites serving them.

    Attributes
    ----------
    x_m, y_m : numpy.ndarray of float64, shape (n_devices,)
        Device positions in m.
    cell : numpy.ndarray of int32, shape (n_devices,)
        Index of each device's serving cell, in ``[0, n_cells)``.
    d_2d_m : numpy.ndarray of float64, shape (n_devices,)
        Horizontal distance from each device to its serving site, in m.
    h_ut_m : numpy.ndarray of float64, shape (n_devices,)
        Device antenna height in m.
    indoor : numpy.ndarray of bool, shape (n_devices,)
        True for devices inside buildings (outdoor-to-indoor penetration applies).
    cell_x_m, cell_y_m : numpy.ndarray of float64, shape (n_cells,)
        Site positions in m; site 0 is at the origin.
    """

    x_m: FloatArray
    y_m: FloatArray
    cell: IntArray
    d_2d_m: FloatArray
    h_ut_m: FloatArray
    indoor: BoolArray
    cell_x_m: FloatArray
    cell_y_m: FloatArray

    @property
    def n_devices(self) -> int:
        """Number of devices."""
        return int(self.x_m.shape[0])

    @property
    def n_cells(self) -> int:
        """Number of cells (sites)."""
        return int(self.cell_x_m.shape[0])

    def take(self, index: npt.ArrayLike) -> Topology:
        """The devices at ``index`` (integer positions), in that order; the sites unchanged."""
        i = np.asarray(index, dtype=np.int64)
        return replace(
            self, x_m=self.x_m[i], y_m=self.y_m[i], cell=self.cell[i], d_2d_m=self.d_2d_m[i],
            h_ut_m=self.h_ut_m[i], indoor=self.indoor[i],
        )  # fmt: skip


def site_positions_m(
    n_cells: int, inter_site_distance_m: float, layout: Layout = "hex"
) -> tuple[FloatArray, FloatArray]:
    """Site coordinates of ``n_cells`` cells, site 0 at the origin.

    Parameters
    ----------
    n_cells : int
        Number of sites (>= 1).
    inter_site_distance_m : float
        Distance between neighbouring sites in m (> 0).
    layout : {"hex", "line"}
        Hexagonal grid filled ring by ring, or a line along x at ``0, ISD, 2 ISD, ...``.

    Returns
    -------
    x_m, y_m : numpy.ndarray of float64, shape (n_cells,)
    """
    check_int("n_cells", n_cells, 1)
    _check_positive("inter_site_distance_m", inter_site_distance_m)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "line":
        x = inter_site_distance_m * np.arange(n_cells, dtype=np.float64)
        return x, np.zeros(n_cells, dtype=np.float64)
    axial = [(0, 0)]  # cells are few (not per device): a loop over sites is fine
    ring = 1
    while len(axial) < n_cells:
        q, r = -ring, ring
        for dq, dr in _HEX_DIRECTIONS:
            for _ in range(ring):
                axial.append((q, r))
                q, r = q + dq, r + dr
        ring += 1
    qr = np.asarray(axial[:n_cells], dtype=np.float64)
    x = inter_site_distance_m * (qr[:, 0] + 0.5 * qr[:, 1])
    y = inter_site_distance_m * (math.sqrt(3.0) / 2.0) * qr[:, 1]
    return x, y


def drop_devices(
    rng: np.random.Generator,
    n_devices: int,
    *,
    cell_radius_m: float,
    min_distance_m: float = 10.0,
    n_cells: int = 1,
    inter_site_distance_m: float | None = None,
    h_ut_m: npt.ArrayLike = 1.5,
    indoor_fraction: float = 0.0,
    layout: Layout = "hex",
) -> Topology:
    """Drop devices uniformly (by area) over an annulus around each cell's site.

    Each device's distance to its site is ``r = sqrt(U (R^2 - r0^2) + r0^2)``, ``U ~ U[0, 1)``,
    so that ``P(r <= x) = (x^2 - r0^2) / (R^2 - r0^2)``; its angle is uniform. Each device is
    indoor with probability ``indoor_fraction`` (independently).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all random draws.
    n_devices : int
        Number of devices (>= 1).
    cell_radius_m : float
        Outer drop radius ``R`` in m (> 0).
    min_distance_m : float, default 10.0
        Inner drop radius ``r0`` in m, ``0 <= r0 < R`` (TR 38.901 Table 7.4.1-1 starts UMa and
        UMi at ``d_2D = 10 m``).
    n_cells : int, default 1
        Number of cells (>= 1), devices spread evenly over them.
    inter_site_distance_m : float or None, default None
        Site spacing in m (> 0); None means ``sqrt(3) R`` (see module docstring).
    h_ut_m : float or array_like of shape (n_devices,), default 1.5
        Device antenna height in m (> 0; TR 38.901 UMa/UMi accept 1.5-22.5 m).
    indoor_fraction : float, default 0.0
        Probability that a device is indoor, in [0, 1].
    layout : {"hex", "line"}, default "hex"
        Site layout, see `site_positions_m`.

    Returns
    -------
    Topology
        Arrays of length ``n_devices`` (devices) and ``n_cells`` (sites).
    """
    check_int("n_devices", n_devices, 1)
    check_int("n_cells", n_cells, 1)
    _check_positive("cell_radius_m", cell_radius_m)
    if not (math.isfinite(min_distance_m) and 0.0 <= min_distance_m < cell_radius_m):
        raise ValueError(
            f"min_distance_m must satisfy 0 <= min_distance_m < cell_radius_m "
            f"= {cell_radius_m:g} m, got {min_distance_m!r}"
        )
    if not (0.0 <= indoor_fraction <= 1.0):
        raise ValueError(f"indoor_fraction must be within [0, 1], got {indoor_fraction!r}")
    isd = math.sqrt(3.0) * cell_radius_m if inter_site_distance_m is None else inter_site_distance_m
    cell_x, cell_y = site_positions_m(n_cells, isd, layout)
    try:
        heights = np.broadcast_to(np.asarray(h_ut_m, dtype=np.float64), (n_devices,)).copy()
    except ValueError:
        raise ValueError(
            f"h_ut_m must be a number or an array of shape ({n_devices},), "
            f"got shape {np.shape(h_ut_m)}"
        ) from None
    if not (np.all(np.isfinite(heights)) and np.all(heights > 0.0)):
        raise ValueError(
            f"h_ut_m must be finite and > 0 m, got values from {heights.min():g} "
            f"to {heights.max():g}"
        )

    cell = (np.arange(n_devices, dtype=np.int64) % n_cells).astype(np.int32)
    r0_sq, r_sq = min_distance_m**2, cell_radius_m**2
    d_2d = np.sqrt(rng.random(n_devices) * (r_sq - r0_sq) + r0_sq)
    angle = rng.random(n_devices) * (2.0 * np.pi)
    x = cell_x[cell] + d_2d * np.cos(angle)
    y = cell_y[cell] + d_2d * np.sin(angle)
    indoor = rng.random(n_devices) < indoor_fraction
    return Topology(x, y, cell, d_2d, heights, indoor, cell_x, cell_y)


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float | np.floating) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
