"""Spectral efficiency from SNR: the 3GPP TS 38.214 CQI tables and the truncated Shannon bound.

Sources:

- truncated, attenuated Shannon bound, alpha = 0.6, SNR_min = -10 dB: 3GPP TR 36.942 Annex A
  (the link-level performance model of LTE system simulations);
- CQI tables: 3GPP TS 38.214 Table 5.2.2.1-2 ("64qam", CQI table 1) and Table 5.2.2.1-3
  ("256qam", CQI table 2): modulation, target code rate x 1024, efficiency (b/s/Hz). A CQI of
  these tables is the highest one received with transport-block error probability <= 0.1
  (TS 38.214 clause 5.2.2.1), hence `CQI_TARGET_BLER`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinylarge.net.validation import floats as _floats

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
CqiTableName = Literal["64qam", "256qam"]
SeMethod = Literal["cqi", "shannon"]

#: Attenuation of the Shannon bound, 3GPP TR 36.942 Annex A.
SHANNON_ALPHA = 0.6
#: SNR below which the TR 36.942 Annex A abstraction gives no throughput, dB.
SHANNON_SNR_MIN_DB = -10.0
#: First-transmission BLER that CQI tables 1 and 2 target (TS 38.214 clause 5.2.2.1).
CQI_TARGET_BLER = 0.1


class CqiTable(NamedTuple):
    """One 4-bit CQI table; entry ``k`` describes CQI index ``k + 1`` (CQI 0 = out of range)."""

    modulation: tuple[str, ...]
    code_rate_x1024: tuple[int, ...]
    efficiency: tuple[float, ...]  # b/s/Hz


# CQI index, modulation, code rate x 1024, efficiency (b/s/Hz): rows of TS 38.214
# Table 5.2.2.1-2 (left, "64qam") and Table 5.2.2.1-3 (right, "256qam").
_CQI_ROWS = """
 1  QPSK    78  0.1523   QPSK    78  0.1523
 2  QPSK   120  0.2344   QPSK   193  0.3770
 3  QPSK   193  0.3770   QPSK   449  0.8770
 4  QPSK   308  0.6016   16QAM  378  1.4766
 5  QPSK   449  0.8770   16QAM  490  1.9141
 6  QPSK   602  1.1758   16QAM  616  2.4063
 7  16QAM  378  1.4766   64QAM  466  2.7305
 8  16QAM  490  1.9141   64QAM  567  3.3223
 9  16QAM  616  2.4063   64QAM  666  3.9023
10  64QAM  466  2.7305   64QAM  772  4.5234
11  64QAM  567  3.3223   64QAM  873  5.1152
12  64QAM  666  3.9023   256QAM 711  5.5547
13  64QAM  772  4.5234   256QAM 797  6.2266
14  64QAM  873  5.1152   256QAM 885  6.9141
15  64QAM  948  5.5547   256QAM 948  7.4063
"""


def _parse_cqi_rows(column: int) -> CqiTable:
    rows = [
        line.split()[1 + 3 * column : 4 + 3 * column] for line in _CQI_ROWS.strip().splitlines()
    ]
    return CqiTable(
        modulation=tuple(r[0] for r in rows),
        code_rate_x1024=tuple(int(r[1]) for r in rows),
        efficiency=tuple(float(r[2]) for r in rows),
    )


#: TS 38.214 CQI tables by name (read-only): "64qam" = Table 5.2.2.1-2, "256qam" = 5.2.2.1-3.
CQI_TABLES: Mapping[str, CqiTable] = MappingProxyType(
    {"64qam": _parse_cqi_rows(0), "256qam": _parse_cqi_rows(1)}
)


def _cqi_table(name: str) -> CqiTable:
    if name not in CQI_TABLES:
        raise ValueError(f"unknown cqi_table {name!r}; allowed: {', '.join(sorted(CQI_TABLES))}")
    return CQI_TABLES[name]


def cqi_snr_thresholds_db(
    cqi_table: CqiTableName = "256qam", *, alpha: float = SHANNON_ALPHA
) -> FloatArray:
    """SNR at which each CQI (1..15) becomes usable, dB, shape (15,), ascending.

    3GPP does not standardise SNR thresholds for CQIs (they depend on the receiver). The common
    approximation used here puts CQI k's threshold where the attenuated Shannon bound of
    TR 36.942 Annex A reaches its efficiency: alpha log2(1 + SNR_k) = eff_k, i.e.
    SNR_k = 2^(eff_k / alpha) - 1. With alpha = 0.6, CQI 1 starts at -7.16 dB.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    eff = np.asarray(_cqi_table(cqi_table).efficiency, dtype=np.float64)
    return np.asarray(10.0 * np.log10(np.exp2(eff / alpha) - 1.0))


def cqi_index(
    snr_db: ArrayLike,
    cqi_table: CqiTableName = "256qam",
    *,
    alpha: float = SHANNON_ALPHA,
    max_spectral_efficiency: float = math.inf,
) -> IntArray:
    """Highest CQI whose threshold (`cqi_snr_thresholds_db`) the SNR meets; 0 if none.

    Parameters
    ----------
    snr_db : array_like of float, shape (...)
        SNR, dB (-inf allowed).
    cqi_table : {"256qam", "64qam"}
        TS 38.214 Table 5.2.2.1-3 or Table 5.2.2.1-2.
    alpha : float
        Shannon attenuation the thresholds are derived with.
    max_spectral_efficiency : float
        Only CQIs with efficiency <= this (b/s/Hz, the device's capability) are eligible.

    Returns
    -------
    ndarray of int64, shape (...)
        CQI index, 0..15 (0 = out of range).
    """
    snr = _floats("snr_db", snr_db)
    if not max_spectral_efficiency > 0:
        raise ValueError(f"max_spectral_efficiency must be > 0, got {max_spectral_efficiency}")
    usable = np.count_nonzero(
        np.asarray(_cqi_table(cqi_table).efficiency) <= max_spectral_efficiency
    )
    thresholds = cqi_snr_thresholds_db(cqi_table, alpha=alpha)[:usable]
    return np.searchsorted(thresholds, snr, side="right").astype(np.int64)


def spectral_efficiency(
    snr_db: ArrayLike,
    *,
    method: SeMethod,
    cqi_table: CqiTableName = "256qam",
    max_spectral_efficiency: float,
    alpha: float = SHANNON_ALPHA,
    snr_min_db: float = SHANNON_SNR_MIN_DB,
    max_repetitions: int = 1,
) -> FloatArray:
    """Spectral efficiency achieved at an SNR, b/s/Hz.

    ``"shannon"``: TR 36.942 Annex A: 0 below ``snr_min_db``, else alpha log2(1 + SNR) capped
    at ``max_spectral_efficiency``.

    ``"cqi"``: the TS 38.214 table efficiency of `cqi_index` (CQIs above
    ``max_spectral_efficiency`` unused), 0 below CQI 1. With ``max_repetitions`` > 1 an SNR
    below CQI 1's threshold is served by CQI 1 sent R times, R the smallest power of two (up to
    ``max_repetitions``) whose ideal combining gain 10 log10(R) closes the gap, at efficiency
    eff_1 / R: the coverage-enhancement repetitions of NB-IoT, LTE-M and NR. Both methods give
    0 below ``snr_min_db``.

    Parameters
    ----------
    snr_db : array_like of float, shape (...)
        SNR, dB (-inf allowed).
    method : {"cqi", "shannon"}
    cqi_table : {"256qam", "64qam"}
    max_spectral_efficiency : float
        Device/profile cap, b/s/Hz (> 0).
    alpha : float
        Shannon attenuation (TR 36.942: 0.6); also sets the CQI thresholds.
    snr_min_db : float
        Below this SNR the efficiency is 0, dB (TR 36.942: -10 dB).
    max_repetitions : int
        Largest repetition factor, a power of two (1 = none). Used by ``"cqi"`` only.

    Returns
    -------
    ndarray of float64, shape (...)
        b/s/Hz, in [0, max_spectral_efficiency], non-decreasing in SNR.
    """
    snr = _floats("snr_db", snr_db)
    if not isinstance(max_repetitions, int | np.integer) or (
        max_repetitions < 1 or max_repetitions & (max_repetitions - 1)
    ):
        raise ValueError(f"max_repetitions must be a power of two >= 1, got {max_repetitions}")
    if method == "cqi":
        index = cqi_index(
            snr, cqi_table, alpha=alpha, max_spectral_efficiency=max_spectral_efficiency
        )
        table_eff = np.concatenate(([0.0], _cqi_table(cqi_table).efficiency))
        se = table_eff[index]
        if max_repetitions > 1 and table_eff[1] <= max_spectral_efficiency:
            gap_db = cqi_snr_thresholds_db(cqi_table, alpha=alpha)[0] - snr
            # log2 of the linear gap; the 1e-9 keeps float rounding from doubling R at a boundary
            reps = np.exp2(np.ceil(gap_db / (10.0 * math.log10(2.0)) - 1e-9))
            served = (index == 0) & (reps <= max_repetitions)
            se = np.where(served, table_eff[1] / np.where(served, reps, 1.0), se)
    elif method == "shannon":
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if not max_spectral_efficiency > 0:
            raise ValueError(f"max_spectral_efficiency must be > 0, got {max_spectral_efficiency}")
        with np.errstate(over="ignore"):
            se = alpha * np.log2(1.0 + np.power(10.0, snr / 10.0))
        se = np.minimum(se, max_spectral_efficiency)
    else:
        raise ValueError(f"unknown method {method!r}; allowed: 'cqi', 'shannon'")
    return np.asarray(np.where(snr >= snr_min_db, se, 0.0), dtype=np.float64)
