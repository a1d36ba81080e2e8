"""Baseband modulators of the radio task: PSK/QAM/PAM with RRC shaping, and binary GFSK/CPFSK.

Every modulator is vectorized over frames and evaluates its pulse at the exact (fractionally
delayed) sampling instants of each frame, so a per-frame timing offset costs nothing extra
and introduces no interpolation error or filter transient.

Time line of one frame: output sample ``i`` (``0 <= i < n_samples``) is taken at time
``t_i = (i - delay_samples) / samples_per_symbol`` symbol periods, and symbol ``k`` is centred
at ``t = k``. Enough symbols before and after the window are drawn that every pulse touching
the window is complete.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from tinylarge.data.pulses import gaussian_phase_pulse, rectangular_phase_pulse, rrc_pulse

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

#: Length of the transmit RRC pulse in symbols (truncated to ±4 symbols). Rationale: with
#: roll-off 0.35 the truncation leaves a worst-case (peak-distortion) ISI of -29 dB after the
#: matched filter, below the noise at the task's highest default SNR (20 dB), at a cost of
#: 10 multiply-adds per output sample.
RRC_SPAN_SYMBOLS = 8

#: GFSK: Bluetooth BR-like. The Bluetooth Core Specification (v5.4, Vol 2, Part A, §3,
#: "Modulation characteristics") specifies GFSK with BT = 0.5 and a modulation index between
#: 0.28 and 0.35; we take the upper end.
GFSK_BT = 0.5
GFSK_MODULATION_INDEX = 0.35
#: CPFSK: binary, rectangular frequency pulse, h = 0.5 (minimum-shift keying, MSK).
CPFSK_MODULATION_INDEX = 0.5
#: Half-width, in symbols, of the window over which an FSK phase pulse is still rising. With
#: BT = 0.5 the Gaussian std is 0.265 symbols, so the pulse has settled (to < 1e-15) 3 symbols
#: from its centre; the rectangular pulse settles after 1/2 symbol.
_FSK_HALF_WINDOW_SYMBOLS = 3


def _unit_energy(points: npt.ArrayLike) -> ComplexArray:
    c = np.asarray(points, dtype=np.complex128)
    return np.asarray(c / np.sqrt(np.mean(np.abs(c) ** 2)), dtype=np.complex128)


def _square_qam(m: int) -> ComplexArray:
    side = round(math.sqrt(m))
    levels = np.arange(-(side - 1), side, 2, dtype=np.float64)
    return _unit_energy((levels[:, None] + 1j * levels[None, :]).ravel())


def _psk(m: int, phase0_rad: float) -> ComplexArray:
    return _unit_energy(np.exp(1j * (phase0_rad + 2.0 * np.pi * np.arange(m) / m)))


#: Symbol alphabets, each with unit average symbol energy (equiprobable symbols). Gray
#: mapping is irrelevant here: symbols are drawn directly, not from bits.
CONSTELLATIONS: dict[str, ComplexArray] = {
    "BPSK": _psk(2, 0.0),
    "QPSK": _psk(4, np.pi / 4.0),
    "8PSK": _psk(8, 0.0),
    "16QAM": _square_qam(16),
    "64QAM": _square_qam(64),
    "PAM4": _unit_energy([-3.0, -1.0, 1.0, 3.0]),
    # Only in the pretraining world of the foundation model (no default task uses them):
    "16PSK": _psk(16, 0.0),
    "32QAM": _unit_energy(  # cross 32-QAM: the 6x6 square without its four corners
        [p for p in _square_qam(36) * np.sqrt(70.0 / 3.0) if min(abs(p.real), abs(p.imag)) < 4]
    ),
    "256QAM": _square_qam(256),
    "PAM8": _unit_energy(np.arange(-7.0, 8.0, 2.0)),
    "OOK": _unit_energy([0.0, 1.0]),
}


@dataclass(frozen=True)
class FskSpec:
    """A binary continuous-phase FSK scheme.

    Attributes
    ----------
    modulation_index : float
        ``h``: the phase advances by ``± π h`` rad per symbol.
    pulse : {"gaussian", "rectangular"}
        Frequency pulse shape.
    bt : float
        Bandwidth-time product of the Gaussian pulse (ignored for rectangular).
    """

    modulation_index: float
    pulse: Literal["gaussian", "rectangular"]
    bt: float = 0.0


FSK_SCHEMES: dict[str, FskSpec] = {
    "GFSK": FskSpec(GFSK_MODULATION_INDEX, "gaussian", GFSK_BT),
    "CPFSK": FskSpec(CPFSK_MODULATION_INDEX, "rectangular"),
    # GMSK as in GSM (3GPP TS 45.004, section 2: BT = 0.3, h = 0.5); pretraining world only.
    "GMSK": FskSpec(0.5, "gaussian", 0.3),
}

#: The modulations of the radio task, in label order.
MODULATIONS: tuple[str, ...] = (
    "BPSK", "QPSK", "8PSK", "16QAM", "64QAM", "PAM4", "GFSK", "CPFSK",
)  # fmt: skip
#: Modulations that only the foundation model's pretraining world draws (no default task uses
#: them), so that pretraining sees more of the radio world than any one task.
EXTRA_MODULATIONS: tuple[str, ...] = ("16PSK", "32QAM", "256QAM", "PAM8", "OOK", "GMSK")
#: Every modulation the generator can draw.
ALL_MODULATIONS: tuple[str, ...] = (*MODULATIONS, *EXTRA_MODULATIONS)


def _check_delays(delay_samples: FloatArray, samples_per_symbol: int) -> None:
    if delay_samples.ndim != 1:
        raise ValueError(f"delay_samples must be 1-D, got shape {delay_samples.shape}")
    if delay_samples.size and (
        delay_samples.min() < 0.0 or delay_samples.max() > samples_per_symbol
    ):
        raise ValueError(
            "delay_samples must lie in [0, samples_per_symbol] = "
            f"[0, {samples_per_symbol}], got range [{delay_samples.min()}, {delay_samples.max()}]"
        )


def _relative_times(
    delay_samples: FloatArray, samples_per_symbol: int, half_window: int
) -> FloatArray:
    """Times ``t_i - k`` (symbols) for each frame, symbol offset ``j`` and polyphase phase ``p``.

    Returns shape (n_frames, 2 * half_window + 2, samples_per_symbol): entry ``[n, jj, p]`` is
    ``u_p - j`` with ``u_p = (p - delay_n) / sps`` and ``j = jj - half_window - 1``.
    """
    u = (np.arange(samples_per_symbol)[None, :] - delay_samples[:, None]) / samples_per_symbol
    j = np.arange(-half_window - 1, half_window + 1, dtype=np.float64)
    return np.asarray(u[:, None, :] - j[None, :, None], dtype=np.float64)


def _windowed_sum(symbols: FloatArray, weights: FloatArray, n_blocks: int) -> FloatArray:
    """``out[n, m, p] = sum_jj symbols[n, m + jj] * weights[n, jj, p]`` for ``m < n_blocks``."""
    windows = sliding_window_view(symbols, weights.shape[1], axis=1)[:, :n_blocks, :]
    return np.asarray(np.matmul(windows, weights), dtype=np.float64)


def _symbol_periods(n_samples: int, samples_per_symbol: int) -> int:
    """Symbol periods a frame of ``n_samples`` spans, the last one maybe in part."""
    return -(-n_samples // samples_per_symbol)


def n_symbols_needed(n_samples: int, samples_per_symbol: int, half_window: int) -> int:
    """Number of symbols a modulator draws per frame (window plus pulse tails on both sides)."""
    return _symbol_periods(n_samples, samples_per_symbol) + 2 * half_window + 1


def _pulse_times(
    name: str,
    symbols: FloatArray | ComplexArray,
    delay_samples: FloatArray,
    n_samples: int,
    samples_per_symbol: int,
    half_window: int,
) -> tuple[FloatArray, int]:
    """Check a modulator's ``symbols`` (its argument ``name``) and delays; return the sample
    times relative to each symbol (`_relative_times`) and the frame's symbol periods."""
    _check_delays(delay_samples, samples_per_symbol)
    needed = n_symbols_needed(n_samples, samples_per_symbol, half_window)
    if symbols.ndim != 2 or symbols.shape != (delay_samples.shape[0], needed):
        raise ValueError(
            f"{name} must have shape ({delay_samples.shape[0]}, {needed}), got {symbols.shape}"
        )
    times = _relative_times(delay_samples, samples_per_symbol, half_window)
    return times, _symbol_periods(n_samples, samples_per_symbol)


def modulate_linear(
    symbols: ComplexArray,
    delay_samples: FloatArray,
    n_samples: int,
    samples_per_symbol: int,
    rolloff: float,
) -> ComplexArray:
    """Shape symbol streams with a truncated RRC pulse and sample them with per-frame delays.

    Parameters
    ----------
    symbols : numpy.ndarray of complex128, shape (n_frames, n_symbols_needed(n_samples, sps, 4))
        Symbol ``k`` of the frame time line is column ``k + RRC_SPAN_SYMBOLS // 2 + 1``.
    delay_samples : numpy.ndarray of float64, shape (n_frames,)
        Timing offset of each frame in samples, in [0, samples_per_symbol].
    n_samples : int
        Samples per output frame.
    samples_per_symbol : int
        Oversampling factor.
    rolloff : float
        RRC roll-off in (0, 1].

    Returns
    -------
    numpy.ndarray of complex128, shape (n_frames, n_samples)
        Baseband signal with mean power ≈ the constellation's average symbol energy (the
        pulse has unit energy per symbol period).
    """
    half = RRC_SPAN_SYMBOLS // 2
    t, n_blocks = _pulse_times(
        "symbols", symbols, delay_samples, n_samples, samples_per_symbol, half
    )
    weights = np.where(np.abs(t) <= half, rrc_pulse(t, rolloff), 0.0)
    real = _windowed_sum(np.ascontiguousarray(symbols.real), weights, n_blocks)
    imag = _windowed_sum(np.ascontiguousarray(symbols.imag), weights, n_blocks)
    out = (real + 1j * imag).reshape(symbols.shape[0], -1)[:, :n_samples]
    return np.asarray(out, dtype=np.complex128)


def modulate_fsk(
    bits_pm1: FloatArray,
    delay_samples: FloatArray,
    n_samples: int,
    samples_per_symbol: int,
    spec: FskSpec,
) -> ComplexArray:
    """Binary continuous-phase FSK with a constant (unit) envelope.

    ``s(t) = exp(j 2π h Σ_k a_k q(t - k))`` with ``a_k`` in {-1, +1} and ``q`` the phase pulse
    (0 before the symbol, 1/2 once it has passed), evaluated exactly at each sample instant.

    Parameters
    ----------
    bits_pm1 : numpy.ndarray of float64, shape (n_frames, n_symbols_needed(n_samples, sps, 3))
        Antipodal data symbols; symbol ``k`` of the time line is column ``k + 4``.
    delay_samples : numpy.ndarray of float64, shape (n_frames,)
        Timing offset of each frame in samples, in [0, samples_per_symbol].
    n_samples : int
        Samples per output frame.
    samples_per_symbol : int
        Oversampling factor.
    spec : FskSpec
        Modulation index and pulse.

    Returns
    -------
    numpy.ndarray of complex128, shape (n_frames, n_samples)
        Unit-magnitude baseband samples.
    """
    t, n_blocks = _pulse_times(
        "bits_pm1", bits_pm1, delay_samples, n_samples, samples_per_symbol,
        _FSK_HALF_WINDOW_SYMBOLS,
    )  # fmt: skip
    if spec.pulse == "gaussian":
        weights = gaussian_phase_pulse(t, spec.bt)
    else:
        weights = rectangular_phase_pulse(t)
    rising = _windowed_sum(bits_pm1, weights, n_blocks)
    # Symbols whose pulse has fully passed contribute their whole 1/2 (exclusive prefix sum).
    settled = np.cumsum(bits_pm1, axis=1)[:, :n_blocks] - bits_pm1[:, :n_blocks]
    phase_cycles = spec.modulation_index * (0.5 * settled[:, :, None] + rising)
    phase = (2.0 * np.pi * phase_cycles).reshape(bits_pm1.shape[0], -1)[:, :n_samples]
    return np.asarray(np.exp(1j * phase), dtype=np.complex128)


def modulate(
    name: str,
    delay_samples: FloatArray,
    n_samples: int,
    samples_per_symbol: int,
    rolloff: float,
    rng: np.random.Generator,
) -> ComplexArray:
    """Draw random symbols and modulate them with the named scheme.

    Parameters
    ----------
    name : str
        One of `ALL_MODULATIONS`.
    delay_samples : numpy.ndarray of float64, shape (n_frames,)
        Timing offset of each frame in samples, in [0, samples_per_symbol].
    n_samples : int
        Samples per output frame.
    samples_per_symbol : int
        Oversampling factor.
    rolloff : float
        RRC roll-off of the linear modulations (ignored by FSK).
    rng : numpy.random.Generator
        Source of the data symbols.

    Returns
    -------
    numpy.ndarray of complex128, shape (n_frames, n_samples)
        Transmitted baseband signal, mean power ≈ 1.
    """
    n_frames = delay_samples.shape[0]
    if name in CONSTELLATIONS:
        alphabet = CONSTELLATIONS[name]
        k = n_symbols_needed(n_samples, samples_per_symbol, RRC_SPAN_SYMBOLS // 2)
        symbols = alphabet[rng.integers(0, alphabet.size, size=(n_frames, k))]
        return modulate_linear(symbols, delay_samples, n_samples, samples_per_symbol, rolloff)
    if name in FSK_SCHEMES:
        k = n_symbols_needed(n_samples, samples_per_symbol, _FSK_HALF_WINDOW_SYMBOLS)
        bits = 2.0 * rng.integers(0, 2, size=(n_frames, k)).astype(np.float64) - 1.0
        return modulate_fsk(bits, delay_samples, n_samples, samples_per_symbol, FSK_SCHEMES[name])
    raise ValueError(f"unknown modulation {name!r}; allowed: {', '.join(ALL_MODULATIONS)}")
