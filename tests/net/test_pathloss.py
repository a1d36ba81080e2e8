"""TR 38.901 path loss, LOS probability, shadow fading and O2I penetration."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tinylarge.net import pathloss as pl

# (scenario, distance m, fc GHz, h_bs m, h_ut m, los, expected dB): computed by hand from the
# formulas of 3GPP TR 38.901 V17.0.0 Table 7.4.1-1 (shadow fading excluded)
PATH_LOSS_VECTORS = [
    ("uma", 100.0, 3.5, 25.0, 1.5, True, 83.1382),
    ("uma", 1000.0, 3.5, 25.0, 1.5, True, 109.4119),
    ("uma", 300.0, 3.5, 25.0, 1.5, False, 121.2792),
    ("umi", 50.0, 28.0, 10.0, 1.5, True, 97.1514),
    ("umi", 200.0, 28.0, 10.0, 1.5, False, 134.4647),
    ("inh", 20.0, 60.0, 3.0, 1.0, True, 90.4708),
    ("inh", 40.0, 3.5, 3.0, 1.0, False, 92.2062),
]
STANDARD = {"uma": (25.0, 1.5, 3.5), "umi": (10.0, 1.5, 28.0), "inh": (3.0, 1.0, 3.5)}


@pytest.mark.parametrize(
    ("scenario", "d", "fc", "h_bs", "h_ut", "los", "expected"), PATH_LOSS_VECTORS
)
def test_path_loss_matches_reference_vectors(
    scenario: str, d: float, fc: float, h_bs: float, h_ut: float, los: bool, expected: float
) -> None:
    got = pl.path_loss_db(scenario, d, fc, h_bs_m=h_bs, h_ut_m=h_ut, los=los)
    assert got.dtype == np.float64
    assert got.shape == ()
    assert float(got) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    ("scenario", "d", "expected"),
    [("uma", 100.0, 0.3477), ("umi", 100.0, 0.2310), ("inh", 10.0, 0.2874)],
)
def test_los_probability_matches_reference_vectors(
    scenario: str, d: float, expected: float
) -> None:
    assert float(pl.los_probability(scenario, d, h_ut_m=1.5)) == pytest.approx(expected, abs=1e-4)


def test_vectorized_call_matches_the_scalar_vectors() -> None:
    uma = [v for v in PATH_LOSS_VECTORS if v[0] == "uma"]
    d = np.array([v[1] for v in uma])
    los = np.array([v[5] for v in uma])
    got = pl.path_loss_db("uma", d, 3.5, h_bs_m=25.0, h_ut_m=1.5, los=los)
    np.testing.assert_allclose(got, [v[6] for v in uma], atol=0.01)


@pytest.mark.parametrize("scenario", pl.SCENARIOS)
def test_los_probability_limits(scenario: str) -> None:
    d_lo, d_hi = (1.0, 150.0) if scenario == "inh" else (10.0, 5000.0)
    d = np.linspace(d_lo, d_hi, 20_001)
    p = pl.los_probability(scenario, d, h_ut_m=1.5)
    assert np.all((p >= 0.0) & (p <= 1.0))
    assert np.all(np.diff(p) <= 1e-12)  # non-increasing with distance
    near = d <= (1.2 if scenario == "inh" else 18.0)
    np.testing.assert_array_equal(p[near], 1.0)
    assert p[-1] < (0.01 if scenario == "inh" else 0.005)


def test_umi_los_probability_tends_to_zero() -> None:
    p = pl.los_probability("umi", [1000.0, 5000.0], h_ut_m=1.5)
    np.testing.assert_allclose(p, [0.018, 0.0036], atol=1e-3)  # ~18/d far away


def test_uma_tall_ut_raises_los_probability_and_stays_a_probability() -> None:
    d = np.linspace(10.0, 5000.0, 50_001)
    short = pl.los_probability("uma", d, h_ut_m=1.5)
    tall = pl.los_probability("uma", d, h_ut_m=np.array([[13.0], [17.0], [22.5]]))
    assert tall.shape == (3, d.size)
    np.testing.assert_allclose(tall[0], short)  # C'(13 m) = 0
    assert np.all(tall[2] >= tall[1]) and np.all(tall[1] >= short)
    assert np.all((tall >= 0.0) & (tall <= 1.0))  # raw formula exceeds 1 just past 18 m
    assert np.all(tall[:, d <= 18.0] == 1.0)
    i = int(np.searchsorted(d, 100.0))  # the UMa factor with C'(22.5 m) = 0.95^1.5
    boost = 1.0 + 0.95**1.5 * 1.25 * (d[i] / 100.0) ** 3 * np.exp(-d[i] / 150.0)
    assert tall[2, i] == pytest.approx(short[i] * boost, rel=1e-12)


@pytest.mark.parametrize("scenario", pl.SCENARIOS)
@pytest.mark.parametrize("fc", [0.5, 3.5, 28.0, 100.0])
def test_nlos_is_never_below_los(scenario: str, fc: float) -> None:
    h_bs, h_ut, _ = STANDARD[scenario]
    d = np.geomspace(1.0, 150.0, 2000) if scenario == "inh" else np.geomspace(10.0, 5000.0, 2000)
    for h in [h_ut] if scenario == "inh" else [1.5, 10.0, 22.5]:
        los = pl.path_loss_db(scenario, d, fc, h_bs_m=h_bs, h_ut_m=h, los=True)
        nlos = pl.path_loss_db(scenario, d, fc, h_bs_m=h_bs, h_ut_m=h, los=False)
        assert np.all(nlos >= los)
        assert np.all(np.diff(los) > 0.0)  # path loss grows with distance


@pytest.mark.parametrize(("scenario", "h_bs"), [("uma", 25.0), ("umi", 10.0)])
@pytest.mark.parametrize("fc", [0.9, 3.5, 6.0])
def test_los_path_loss_is_continuous_at_the_breakpoint(
    scenario: str, h_bs: float, fc: float
) -> None:
    h_ut = 1.5
    d_bp = 4 * (h_bs - 1.0) * (h_ut - 1.0) * fc * 1e9 / 3.0e8
    assert 10.0 < d_bp < 5000.0
    eps = 1e-6
    below, at, above = pl.path_loss_db(
        scenario, [d_bp - eps, d_bp, d_bp + eps], fc, h_bs_m=h_bs, h_ut_m=h_ut, los=True
    )
    assert abs(above - below) < 1e-6 and abs(at - below) < 1e-6
    # slopes: 22 (UMa) / 21 (UMi) dB per decade before, 40 after (far from the height term)
    if 20 * d_bp <= 5000.0:  # 40 dB per decade beyond the breakpoint
        far = pl.path_loss_db(
            scenario, [2 * d_bp, 20 * d_bp], fc, h_bs_m=h_bs, h_ut_m=h_ut, los=True
        )
        assert far[1] - far[0] == pytest.approx(40.0, abs=0.1)


def test_broadcasting_shapes() -> None:
    d = np.linspace(20.0, 900.0, 6).reshape(2, 3)
    fc = np.array([[0.9], [3.5]])
    out = pl.path_loss_db("uma", d, fc, h_bs_m=25.0, h_ut_m=1.5, los=np.array([True, False, True]))
    assert out.shape == (2, 3) and out.dtype == np.float64
    expected = [
        pl.path_loss_db("uma", d[i, j], fc[i, 0], h_bs_m=25.0, h_ut_m=1.5, los=bool(j != 1))
        for i in range(2)
        for j in range(3)
    ]
    np.testing.assert_allclose(out.ravel(), expected)
    # a scalar distance with an array of LOS states: the output takes the LOS shape
    both = pl.path_loss_db("umi", 300.0, 28.0, h_bs_m=10.0, h_ut_m=1.5, los=np.array([True] * 4))
    assert both.shape == (4,) and both.flags.writeable
    assert pl.los_probability("uma", d, h_ut_m=np.full((4, 1, 1), 1.5)).shape == (4, 2, 3)
    assert pl.shadow_fading_std_db("umi", np.zeros((2, 5), dtype=bool)).shape == (2, 5)
    heights = np.array([1.5, 10.0, 22.5])  # array heights with a scalar distance
    by_height = pl.path_loss_db("uma", 800.0, 3.5, h_bs_m=25.0, h_ut_m=heights, los=False)
    assert by_height.shape == (3,)
    for h, value in zip(heights, by_height, strict=True):
        assert value == pl.path_loss_db("uma", 800.0, 3.5, h_bs_m=25.0, h_ut_m=h, los=False)
    sampled, los = pl.sample_path_loss_db(
        np.random.default_rng(0),
        "umi",
        np.array([20.0, 200.0, 900.0]),
        np.array([[0.9], [28.0]]),
        h_bs_m=10.0,
        h_ut_m=1.5,
        indoor=np.array([True, False, True]),
    )
    assert sampled.shape == los.shape == (2, 3) and np.all(np.isfinite(sampled))
    with pytest.raises(ValueError, match="do not broadcast"):
        pl.path_loss_db("uma", np.ones(3) * 50, 3.5, h_bs_m=25.0, h_ut_m=np.ones(4) * 1.5, los=True)


def test_range_errors_name_parameter_values_and_range() -> None:
    with pytest.raises(ValueError, match=r"d_2d_m must be within \[10, 5000\] m.*from 5 to 6000"):
        pl.path_loss_db("uma", [5.0, 100.0, 6000.0], 3.5, h_bs_m=25.0, h_ut_m=1.5, los=True)
    with pytest.raises(ValueError, match=r"fc_ghz must be within \[0.5, 100\] GHz.*140"):
        pl.path_loss_db("umi", 100.0, 140.0, h_bs_m=10.0, h_ut_m=1.5, los=True)
    with pytest.raises(ValueError, match=r"h_ut_m must be within \[1.5, 22.5\] m.*from 1 to 1"):
        pl.path_loss_db("uma", 100.0, 3.5, h_bs_m=25.0, h_ut_m=1.0, los=True)
    with pytest.raises(ValueError, match=r"d_3d_m.*\[1, 150\] m.*200"):
        pl.path_loss_db("inh", 200.0, 3.5, h_bs_m=3.0, h_ut_m=1.0, los=True)
    with pytest.raises(ValueError, match=r"h_bs_m"):
        pl.path_loss_db("uma", 100.0, 3.5, h_bs_m=0.5, h_ut_m=1.5, los=True)
    with pytest.raises(ValueError, match="d_2d_m contains NaN"):
        pl.los_probability("umi", [np.nan, 50.0], h_ut_m=1.5)
    with pytest.raises(ValueError, match=r"d_2d_m must be within.*pass clamp=True"):
        pl.los_probability("uma", 1.0, h_ut_m=1.5)
    with pytest.raises(ValueError, match="unknown scenario 'rma'; allowed: uma, umi, inh"):
        pl.path_loss_db("rma", 100.0, 3.5, h_bs_m=35.0, h_ut_m=1.5, los=True)
    with pytest.raises(ValueError, match="unknown scenario"):
        pl.shadow_fading_std_db("UMa", True)
    with pytest.raises(TypeError, match="los must be a boolean array"):
        pl.path_loss_db("uma", 100.0, 3.5, h_bs_m=25.0, h_ut_m=1.5, los=np.array([0.3]))


def test_clamp_clips_geometry_but_never_frequency() -> None:
    los = np.array([True, False])
    got = pl.path_loss_db(
        "uma", [1.0, 9000.0], 3.5, h_bs_m=25.0, h_ut_m=[1.0, 30.0], los=los, clamp=True
    )
    want = pl.path_loss_db("uma", [10.0, 5000.0], 3.5, h_bs_m=25.0, h_ut_m=[1.5, 22.5], los=los)
    np.testing.assert_allclose(got, want)
    assert float(pl.los_probability("inh", 0.1, h_ut_m=1.0, clamp=True)) == 1.0
    with pytest.raises(ValueError, match="fc_ghz"):
        pl.path_loss_db("uma", 100.0, 0.1, h_ut_m=1.5, clamp=True, h_bs_m=25.0, los=True)


def test_shadow_fading_std_table() -> None:
    los = np.array([True, False])
    np.testing.assert_array_equal(pl.shadow_fading_std_db("uma", los), [4.0, 6.0])
    np.testing.assert_array_equal(pl.shadow_fading_std_db("umi", los), [4.0, 7.82])
    np.testing.assert_array_equal(pl.shadow_fading_std_db("inh", los), [3.0, 8.03])


def test_o2i_low_loss_model() -> None:
    # fc = 3.5 GHz: L_glass = 2.7 dB, L_concrete = 19 dB
    pl_tw = 5.0 - 10.0 * np.log10(0.3 * 10 ** (-0.27) + 0.7 * 10 ** (-1.9))
    got = pl.o2i_penetration_loss_db(3.5, np.array([0.0, 10.0]))
    np.testing.assert_allclose(got, [pl_tw, pl_tw + 5.0])
    assert pl_tw == pytest.approx(12.70, abs=0.005)  # hand-computed: 5 + 7.70 dB
    assert np.all(np.diff(pl.o2i_penetration_loss_db(np.array([0.5, 3.5, 28.0, 100.0]), 0.0)) > 0)
    assert pl.O2I_SIGMA_P_DB == 4.4
    with pytest.raises(ValueError, match="d_2d_in_m"):
        pl.o2i_penetration_loss_db(3.5, -1.0)


def test_sampled_shadowing_and_los_statistics() -> None:
    rng = np.random.default_rng(2024)
    n = 100_000
    d = np.full(n, 100.0)
    pl_db, los = pl.sample_path_loss_db(
        rng, "uma", d, 3.5, h_bs_m=25.0, h_ut_m=1.5, indoor=np.zeros(n, dtype=bool)
    )
    assert pl_db.dtype == np.float64 and los.dtype == np.bool_ and pl_db.shape == (n,)
    p = float(pl.los_probability("uma", 100.0, h_ut_m=1.5))
    assert los.mean() == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n))
    excess = pl_db - pl.path_loss_db("uma", d, 3.5, h_bs_m=25.0, h_ut_m=1.5, los=los)
    for state, sigma in ((True, 4.0), (False, 6.0)):
        x = excess[los == state]
        assert abs(x.mean()) < 4 * sigma / np.sqrt(x.size)
        assert x.std() == pytest.approx(sigma, rel=0.02)


def test_sampled_indoor_devices_add_penetration_loss() -> None:
    rng = np.random.default_rng(7)
    n = 100_000
    indoor = np.arange(n) % 2 == 0
    pl_db, los = pl.sample_path_loss_db(
        rng, "umi", 150.0, 3.5, h_bs_m=10.0, h_ut_m=1.5, indoor=indoor
    )
    excess = pl_db - pl.path_loss_db("umi", 150.0, 3.5, h_bs_m=10.0, h_ut_m=1.5, los=los)
    out, inside = excess[~indoor], excess[indoor]
    # d_in = min of two U[0, 25] draws: mean 25/3 m -> 0.5 dB/m adds 4.17 dB on average
    mean_o2i = float(pl.o2i_penetration_loss_db(3.5, 25.0 / 3.0))
    assert inside.mean() - out.mean() == pytest.approx(mean_o2i, abs=0.15)
    var_din = 0.25 * 25.0**2 / 18.0  # 0.5^2 x Var(min of two U[0, 25]) = 0.25 x 25^2/18
    sf_var = np.where(los[indoor], 16.0, 7.82**2).mean()
    assert inside.var() == pytest.approx(sf_var + 4.4**2 + var_din, rel=0.03)


def test_sampling_clamps_close_devices_and_is_reproducible() -> None:
    def draw(d: npt.ArrayLike, clamp: bool = False) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        return pl.sample_path_loss_db(
            np.random.default_rng(3),
            "uma",
            d,
            3.5,
            h_bs_m=25.0,
            h_ut_m=1.5,
            indoor=False,
            clamp=clamp,
        )

    a, los_a = draw([0.0, 5.0, 10.0])
    b, _ = draw([10.0] * 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(los_a, [True] * 3)  # P_LOS = 1 at 10 m
    with pytest.raises(ValueError, match=r"d_2d_m must be within.*6000"):
        draw(6000.0)
    far, _ = draw(6000.0, clamp=True)
    assert far.shape == ()
    with pytest.raises(ValueError, match="'uma' and 'umi' only"):
        pl.sample_path_loss_db(
            np.random.default_rng(0), "inh", 5.0, 3.5, h_bs_m=3.0, h_ut_m=1.0, indoor=True
        )


def test_large_arrays_are_fast() -> None:
    import time

    rng = np.random.default_rng(0)
    n = 1_000_000
    d = rng.uniform(10.0, 2000.0, n)
    t0 = time.perf_counter()
    pl.path_loss_db("uma", d, 3.5, h_bs_m=25.0, h_ut_m=1.5, los=rng.random(n) < 0.5)
    pl.sample_path_loss_db(rng, "uma", d, 3.5, h_bs_m=25.0, h_ut_m=1.5, indoor=rng.random(n) < 0.2)
    assert time.perf_counter() - t0 < 1.0  # measured ~0.1 s; generous for shared CI machines
