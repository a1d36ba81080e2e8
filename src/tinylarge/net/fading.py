"""Small-scale block fading of the link budget: sample a power gain, then apply it in dB.

As in Sionna, *sampling* the channel state (`fading_power_gain`) is kept apart from
*applying* it (`fading_gain_db`, added to an SNR or received power in dB). The gain is a
per-block power gain ``|h|^2`` with mean 1, so fading redistributes the received power
around the large-scale (path loss + shadowing) value without changing its mean.

- ``"rayleigh"``: ``h ~ CN(0, 1)``, so ``|h|^2`` is exponential with mean 1.
- ``"rician"``: ``h = sqrt(K/(K+1)) + CN(0, 1/(K+1))`` (a fixed line-of-sight part plus
  scattering, Rice factor ``K`` linear); ``E|h|^2 = 1`` and
  ``Var|h|^2 = (1 + 2K)/(1 + K)^2``. ``K = 0`` is Rayleigh; large ``K`` tends to no fading.
- ``"none"``: ``|h|^2 = 1``; no random numbers are drawn.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
FadingKind = Literal["rayleigh", "rician", "none"]
FADING_KINDS: tuple[str, ...] = ("rayleigh", "rician", "none")


def fading_power_gain(
    rng: np.random.Generator,
    size: int | tuple[int, ...],
    *,
    kind: FadingKind,
    k_factor_db: float = 0.0,
) -> FloatArray:
    """Draw independent block-fading power gains ``|h|^2`` with mean 1.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws (untouched for ``kind="none"``).
    size : int or tuple of int
        Output shape, e.g. ``n_devices`` or ``(n_devices, n_blocks)``.
    kind : {"rayleigh", "rician", "none"}
        Fading distribution, see the module docstring.
    k_factor_db : float, default 0.0
        Rice factor ``K`` in dB (finite), used only by ``"rician"``.

    Returns
    -------
    numpy.ndarray of float64, shape ``size``
        Linear power gains (dimensionless, >= 0, mean 1).
    """
    if kind not in FADING_KINDS:
        raise ValueError(f"kind must be one of {FADING_KINDS}, got {kind!r}")
    shape = (size,) if isinstance(size, int | np.integer) else tuple(size)
    if any(int(n) < 0 for n in shape):
        raise ValueError(f"size must be non-negative, got {size!r}")
    if kind == "none":
        return np.ones(shape, dtype=np.float64)
    if kind == "rayleigh":  # |CN(0, 1)|^2 is Exp(1)
        return np.asarray(rng.standard_exponential(shape), dtype=np.float64)
    if not math.isfinite(k_factor_db):
        raise ValueError(f"k_factor_db must be a finite number of dB, got {k_factor_db!r}")
    k = 10.0 ** (k_factor_db / 10.0)
    los_amplitude = math.sqrt(k / (k + 1.0))
    scatter_std = math.sqrt(0.5 / (k + 1.0))  # per real dimension of CN(0, 1/(K+1))
    in_phase = los_amplitude + scatter_std * rng.standard_normal(shape)
    quadrature = scatter_std * rng.standard_normal(shape)
    in_phase *= in_phase
    in_phase += quadrature * quadrature
    return in_phase


def fading_gain_db(power_gain: npt.ArrayLike) -> FloatArray:
    """Convert power gains to dB, ``10 log10(|h|^2)``, to add to an SNR or power in dB.

    Parameters
    ----------
    power_gain : array_like of float, any shape
        Linear power gains (>= 0), e.g. from `fading_power_gain`.

    Returns
    -------
    numpy.ndarray of float64, same shape
        Gain in dB (``-inf`` for a gain of exactly 0).
    """
    gain = np.asarray(power_gain, dtype=np.float64)
    if gain.size and not float(np.min(gain)) >= 0.0:
        raise ValueError(
            f"power_gain must be >= 0 (and not NaN), got minimum {float(np.min(gain))!r}"
        )
    with np.errstate(divide="ignore"):
        return np.asarray(10.0 * np.log10(gain), dtype=np.float64)
