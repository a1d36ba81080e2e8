"""Pulse shapes of the radio task: root-raised-cosine (linear modulations) and FSK phase pulses.

All pulses are functions of continuous time ``t`` in **symbol periods** (``T = 1``), so a
modulator can evaluate them at any fractional sample instant; this is how the timing offset
of a frame is applied exactly, without interpolation.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]

#: Times closer than this (in symbol periods) to a removable singularity of the RRC formula
#: use the analytic limit instead. Rationale: the formula's 0/0 cancellation loses about
#: ``eps / |dt|`` relative accuracy, i.e. ~1e-10 at this distance, while the pulse's slope is
#: O(1), so substituting the limit errs by at most ~1e-6 of the peak.
_SINGULARITY_TOLERANCE_SYMBOLS = 1e-6


def _check_rolloff(rolloff: float) -> None:
    if not (0.0 < rolloff <= 1.0):
        raise ValueError(f"rolloff must lie in (0, 1], got {rolloff}")


def rrc_pulse(t_symbols: npt.ArrayLike, rolloff: float) -> FloatArray:
    """Evaluate the continuous-time root-raised-cosine pulse.

    The standard RRC impulse response with symbol period ``T = 1`` (e.g. Proakis & Salehi,
    *Digital Communications*, 5th ed., eq. 9.2-30 and its square root; also 3GPP TS 25.104
    §6.8.1), scaled to unit energy: ``∫ h(t)^2 dt = 1``. Its two removable singularities,
    ``t = 0`` and ``t = ±1 / (4 β)``, take their analytic limits.

    Parameters
    ----------
    t_symbols : array_like of float, any shape
        Time in symbol periods.
    rolloff : float
        Excess bandwidth ``β`` in (0, 1].

    Returns
    -------
    numpy.ndarray of float64, same shape as ``t_symbols``
        Pulse amplitude in 1/sqrt(symbol period) (unit energy over continuous time).
    """
    _check_rolloff(rolloff)
    t = np.asarray(t_symbols, dtype=np.float64)
    beta = rolloff
    at_zero = np.abs(t) < _SINGULARITY_TOLERANCE_SYMBOLS
    at_edge = np.abs(np.abs(t) - 1.0 / (4.0 * beta)) < _SINGULARITY_TOLERANCE_SYMBOLS
    regular = ~(at_zero | at_edge)
    ts = np.where(regular, t, 0.25)  # any regular point; masked out below
    numerator = np.sin(np.pi * ts * (1.0 - beta)) + 4.0 * beta * ts * np.cos(
        np.pi * ts * (1.0 + beta)
    )
    denominator = np.pi * ts * (1.0 - (4.0 * beta * ts) ** 2)
    value_zero = 1.0 - beta + 4.0 * beta / np.pi
    value_edge = (beta / math.sqrt(2.0)) * (
        (1.0 + 2.0 / np.pi) * math.sin(np.pi / (4.0 * beta))
        + (1.0 - 2.0 / np.pi) * math.cos(np.pi / (4.0 * beta))
    )
    out = np.where(regular, numerator / np.where(regular, denominator, 1.0), 0.0)
    out = np.where(at_zero, value_zero, out)
    return np.asarray(np.where(at_edge, value_edge, out), dtype=np.float64)


def rrc_taps(samples_per_symbol: int, rolloff: float, span_symbols: int) -> FloatArray:
    """Return a sampled, truncated root-raised-cosine filter with unit energy.

    Parameters
    ----------
    samples_per_symbol : int
        Oversampling factor (>= 1).
    rolloff : float
        Excess bandwidth in (0, 1].
    span_symbols : int
        Filter length in symbols (even, >= 2); the taps cover ``[-span/2, span/2]`` symbols.

    Returns
    -------
    numpy.ndarray of float64, shape (span_symbols * samples_per_symbol + 1,)
        Symmetric taps, centred on the middle one, normalized so that ``sum(taps**2) == 1``.
        Used as the receiver's matched filter in tests and analysis.
    """
    if samples_per_symbol < 1:
        raise ValueError(f"samples_per_symbol must be >= 1, got {samples_per_symbol}")
    if span_symbols < 2 or span_symbols % 2 != 0:
        raise ValueError(f"span_symbols must be an even integer >= 2, got {span_symbols}")
    half = span_symbols * samples_per_symbol // 2
    t = np.arange(-half, half + 1, dtype=np.float64) / samples_per_symbol
    taps = rrc_pulse(t, rolloff)
    return np.asarray(taps / np.sqrt(np.sum(taps**2)), dtype=np.float64)


def gaussian_sigma_symbols(bt: float) -> float:
    """Standard deviation, in symbol periods, of the Gaussian filter with 3-dB bandwidth ``B``.

    ``σ = sqrt(ln 2) / (2 π BT)`` (Murota & Hirade, "GMSK modulation for digital mobile radio
    telephony", IEEE Trans. Commun. 29(7), 1981).

    Parameters
    ----------
    bt : float
        Bandwidth-time product ``BT`` (> 0).
    """
    if bt <= 0.0:
        raise ValueError(f"bt must be > 0, got {bt}")
    return math.sqrt(math.log(2.0)) / (2.0 * math.pi * bt)


def gaussian_phase_pulse(t_symbols: npt.ArrayLike, bt: float) -> FloatArray:
    """Phase pulse ``q(t)`` of GFSK: the integral of the Gaussian-filtered rectangular pulse.

    The frequency pulse is a unit-area-halved rectangle of one symbol, centred on ``t = 0``,
    convolved with a Gaussian of std ``σ`` (see `gaussian_sigma_symbols`):
    ``g(t) = [Φ((t + 1/2)/σ) - Φ((t - 1/2)/σ)] / 2``. Its integral has the closed form
    ``q(t) = [Ψ(t + 1/2) - Ψ(t - 1/2)] / 2`` with ``Ψ(u) = σ (x Φ(x) + φ(x))``, ``x = u / σ``,
    so ``q`` rises smoothly from 0 to 1/2.

    Parameters
    ----------
    t_symbols : array_like of float, any shape
        Time in symbol periods, relative to the symbol's centre.
    bt : float
        Bandwidth-time product of the Gaussian filter.

    Returns
    -------
    numpy.ndarray of float64, same shape as ``t_symbols``
        Phase pulse in units of (phase / (2 π h)); tends to 0 at -inf and 1/2 at +inf.
    """
    sigma = gaussian_sigma_symbols(bt)
    t = np.asarray(t_symbols, dtype=np.float64)

    def psi(u: FloatArray) -> FloatArray:
        x = u / sigma
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return np.asarray(sigma * (x * ndtr(x) + pdf), dtype=np.float64)

    return np.asarray(0.5 * (psi(t + 0.5) - psi(t - 0.5)), dtype=np.float64)


def rectangular_phase_pulse(t_symbols: npt.ArrayLike) -> FloatArray:
    """Phase pulse ``q(t)`` of full-response CPFSK: a linear ramp from 0 to 1/2 over one symbol.

    Parameters
    ----------
    t_symbols : array_like of float, any shape
        Time in symbol periods, relative to the symbol's centre (the ramp spans [-1/2, 1/2]).

    Returns
    -------
    numpy.ndarray of float64, same shape as ``t_symbols``
        Phase pulse in units of (phase / (2 π h)).
    """
    t = np.asarray(t_symbols, dtype=np.float64)
    return np.asarray(0.5 * np.clip(t + 0.5, 0.0, 1.0), dtype=np.float64)
