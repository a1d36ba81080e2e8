"""Link abstraction: SNR -> spectral efficiency -> rate, cell sharing, HARQ, airtime.

Every function is vectorized over devices or messages: NumPy arrays (or scalars) in, float64 /
int64 / bool arrays out, broadcast together. Units are in the names: dB, dBm, dBi, Hz, b/s,
b/s/Hz, s, bits.

Sources:

- thermal noise -174 dBm/Hz: Boltzmann's constant x 290 K (ITU-R P.372, "Radio noise"; the
  reference temperature of 3GPP link budgets, e.g. TR 38.901 and TR 36.942);
- spectral efficiency (CQI tables, truncated Shannon): `tinylarge.net.cqi`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Spectral efficiency lives in `tinylarge.net.cqi`; re-exported here as part of the link API.
from tinylarge.net.cqi import CQI_TABLES as CQI_TABLES
from tinylarge.net.cqi import CQI_TARGET_BLER as CQI_TARGET_BLER
from tinylarge.net.cqi import SHANNON_ALPHA as SHANNON_ALPHA
from tinylarge.net.cqi import SHANNON_SNR_MIN_DB as SHANNON_SNR_MIN_DB
from tinylarge.net.cqi import CqiTable as CqiTable
from tinylarge.net.cqi import CqiTableName as CqiTableName
from tinylarge.net.cqi import SeMethod as SeMethod
from tinylarge.net.cqi import cqi_index as cqi_index
from tinylarge.net.cqi import cqi_snr_thresholds_db as cqi_snr_thresholds_db
from tinylarge.net.cqi import spectral_efficiency as spectral_efficiency
from tinylarge.net.validation import floats as _floats

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Thermal noise density kT at 290 K, dBm/Hz (10 log10(1.380649e-23 x 290 x 1000)).
THERMAL_NOISE_DBM_PER_HZ = -174.0
#: Relative tolerance under which a bits / (rate x slot) ratio counts as a whole number of slots.
_SLOT_ROUNDING_RTOL = 1e-9


def thermal_noise_dbm(bandwidth_hz: ArrayLike, noise_figure_db: ArrayLike) -> FloatArray:
    """Receiver noise power, -174 dBm/Hz + 10 log10(B) + NF (kT B F at 290 K).

    Parameters
    ----------
    bandwidth_hz : array_like of float (> 0), shape (...)
        Noise bandwidth, Hz.
    noise_figure_db : array_like of float (>= 0), broadcastable
        Receiver noise figure, dB.

    Returns
    -------
    ndarray of float64, broadcast shape
        Noise power, dBm.
    """
    bandwidth = _floats("bandwidth_hz", bandwidth_hz, low=0.0, strict=True, finite=True)
    nf = _floats("noise_figure_db", noise_figure_db, low=0.0, finite=True)
    return np.asarray(THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(bandwidth) + nf)


def snr_db(
    tx_power_dbm: ArrayLike,
    path_loss_db: ArrayLike,
    *,
    tx_gain_dbi: ArrayLike,
    rx_gain_dbi: ArrayLike,
    noise_dbm: ArrayLike,
    fading_power_gain: ArrayLike = 1.0,
) -> FloatArray:
    """Link SNR: P_tx + G_tx + G_rx - PL - N + 10 log10(fading power gain), dB.

    Parameters
    ----------
    tx_power_dbm, path_loss_db, tx_gain_dbi, rx_gain_dbi, noise_dbm : array_like of float
        Transmit power (dBm), path loss incl. shadowing (dB), antenna gains (dBi) and receiver
        noise (dBm, `thermal_noise_dbm`); broadcast together, shape (...).
    fading_power_gain : array_like of float (>= 0), optional
        Small-scale fading power gain |h|^2, linear (mean 1 for Rayleigh); 0 gives -inf dB.

    Returns
    -------
    ndarray of float64, broadcast shape
        SNR, dB.
    """
    gain = _floats("fading_power_gain", fading_power_gain, low=0.0)
    tx = _floats("tx_power_dbm", tx_power_dbm, finite=True)
    pl = _floats("path_loss_db", path_loss_db, finite=True)
    gains = _floats("tx_gain_dbi", tx_gain_dbi, finite=True) + _floats(
        "rx_gain_dbi", rx_gain_dbi, finite=True
    )
    noise = _floats("noise_dbm", noise_dbm, finite=True)
    with np.errstate(divide="ignore"):
        fading_db = 10.0 * np.log10(gain)
    return np.asarray(tx + gains - pl - noise + fading_db)


def _active_counts(cell: ArrayLike, active: ArrayLike) -> tuple[IntArray, BoolArray, IntArray]:
    """Validated ``cell`` / ``active`` and the number of active devices of each device's cell."""
    cells, flags = np.asarray(cell), np.asarray(active)
    if cells.ndim != 1 or not np.issubdtype(cells.dtype, np.integer):
        raise ValueError(f"cell must be a 1-D integer array, got shape {cells.shape} {cells.dtype}")
    if flags.shape != cells.shape or flags.dtype != np.bool_:
        raise ValueError(f"active must be a boolean array of shape {cells.shape}")
    if cells.size == 0:
        return cells.astype(np.int64), flags, np.zeros(0, dtype=np.int64)
    if cells.min() < 0:
        raise ValueError("cell indices must be >= 0")
    counts = np.bincount(cells[flags], minlength=int(cells.max()) + 1)
    return cells.astype(np.int64), flags, counts[cells].astype(np.int64)


def equal_share(cell: ArrayLike, active: ArrayLike) -> FloatArray:
    """Fraction of its cell's bandwidth each device gets: 1 / (active devices in its cell).

    Parameters
    ----------
    cell : array_like of int (>= 0), shape (n,)
        Serving cell of each device.
    active : array_like of bool, shape (n,)
        Whether the device transmits in this slot.

    Returns
    -------
    ndarray of float64, shape (n,)
        Share in (0, 1] for active devices (summing to 1 in every cell with any), 0 otherwise.
    """
    cells, flags, n_active = _active_counts(cell, active)
    return np.divide(1.0, n_active, out=np.zeros(cells.shape), where=flags)


def proportional_fair_rate_bps(
    mean_snr_db: ArrayLike,
    cell: ArrayLike,
    active: ArrayLike,
    *,
    bandwidth_hz: float,
    spectral_efficiency_fn: Callable[[FloatArray], FloatArray],
    n_quadrature: int = 64,
) -> FloatArray:
    """Long-run throughput of each active device under proportional-fair scheduling, b/s.

    Model: the normalised-SNR (score-based) scheduler, the standard analytic model of PF (e.g.
    Choi & Bahk, IEEE Trans. Veh. Technol. 56(2), 2007); exact for that scheduler. Full-buffer
    devices, i.i.d. Rayleigh block fading across slots and devices; each slot the whole
    bandwidth goes to the cell's active device with the largest gamma_i(t) / mean_i (PF's
    argmax r_i(t) / R_i when rate is proportional to SNR; its usual analytic stand-in
    otherwise, and it gives every device the same time share). The normalised SNRs are i.i.d.
    Exp(1), so each of the n active devices gets exactly 1/n of the slots and, when scheduled,
    has SNR mean_i x M_n, M_n the maximum of n Exp(1) (CDF (1 - e^-x)^n). Hence
    rate_i = B / n x E[SE(mean_i M_n)]. For a linear SE this is B / n x SE(mean_i) x H_n with
    H_n = sum_{k=1..n} 1/k, the multi-user-diversity gain. The expectation is the midpoint rule
    over K quantiles of M_n, x_k = -ln(1 - ((k - 1/2) / K)^(1/n)); for a non-decreasing SE
    in [0, SE_max] its error is at most SE_max / K (b/s/Hz, before the 1/n share).

    Parameters
    ----------
    mean_snr_db : array_like of float, shape (n,)
        SNR without fast fading (path loss and shadowing only), dB.
    cell, active : array_like, shape (n,)
        As in `equal_share`.
    bandwidth_hz : float
        Cell bandwidth, Hz (> 0).
    spectral_efficiency_fn : callable
        Element-wise, non-decreasing map SNR (dB, any shape) -> b/s/Hz, e.g.
        ``functools.partial(spectral_efficiency, method="cqi", max_spectral_efficiency=...)``.
    n_quadrature : int
        Number of quantile nodes K (>= 1).

    Returns
    -------
    ndarray of float64, shape (n,)
        Throughput, b/s; 0 for inactive devices.
    """
    snr = _floats("mean_snr_db", mean_snr_db)
    cells, flags, n_active = _active_counts(cell, active)
    if snr.shape != cells.shape:
        raise ValueError(f"mean_snr_db must have the shape of cell {cells.shape}, got {snr.shape}")
    _floats("bandwidth_hz", bandwidth_hz, low=0.0, strict=True, finite=True)
    if n_quadrature < 1:
        raise ValueError(f"n_quadrature must be >= 1, got {n_quadrature}")
    rate = np.zeros(cells.shape)
    idx = np.flatnonzero(flags)
    u = (np.arange(n_quadrature) + 0.5) / n_quadrature
    chunk = max(1, 2**22 // n_quadrature)  # bounds each (devices x nodes) block to ~32 MB
    for start in range(0, idx.size, chunk):
        sel = idx[start : start + chunk]
        n = n_active[sel].astype(np.float64)[:, None]
        m_n = -np.log(-np.expm1(np.log(u)[None, :] / n))  # quantiles of M_n, accurate for big n
        se = np.asarray(spectral_efficiency_fn(snr[sel, None] + 10.0 * np.log10(m_n)))
        if se.shape != m_n.shape:
            raise ValueError("spectral_efficiency_fn must be element-wise (shape-preserving)")
        rate[sel] = bandwidth_hz / n[:, 0] * se.mean(axis=1)
    return rate


def rate_bps(
    share: ArrayLike, bandwidth_hz: ArrayLike, spectral_efficiency: ArrayLike
) -> FloatArray:
    """Bit rate: share x bandwidth x spectral efficiency, b/s.

    Parameters
    ----------
    share : array_like of float in [0, 1], shape (...)
        Fraction of the bandwidth (e.g. `equal_share`).
    bandwidth_hz : array_like of float (> 0), broadcastable
    spectral_efficiency : array_like of float (>= 0), broadcastable
        b/s/Hz.

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    s = _floats("share", share, low=0.0)
    if (s > 1).any():
        raise ValueError("share must be in [0, 1]")
    b = _floats("bandwidth_hz", bandwidth_hz, low=0.0, strict=True, finite=True)
    return np.asarray(
        s * b * _floats("spectral_efficiency", spectral_efficiency, low=0.0, finite=True)
    )


def _harq_bler(bler: ArrayLike, max_transmissions: int) -> FloatArray:
    b = _floats("bler", bler, low=0.0)
    if (b >= 1).any():
        raise ValueError("bler must be in [0, 1)")
    if int(max_transmissions) != max_transmissions or max_transmissions < 1:
        raise ValueError(f"max_transmissions must be an integer >= 1, got {max_transmissions}")
    return b


def harq_transmissions(
    rng: np.random.Generator,
    size: int | tuple[int, ...],
    *,
    bler: ArrayLike,
    max_transmissions: int,
) -> tuple[IntArray, BoolArray]:
    """Transmissions each message needs under HARQ, and whether it got through.

    Model: link adaptation picks the MCS for a target first-transmission BLER (CQI tables 1
    and 2 target 0.1, `CQI_TARGET_BLER`) and every attempt fails independently with that BLER
    (no combining gain: a conservative simplification). The attempt count is geometric,
    truncated at M = ``max_transmissions``: P(T = k) = bler^(k-1) (1 - bler) for k < M,
    P(T = M) = bler^(M-1); the message is lost when all M attempts fail (probability bler^M).

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int or tuple of int
        Output shape (messages).
    bler : array_like of float in [0, 1), broadcastable to ``size``
        Per-attempt block error rate.
    max_transmissions : int
        First transmission plus retransmissions, >= 1.

    Returns
    -------
    transmissions : ndarray of int64, shape ``size``
        Attempts made, 1..M.
    delivered : ndarray of bool, shape ``size``
        False if all M attempts failed.
    """
    b = _harq_bler(bler, max_transmissions)
    attempts_to_success = rng.geometric(1.0 - np.broadcast_to(b, size), size=size)
    transmissions = np.minimum(attempts_to_success, max_transmissions).astype(np.int64)
    return transmissions, np.asarray(attempts_to_success <= max_transmissions)


def expected_transmissions(bler: ArrayLike, max_transmissions: int) -> FloatArray:
    """Mean attempt count of `harq_transmissions`, (1 - bler^M) / (1 - bler); shape of bler."""
    b = _harq_bler(bler, max_transmissions)
    return np.asarray((1.0 - b**max_transmissions) / (1.0 - b))


def outage(snr_db: ArrayLike, min_snr_db: ArrayLike) -> BoolArray:
    """True where the SNR (dB) is below the outage threshold (dB, e.g. a profile's min_snr_db).

    Both arguments broadcast together; the result has the broadcast shape.
    """
    return np.asarray(_floats("snr_db", snr_db) < _floats("min_snr_db", min_snr_db))


def airtime_s(bits: ArrayLike, rate_bps: ArrayLike, slot_s: ArrayLike) -> FloatArray:
    """Time on air to send ``bits`` at ``rate_bps``, rounded up to whole slots, s.

    A ratio bits / (rate x slot) within a relative 1e-9 of a whole number counts as that number
    (float rounding never adds a slot). Zero bits take 0 s; positive bits at rate 0 (no link)
    take ``inf`` s, which callers treat as "not delivered".

    Parameters
    ----------
    bits : array_like of float (>= 0, finite), shape (...)
    rate_bps : array_like of float (>= 0, finite), broadcastable
    slot_s : array_like of float (> 0, finite), broadcastable
        Slot (scheduling unit) duration, e.g. a profile's ``slot_s``.

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    b = _floats("bits", bits, low=0.0, finite=True)
    r = _floats("rate_bps", rate_bps, low=0.0, finite=True)
    slot = _floats("slot_s", slot_s, low=0.0, strict=True, finite=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        slots = np.ceil(b / (r * slot) * (1.0 - _SLOT_ROUNDING_RTOL))
    return np.asarray(np.where(b == 0, 0.0, np.where(r == 0, np.inf, slots * slot)))
