"""Device drops: area-uniform annulus, indoor fraction, multi-cell layout."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tinylarge.net.topology import Topology, drop_devices, site_positions_m


def test_single_cell_radius_is_area_uniform_over_the_annulus() -> None:
    r0, big_r = 10.0, 500.0
    top = drop_devices(np.random.default_rng(0), 20_000, cell_radius_m=big_r, min_distance_m=r0)
    assert isinstance(top, Topology)
    assert top.n_devices == 20_000 and top.n_cells == 1
    assert np.all((top.d_2d_m >= r0) & (top.d_2d_m <= big_r))
    result = stats.kstest(top.d_2d_m, lambda r: (r**2 - r0**2) / (big_r**2 - r0**2))
    assert result.pvalue > 1e-3
    # positions agree with the distances, and the angle is uniform
    np.testing.assert_allclose(np.hypot(top.x_m, top.y_m), top.d_2d_m)
    angle = np.arctan2(top.y_m, top.x_m)
    assert stats.kstest(angle, stats.uniform(loc=-np.pi, scale=2 * np.pi).cdf).pvalue > 1e-3


def test_dtypes_shapes_and_heights() -> None:
    top = drop_devices(np.random.default_rng(1), 100, cell_radius_m=200.0, h_ut_m=3.0)
    for name in ("x_m", "y_m", "d_2d_m", "h_ut_m"):
        arr = getattr(top, name)
        assert arr.dtype == np.float64 and arr.shape == (100,), name
    assert top.cell.dtype == np.int32 and top.indoor.dtype == np.bool_
    np.testing.assert_array_equal(top.h_ut_m, 3.0)
    heights = np.linspace(1.5, 22.5, 100)
    tall = drop_devices(np.random.default_rng(1), 100, cell_radius_m=200.0, h_ut_m=heights)
    np.testing.assert_array_equal(tall.h_ut_m, heights)
    with pytest.raises(AttributeError):
        top.x_m = top.y_m  # type: ignore[misc]


def test_indoor_fraction() -> None:
    rng = np.random.default_rng(2)
    top = drop_devices(rng, 100_000, cell_radius_m=300.0, indoor_fraction=0.8)
    assert top.indoor.mean() == pytest.approx(0.8, abs=0.005)
    assert not drop_devices(rng, 1000, cell_radius_m=300.0).indoor.any()
    assert drop_devices(rng, 1000, cell_radius_m=300.0, indoor_fraction=1.0).indoor.all()


@pytest.mark.parametrize("layout", ["hex", "line"])
def test_multi_cell_devices_are_within_radius_of_their_serving_cell(layout: str) -> None:
    big_r = 250.0
    top = drop_devices(
        np.random.default_rng(3),
        7_001,
        cell_radius_m=big_r,
        n_cells=7,
        layout=layout,  # type: ignore[arg-type]
    )
    assert top.n_cells == 7
    dx = top.x_m - top.cell_x_m[top.cell]
    dy = top.y_m - top.cell_y_m[top.cell]
    np.testing.assert_allclose(np.hypot(dx, dy), top.d_2d_m)
    assert np.all((top.d_2d_m >= 10.0) & (top.d_2d_m <= big_r))
    counts = np.bincount(top.cell, minlength=7)
    assert counts.max() - counts.min() <= 1  # spread evenly
    isd = np.sqrt(3.0) * big_r  # default inter-site distance
    assert np.hypot(top.cell_x_m[1], top.cell_y_m[1]) == pytest.approx(isd)


def test_hex_grid_rings() -> None:
    x, y = site_positions_m(19, 100.0)
    ring_distance = np.hypot(x, y)
    assert ring_distance[0] == 0.0
    np.testing.assert_allclose(ring_distance[1:7], 100.0)  # first ring
    second = np.sort(ring_distance[7:])
    np.testing.assert_allclose(second[:6], 100.0 * np.sqrt(3.0))  # second ring: 6 + 6
    np.testing.assert_allclose(second[6:], 200.0)
    pairwise = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    assert pairwise[~np.eye(19, dtype=bool)].min() == pytest.approx(100.0)
    lx, ly = site_positions_m(3, 50.0, "line")
    np.testing.assert_array_equal(lx, [0.0, 50.0, 100.0])
    np.testing.assert_array_equal(ly, 0.0)


def test_reproducible_with_the_same_seed() -> None:
    a = drop_devices(
        np.random.default_rng(9), 500, cell_radius_m=100.0, n_cells=3, indoor_fraction=0.3
    )
    b = drop_devices(
        np.random.default_rng(9), 500, cell_radius_m=100.0, n_cells=3, indoor_fraction=0.3
    )
    for name in ("x_m", "y_m", "cell", "d_2d_m", "indoor"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_devices": 0}, "n_devices must be an integer >= 1"),
        ({"n_devices": 2.5}, "n_devices must be an integer"),
        ({"cell_radius_m": -1.0}, "cell_radius_m must be a finite number > 0"),
        (
            {"min_distance_m": 600.0},
            "min_distance_m must satisfy 0 <= min_distance_m < cell_radius_m",
        ),
        ({"min_distance_m": -1.0}, "min_distance_m must satisfy"),
        ({"indoor_fraction": 1.5}, r"indoor_fraction must be within \[0, 1\]"),
        ({"n_cells": 0}, "n_cells must be an integer >= 1"),
        ({"inter_site_distance_m": 0.0}, "inter_site_distance_m must be a finite number > 0"),
        ({"h_ut_m": -2.0}, "h_ut_m must be finite and > 0"),
        ({"h_ut_m": [1.5, 2.0]}, r"h_ut_m must be a number or an array of shape \(10,\)"),
        ({"layout": "square"}, "layout must be one of"),
    ],
)
def test_invalid_inputs_are_rejected(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"n_devices": 10, "cell_radius_m": 500.0} | kwargs
    with pytest.raises(ValueError, match=message):
        drop_devices(np.random.default_rng(0), **args)  # type: ignore[arg-type]


def test_a_million_devices_is_fast() -> None:
    import time

    t0 = time.perf_counter()
    top = drop_devices(
        np.random.default_rng(0), 1_000_000, cell_radius_m=500.0, n_cells=19, indoor_fraction=0.2
    )
    assert time.perf_counter() - t0 < 1.0  # measured ~0.06 s
    assert top.n_devices == 1_000_000
