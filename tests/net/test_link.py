"""Link abstraction: CQI tables, SNR -> efficiency -> rate, sharing, PF, HARQ, airtime."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
from scipy import stats

from tinylarge.net.link import (
    CQI_TABLES,
    CqiTableName,
    SeMethod,
    airtime_s,
    cqi_index,
    cqi_snr_thresholds_db,
    equal_share,
    expected_transmissions,
    harq_transmissions,
    outage,
    proportional_fair_rate_bps,
    rate_bps,
    snr_db,
    spectral_efficiency,
    thermal_noise_dbm,
)

# TS 38.214 Table 5.2.2.1-2 (CQI table 1) and Table 5.2.2.1-3 (CQI table 2), typed from the spec.
TABLE_1 = [
    ("QPSK", 78, 0.1523), ("QPSK", 120, 0.2344), ("QPSK", 193, 0.3770), ("QPSK", 308, 0.6016),
    ("QPSK", 449, 0.8770), ("QPSK", 602, 1.1758), ("16QAM", 378, 1.4766),
    ("16QAM", 490, 1.9141), ("16QAM", 616, 2.4063), ("64QAM", 466, 2.7305),
    ("64QAM", 567, 3.3223), ("64QAM", 666, 3.9023), ("64QAM", 772, 4.5234),
    ("64QAM", 873, 5.1152), ("64QAM", 948, 5.5547),
]  # fmt: skip
TABLE_2 = [
    ("QPSK", 78, 0.1523), ("QPSK", 193, 0.3770), ("QPSK", 449, 0.8770), ("16QAM", 378, 1.4766),
    ("16QAM", 490, 1.9141), ("16QAM", 616, 2.4063), ("64QAM", 466, 2.7305),
    ("64QAM", 567, 3.3223), ("64QAM", 666, 3.9023), ("64QAM", 772, 4.5234),
    ("64QAM", 873, 5.1152), ("256QAM", 711, 5.5547), ("256QAM", 797, 6.2266),
    ("256QAM", 885, 6.9141), ("256QAM", 948, 7.4063),
]  # fmt: skip
BITS_PER_SYMBOL = {"QPSK": 2, "16QAM": 4, "64QAM": 6, "256QAM": 8}
SNR_GRID_DB = np.linspace(-40.0, 60.0, 4001)


@pytest.mark.parametrize(("name", "rows"), [("64qam", TABLE_1), ("256qam", TABLE_2)])
def test_cqi_tables_equal_ts38214(name: str, rows: list[tuple[str, int, float]]) -> None:
    table = CQI_TABLES[name]
    assert list(zip(table.modulation, table.code_rate_x1024, table.efficiency, strict=True)) == rows
    for modulation, rate_x1024, efficiency in rows:  # efficiency = Qm x R, to 4 decimals
        assert abs(BITS_PER_SYMBOL[modulation] * rate_x1024 / 1024 - efficiency) <= 5e-5 + 1e-12


@pytest.mark.parametrize("table", ["64qam", "256qam"])
def test_cqi_at_its_threshold_gives_table_efficiency(table: CqiTableName) -> None:
    thresholds = cqi_snr_thresholds_db(table)
    assert np.all(np.diff(thresholds) > 0)
    # the threshold is where the attenuated Shannon bound reaches the CQI's efficiency
    shannon = spectral_efficiency(thresholds, method="shannon", max_spectral_efficiency=99.0)
    np.testing.assert_allclose(shannon, CQI_TABLES[table].efficiency, rtol=1e-12)
    np.testing.assert_array_equal(cqi_index(thresholds, table), np.arange(1, 16))
    np.testing.assert_array_equal(cqi_index(thresholds - 1e-9, table), np.arange(0, 15))
    se = spectral_efficiency(thresholds, method="cqi", cqi_table=table, max_spectral_efficiency=9)
    np.testing.assert_array_equal(se, CQI_TABLES[table].efficiency)
    assert cqi_snr_thresholds_db(table)[0] == pytest.approx(-7.1586, abs=1e-4)


def test_cqi_below_cqi1_is_zero_and_cap_excludes_higher_cqis() -> None:
    assert spectral_efficiency(-8.0, method="cqi", max_spectral_efficiency=9.0) == 0.0
    assert cqi_index(-8.0, "256qam") == 0
    top = spectral_efficiency(60.0, method="cqi", cqi_table="64qam", max_spectral_efficiency=1.0)
    assert top == 0.8770  # CQI 5, the last one <= 1.0 b/s/Hz
    assert cqi_index(60.0, "64qam", max_spectral_efficiency=1.0) == 5


@pytest.mark.parametrize("method", ["cqi", "shannon"])
@pytest.mark.parametrize(
    ("table", "max_se"), [("64qam", 5.5547), ("256qam", 7.4063), ("256qam", 3.0)]
)
def test_rate_monotone_in_snr_and_capped(
    method: SeMethod, table: CqiTableName, max_se: float
) -> None:
    se = spectral_efficiency(
        SNR_GRID_DB,
        method=method,
        cqi_table=table,
        max_spectral_efficiency=max_se,
        max_repetitions=8,
    )
    bandwidth_hz = 20e6
    rate = rate_bps(1.0, bandwidth_hz, se)
    assert np.all(np.diff(rate) >= 0)
    assert rate.max() <= max_se * bandwidth_hz
    assert rate.max() == pytest.approx(
        max_se * bandwidth_hz
        if method == "shannon" or max_se in (5.5547, 7.4063)
        else 2.7305 * 20e6
    )
    assert np.all(se[SNR_GRID_DB < -10.0] == 0.0)


def test_shannon_at_hand_computed_points() -> None:
    # 10 dB: 0.6 log2(1 + 10) = 0.6 x 3.4594316186 = 2.0756589712
    se = spectral_efficiency(
        [10.0, -10.0, -10.01, 40.0], method="shannon", max_spectral_efficiency=4.4
    )
    np.testing.assert_allclose(se, [2.0756589712, 0.6 * math.log2(1.1), 0.0, 4.4], rtol=1e-10)


def test_repetitions_extend_cqi1_below_its_threshold() -> None:
    thr1 = cqi_snr_thresholds_db("256qam")[0]
    snr = np.array([thr1 - 2.0, thr1 - 5.0, thr1 - 20.0])
    se = spectral_efficiency(
        snr, method="cqi", max_spectral_efficiency=9.0, max_repetitions=4, snr_min_db=-30.0
    )
    np.testing.assert_allclose(se, [0.1523 / 2, 0.1523 / 4, 0.0])
    no_reps = spectral_efficiency(snr, method="cqi", max_spectral_efficiency=9.0, snr_min_db=-30.0)
    np.testing.assert_array_equal(no_reps, 0.0)
    floor = spectral_efficiency(
        thr1 - 2.0,
        method="cqi",
        max_spectral_efficiency=9.0,
        max_repetitions=4,
        snr_min_db=thr1 - 1,
    )
    assert floor == 0.0  # snr_min_db still applies
    exact = spectral_efficiency(
        thr1 - 10 * math.log10(8),
        method="cqi",
        max_spectral_efficiency=9.0,
        max_repetitions=8,
        snr_min_db=-30.0,
    )
    assert exact == 0.1523 / 8  # a gap of exactly 8x needs 8 repetitions, not 16
    capped = spectral_efficiency(
        thr1 - 2.0, method="cqi", max_spectral_efficiency=0.1, max_repetitions=4
    )
    assert capped == 0.0  # CQI 1 itself is above the cap: nothing to repeat


def test_thermal_noise_and_snr() -> None:
    assert thermal_noise_dbm(1.0, 0.0) == -174.0
    assert thermal_noise_dbm(20e6, 5.0) == pytest.approx(-174.0 + 73.0103 + 5.0, abs=1e-4)
    np.testing.assert_allclose(thermal_noise_dbm([1e6, 1e8], [0.0, 7.0]), [-114.0, -87.0])
    noise = -174.0 + 10 * math.log10(180e3) + 5.0  # -116.447 dBm
    got = snr_db(
        23.0,
        [130.0, 130.0],
        tx_gain_dbi=0.0,
        rx_gain_dbi=15.0,
        noise_dbm=noise,
        fading_power_gain=[1.0, 0.5],
    )
    np.testing.assert_allclose(
        got, [23 + 15 - 130 - noise, 23 + 15 - 130 - noise - 3.0103], atol=1e-4
    )
    assert (
        snr_db(23.0, 100.0, tx_gain_dbi=0, rx_gain_dbi=0, noise_dbm=-100, fading_power_gain=0.0)
        == -np.inf
    )


def test_equal_share_sums_to_one_per_cell() -> None:
    rng = np.random.default_rng(3)
    cell = rng.integers(0, 50, size=10_000)
    active = rng.random(10_000) < 0.3
    share = equal_share(cell, active)
    assert np.all(share[~active] == 0.0)
    per_cell = np.bincount(cell, weights=share, minlength=50)
    has_active = np.bincount(cell[active], minlength=50) > 0
    np.testing.assert_allclose(per_cell[has_active], 1.0)
    assert np.all(per_cell[~has_active] == 0.0)
    np.testing.assert_array_equal(
        equal_share([0, 0, 2, 2, 2, 1], [True, True, True, False, True, False]),
        [0.5, 0.5, 0.5, 0, 0.5, 0],
    )
    assert equal_share(np.zeros(0, dtype=int), np.zeros(0, dtype=bool)).shape == (0,)


def _exact_pf_rate_cqi(
    mean_snr_db: float, n: int, bandwidth_hz: float, table: CqiTableName
) -> float:
    """B / n x E[SE(mean M_n)] for the CQI step function: sum of steps x P(M_n >= threshold)."""
    thresholds = 10 ** (cqi_snr_thresholds_db(table) / 10)
    steps = np.diff(np.concatenate(([0.0], CQI_TABLES[table].efficiency)))
    x = thresholds / 10 ** (mean_snr_db / 10)
    return bandwidth_hz / n * float(np.sum(steps * (1 - (1 - np.exp(-x)) ** n)))


def test_pf_matches_closed_form_for_cqi_within_the_quadrature_bound() -> None:
    fn = partial(
        spectral_efficiency,
        method="cqi",
        cqi_table="256qam",
        max_spectral_efficiency=7.4063,
        snr_min_db=-np.inf,
    )
    cell = np.array([0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    mean_snr = np.linspace(-5.0, 30.0, cell.size)
    n_q = 64
    rate = proportional_fair_rate_bps(
        mean_snr,
        cell,
        np.ones(cell.size, bool),
        bandwidth_hz=1e6,
        spectral_efficiency_fn=fn,
        n_quadrature=n_q,
    )
    n = np.bincount(cell)[cell]
    for r, s, k in zip(rate, mean_snr, n, strict=True):
        exact = _exact_pf_rate_cqi(float(s), int(k), 1e6, "256qam")
        assert abs(r - exact) <= 1e6 / k * 7.4063 / n_q
        assert r == pytest.approx(exact, rel=0.05)


def test_pf_linear_regime_gain_is_harmonic_number() -> None:
    def linear(snr: np.ndarray) -> np.ndarray:
        return np.asarray(10 ** (snr / 10))

    n = 8
    rate = proportional_fair_rate_bps(
        np.zeros(n),
        np.zeros(n, int),
        np.ones(n, bool),
        bandwidth_hz=1.0,
        spectral_efficiency_fn=linear,
        n_quadrature=4096,
    )
    harmonic = sum(1 / k for k in range(1, n + 1))
    np.testing.assert_allclose(rate, harmonic / n, rtol=0.01)


def test_pf_matches_per_slot_simulation_of_the_scheduler() -> None:
    rng = np.random.default_rng(7)
    mean_snr_db = np.array([-3.0, 5.0, 12.0, 20.0])
    fn = partial(spectral_efficiency, method="shannon", max_spectral_efficiency=7.4063)
    n_slots = 40_000
    normalised = rng.exponential(size=(n_slots, mean_snr_db.size))
    winner = normalised.argmax(axis=1)
    inst_snr = mean_snr_db[winner] + 10 * np.log10(normalised[np.arange(n_slots), winner])
    simulated = np.bincount(winner, weights=fn(inst_snr), minlength=4) / n_slots
    model = proportional_fair_rate_bps(
        mean_snr_db,
        np.zeros(4, int),
        np.ones(4, bool),
        bandwidth_hz=1.0,
        spectral_efficiency_fn=fn,
        n_quadrature=256,
    )
    np.testing.assert_allclose(model, simulated, rtol=0.03)


def test_pf_properties() -> None:
    fn = partial(spectral_efficiency, method="shannon", max_spectral_efficiency=7.4063)
    cell = np.array([0, 0, 0, 1, 1])
    active = np.array([True, True, False, True, False])
    snr = np.array([10.0, 10.0, 10.0, 10.0, 10.0])
    rate = proportional_fair_rate_bps(
        snr, cell, active, bandwidth_hz=1e6, spectral_efficiency_fn=fn
    )
    assert rate[2] == 0.0 and rate[4] == 0.0
    assert rate[0] == rate[1]
    # alone in its cell: the ergodic Rayleigh rate (no diversity gain); two users: more than half
    assert rate[0] > rate[3] / 2
    single = proportional_fair_rate_bps(
        snr[:1], cell[:1], active[:1], bandwidth_hz=1e6, spectral_efficiency_fn=fn
    )
    assert single[0] == rate[3]
    stronger = proportional_fair_rate_bps(
        np.array([10.0, 15.0]),
        np.zeros(2, int),
        np.ones(2, bool),
        bandwidth_hz=1e6,
        spectral_efficiency_fn=fn,
    )
    assert stronger[1] > stronger[0]


def _truncated_geometric_pmf(bler: float, m: int) -> np.ndarray:
    k = np.arange(1, m + 1)
    pmf = bler ** (k - 1) * (1 - bler)
    pmf[-1] = bler ** (m - 1)
    return pmf


@pytest.mark.parametrize(("bler", "m"), [(0.1, 4), (0.3, 3), (0.5, 8)])
def test_harq_transmissions_follow_truncated_geometric(bler: float, m: int) -> None:
    n = 100_000
    tx, delivered = harq_transmissions(np.random.default_rng(11), n, bler=bler, max_transmissions=m)
    assert tx.dtype == np.int64 and delivered.dtype == np.bool_ and tx.shape == (n,)
    pmf = _truncated_geometric_pmf(bler, m)
    k = np.arange(1, m + 1)
    mean = float(expected_transmissions(bler, m))
    assert mean == pytest.approx(float(np.sum(k * pmf)))
    std_error = math.sqrt(float(np.sum((k - mean) ** 2 * pmf)) / n)
    assert abs(tx.mean() - mean) < 5 * std_error
    counts = np.bincount(tx, minlength=m + 1)[1:]
    assert stats.chisquare(counts, n * pmf).pvalue > 1e-3
    loss = bler**m
    assert abs((~delivered).mean() - loss) < 5 * math.sqrt(loss * (1 - loss) / n) + 1e-12
    assert np.all(tx[~delivered] == m)


def test_harq_edge_cases_and_errors() -> None:
    rng = np.random.default_rng(0)
    tx, ok = harq_transmissions(rng, (3, 2), bler=0.0, max_transmissions=4)
    assert tx.shape == (3, 2) and np.all(tx == 1) and ok.all()
    tx, _ = harq_transmissions(rng, 3, bler=np.array([0.0, 0.0, 0.0]), max_transmissions=1)
    assert np.all(tx == 1)
    with pytest.raises(ValueError, match=r"bler must be in \[0, 1\)"):
        harq_transmissions(rng, 3, bler=1.0, max_transmissions=4)
    with pytest.raises(ValueError, match="max_transmissions must be an integer >= 1"):
        harq_transmissions(rng, 3, bler=0.1, max_transmissions=0)


def test_airtime_rounds_up_to_whole_slots() -> None:
    got = airtime_s([1000, 1001, 1, 0, 0, 500], [1e6, 1e6, 1e6, 1e6, 0.0, 0.0], 1e-3)
    np.testing.assert_array_equal(got, [1e-3, 2e-3, 1e-3, 0.0, 0.0, np.inf])
    rng = np.random.default_rng(5)  # exact multiples never gain a slot from float rounding
    n_slots = rng.integers(1, 1000, size=1000)
    rate = rng.uniform(1e3, 1e9, size=1000)
    slot = rng.choice([1e-3, 5e-4, 1.25e-4, 1.5625e-5], size=1000)
    np.testing.assert_allclose(
        airtime_s(n_slots * rate * slot, rate, slot) / slot, n_slots, rtol=1e-12
    )


def test_outage() -> None:
    np.testing.assert_array_equal(
        outage([-11.0, -10.0, 5.0, -np.inf], -10.0), [True, False, False, True]
    )


def test_errors_name_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="allowed: 'cqi', 'shannon'"):
        spectral_efficiency(0.0, method="exact", max_spectral_efficiency=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allowed: 256qam, 64qam"):
        cqi_index(0.0, "1024qam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="power of two"):
        spectral_efficiency(0.0, method="cqi", max_spectral_efficiency=1.0, max_repetitions=3)
    with pytest.raises(ValueError, match="snr_db must not contain NaN"):
        spectral_efficiency([np.nan], method="shannon", max_spectral_efficiency=1.0)
    with pytest.raises(ValueError, match="bandwidth_hz must be > 0"):
        thermal_noise_dbm(0.0, 5.0)
    with pytest.raises(ValueError, match="cell indices must be >= 0"):
        equal_share([-1, 0], [True, True])
    with pytest.raises(ValueError, match="active must be a boolean array of shape"):
        equal_share([0, 0], [1, 1])
    with pytest.raises(ValueError, match=r"share must be in \[0, 1\]"):
        rate_bps(1.5, 1e6, 1.0)
    with pytest.raises(ValueError, match="rate_bps must be >= 0"):
        airtime_s(100, -1.0, 1e-3)
