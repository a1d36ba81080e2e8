"""Channel and receiver impairments of the radio task, vectorized over frames.

As in Sionna, *sampling* an impairment's random state (``sample_*``) is kept apart from
*applying* it (``apply_*``), so tests can inspect the state and callers can reuse it.
Every impairment is per frame (block fading: constant within a frame, independent between
frames) and every one has a setting that turns it off.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]
Fading = Literal["rician", "rayleigh", "none"]
FADING_MODELS: tuple[str, ...] = ("rician", "rayleigh", "none")

#: Guards divisions by a frame's power; far below any physical frame power (unit-power
#: transmit signals through channels of unit mean gain).
_TINY_POWER = 1e-300


def sample_timing_offsets(
    n_frames: int, samples_per_symbol: int, max_symbols: float, rng: np.random.Generator
) -> FloatArray:
    """Draw each frame's timing offset, uniform over ``[0, max_symbols)`` symbol periods.

    Returns
    -------
    numpy.ndarray of float64, shape (n_frames,)
        Delay in samples (integer part plus fraction), in [0, max_symbols * samples_per_symbol).
        All zeros when ``max_symbols == 0`` (no random numbers are drawn).
    """
    if max_symbols == 0.0:
        return np.zeros(n_frames, dtype=np.float64)
    return np.asarray(
        rng.uniform(0.0, max_symbols * samples_per_symbol, size=n_frames), dtype=np.float64
    )


def power_delay_profile(n_taps: int, tap_decay_db: float) -> FloatArray:
    """Exponential power-delay profile: tap ``l`` has relative power ``10^(-l·decay/10)``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_taps,)
        Mean tap powers (linear), summing to 1 so the channel has unit expected power gain.
    """
    powers = 10.0 ** (-np.arange(n_taps, dtype=np.float64) * tap_decay_db / 10.0)
    return np.asarray(powers / powers.sum(), dtype=np.float64)


def sample_multipath_gains(
    n_frames: int,
    n_taps: int,
    tap_decay_db: float,
    rician_k_db: float,
    fading: Fading,
    rng: np.random.Generator,
) -> ComplexArray:
    """Draw block-fading tap gains of a tapped-delay-line channel with one-sample tap spacing.

    Taps after the first are Rayleigh (zero-mean circular complex Gaussian). The first tap is
    Rician with factor ``K`` (``fading="rician"``: a fixed line-of-sight part of power
    ``K/(K+1)`` with phase 0 — its phase is absorbed by the carrier phase impairment — plus
    scattering of power ``1/(K+1)``) or Rayleigh (``fading="rayleigh"``). The expected total
    power gain is 1 (see `power_delay_profile`).

    Parameters
    ----------
    n_frames : int
        Number of independent channel realizations.
    n_taps : int
        Number of taps (>= 1); ignored for ``fading="none"``.
    tap_decay_db : float
        Power decay per tap in dB (>= 0).
    rician_k_db : float
        Rician factor of the first tap in dB.
    fading : {"rician", "rayleigh", "none"}
        ``"none"`` returns a single unit tap (no multipath, no fading) and draws nothing.
    rng : numpy.random.Generator
        Source of the fading.

    Returns
    -------
    numpy.ndarray of complex128, shape (n_frames, n_taps) or (n_frames, 1) for "none"
        Complex amplitude gain of each tap (dimensionless).
    """
    if fading == "none":
        return np.ones((n_frames, 1), dtype=np.complex128)
    if fading not in FADING_MODELS:
        raise ValueError(f"fading must be one of {FADING_MODELS}, got {fading!r}")
    powers = power_delay_profile(n_taps, tap_decay_db)
    scatter = (
        rng.standard_normal((n_frames, n_taps)) + 1j * rng.standard_normal((n_frames, n_taps))
    ) / np.sqrt(2.0)
    gains = scatter * np.sqrt(powers)[None, :]
    if fading == "rician":
        k_lin = 10.0 ** (rician_k_db / 10.0)
        gains[:, 0] = np.sqrt(powers[0]) * (
            np.sqrt(k_lin / (k_lin + 1.0)) + np.sqrt(1.0 / (k_lin + 1.0)) * scatter[:, 0]
        )
    return np.asarray(gains, dtype=np.complex128)


def apply_multipath(signal_ext: ComplexArray, gains: ComplexArray) -> ComplexArray:
    """Pass frames through their tapped delay lines: ``y[n] = Σ_l g_l x[n - l]``.

    Parameters
    ----------
    signal_ext : numpy.ndarray of complex128, shape (n_frames, n_samples + n_taps - 1)
        Transmitted frames including ``n_taps - 1`` leading samples that precede the window,
        so the output has no start-up transient.
    gains : numpy.ndarray of complex128, shape (n_frames, n_taps)
        Tap gains from `sample_multipath_gains`.

    Returns
    -------
    numpy.ndarray of complex128, shape (n_frames, n_samples)
    """
    n_taps = gains.shape[1]
    n_samples = signal_ext.shape[1] - (n_taps - 1)
    if n_samples < 1 or gains.shape[0] != signal_ext.shape[0]:
        raise ValueError(
            f"signal_ext of shape {signal_ext.shape} does not fit gains of shape {gains.shape}"
        )
    out = np.zeros((signal_ext.shape[0], n_samples), dtype=np.complex128)
    for lag in range(n_taps):
        start = n_taps - 1 - lag
        out += gains[:, lag : lag + 1] * signal_ext[:, start : start + n_samples]
    return out


def sample_carrier_phase(
    n_frames: int,
    n_samples: int,
    rng: np.random.Generator,
    *,
    phase_max_rad: float,
    cfo_max_cycles_per_sample: float,
    phase_noise_std_rad: float,
) -> FloatArray:
    """Draw each frame's carrier phase trajectory: offset + frequency offset + phase noise.

    ``φ[n] = φ0 + 2π Δf n + w[n]`` with ``φ0 ~ U[0, phase_max_rad)``,
    ``Δf ~ U[-cfo_max, +cfo_max]`` cycles/sample and ``w`` a Wiener process (``w[0] = 0``,
    independent Gaussian increments of std ``phase_noise_std_rad`` per sample), the usual
    model of a free-running oscillator's phase noise. A setting of 0 turns its term off and
    draws nothing.

    Returns
    -------
    numpy.ndarray of float64, shape (n_frames, n_samples)
        Phase in radians.
    """
    phase = np.zeros((n_frames, n_samples), dtype=np.float64)
    if phase_max_rad > 0.0:
        phase += rng.uniform(0.0, phase_max_rad, size=(n_frames, 1))
    if cfo_max_cycles_per_sample > 0.0:
        cfo = rng.uniform(-cfo_max_cycles_per_sample, cfo_max_cycles_per_sample, (n_frames, 1))
        phase += 2.0 * np.pi * cfo * np.arange(n_samples, dtype=np.float64)[None, :]
    if phase_noise_std_rad > 0.0:
        steps = rng.normal(0.0, phase_noise_std_rad, size=(n_frames, n_samples))
        steps[:, 0] = 0.0
        phase += np.cumsum(steps, axis=1)
    return phase


def apply_carrier_phase(signal: ComplexArray, phase_rad: FloatArray) -> ComplexArray:
    """Rotate each sample by its carrier phase, ``y = x · exp(j φ)``.

    Shapes (n_frames, n_samples) -> (n_frames, n_samples).
    """
    return np.asarray(signal * np.exp(1j * phase_rad), dtype=np.complex128)


def frame_power(signal: ComplexArray) -> FloatArray:
    """Mean power ``mean |x|^2`` of each frame; (n_frames, n_samples) -> (n_frames,)."""
    return np.asarray(np.mean(signal.real**2 + signal.imag**2, axis=1), dtype=np.float64)


def sample_awgn(
    received: ComplexArray, snr_db: npt.NDArray[np.floating[Any]], rng: np.random.Generator
) -> ComplexArray:
    """Draw circular complex white Gaussian noise at each frame's SNR.

    The SNR is defined on the received signal: noise variance
    ``σ² = mean |s|² / 10^(snr_db / 10)`` with the frame's measured power, split evenly between
    I and Q (``σ²/2`` each).

    Parameters
    ----------
    received : numpy.ndarray of complex128, shape (n_frames, n_samples)
        Noise-free received frames.
    snr_db : numpy.ndarray, shape (n_frames,)
        Target SNR of each frame in dB.
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    numpy.ndarray of complex128, shape (n_frames, n_samples)
        The noise, to be added to ``received``.
    """
    if snr_db.shape != (received.shape[0],):
        raise ValueError(f"snr_db must have shape ({received.shape[0]},), got {snr_db.shape}")
    variance = frame_power(received) / 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)
    scale = np.sqrt(variance / 2.0)[:, None]
    noise = rng.standard_normal(received.shape) + 1j * rng.standard_normal(received.shape)
    return np.asarray(noise * scale, dtype=np.complex128)


def normalize_frame_power(signal: ComplexArray) -> ComplexArray:
    """Automatic gain control: scale each frame to unit mean power (its SNR is unchanged).

    Shapes (n_frames, n_samples) -> (n_frames, n_samples).
    """
    power = np.maximum(frame_power(signal), _TINY_POWER)
    return np.asarray(signal / np.sqrt(power)[:, None], dtype=np.complex128)
