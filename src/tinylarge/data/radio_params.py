"""Validated settings of the radio task (`RadioParams`) and its SNR grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinylarge.data.channel_impairments import FADING_MODELS, Fading
from tinylarge.data.modulation import ALL_MODULATIONS, MODULATIONS
from tinylarge.validation import check_int

#: Modulation classes of the radio task, in label order (the classic RadioML setting,
#: O'Shea & West, "Radio Machine Learning Dataset Generation with GNU Radio", GRCon 2016,
#: restricted to digital schemes).
RADIO_CLASSES: tuple[str, ...] = MODULATIONS

#: Largest SNR grid accepted; guards against a tiny step creating a huge array by mistake.
MAX_SNR_LEVELS = 10_000


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}], got {value}")


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """Validate a selection of radio classes and return it as a tuple (order kept).

    Raises
    ------
    ValueError
        If ``classes`` is a bare string, empty, repeats a name or names an unknown class.
    """
    if isinstance(classes, str):
        raise ValueError(
            f"classes must be a sequence of class names, not the string {classes!r}; "
            f"allowed names: {', '.join(ALL_MODULATIONS)}"
        )
    selected = tuple(classes)
    if not selected:
        raise ValueError(f"classes must name at least one of: {', '.join(ALL_MODULATIONS)}")
    unknown = [c for c in selected if c not in ALL_MODULATIONS]
    if unknown:
        raise ValueError(
            f"unknown radio class(es) {unknown}; allowed: {', '.join(ALL_MODULATIONS)}"
        )
    if len(set(selected)) != len(selected):
        raise ValueError(f"classes must not repeat a name, got {list(selected)}")
    return selected


@dataclass(frozen=True)
class RadioParams:
    """Every setting of the radio frame generator (`generate_radio_frames`).

    Construction validates all fields and raises ``ValueError`` naming the field, the value
    and the allowed range.

    Attributes
    ----------
    classes : sequence of str
        Subset of `ALL_MODULATIONS` (default: the task's `RADIO_CLASSES`) in label order
        (label ``i`` is ``classes[i]``).
    frame_length : int
        Complex samples per frame (>= 2).
    samples_per_symbol : int
        Oversampling factor (>= 2); the symbol rate is ``1 / samples_per_symbol`` of the
        sample rate.
    rolloff : float
        Roll-off of the transmit root-raised-cosine pulse of PSK/QAM/PAM, in (0, 1].
    snr_db_min, snr_db_max, snr_db_step : float
        Each frame's SNR is drawn uniformly from the grid ``min, min + step, ..., <= max`` dB
        (defaults: 16 levels, -10 to 20 dB). SNR = received signal power of the frame
        (measured, after fading) over the complex noise variance.
    timing_offset_max_symbols : float
        Timing offset uniform in ``[0, value)`` symbols, in [0, 1]; 0 turns it off.
    carrier_phase_max_rad : float
        Carrier phase uniform in ``[0, value)`` rad, in [0, 2π]; 0 turns it off.
    cfo_max_cycles_per_sample : float
        Carrier frequency offset uniform in ``±value`` cycles/sample, in [0, 0.5].
    phase_noise_std_rad : float
        Per-sample increment std of the Wiener phase noise, rad; 0 turns it off.
    fading : {"rician", "rayleigh", "none"}
        Block-fading multipath model; "none" means no multipath and no fading.
    multipath_taps : int
        Taps of the tapped delay line at one-sample spacing (>= 1, <= frame_length).
    tap_decay_db : float
        Exponential power-delay profile decay per tap, dB (>= 0).
    rician_k_db : float
        Rician K-factor of the first tap, dB (used when ``fading == "rician"``).
    normalize_power : bool
        AGC: scale each noisy frame to unit mean power.
    """

    classes: tuple[str, ...] = RADIO_CLASSES
    frame_length: int = 128
    samples_per_symbol: int = 8
    rolloff: float = 0.35
    snr_db_min: float = -10.0
    snr_db_max: float = 20.0
    snr_db_step: float = 2.0
    timing_offset_max_symbols: float = 1.0
    carrier_phase_max_rad: float = 2.0 * math.pi
    cfo_max_cycles_per_sample: float = 0.001
    phase_noise_std_rad: float = 0.005
    fading: Fading = "rician"
    multipath_taps: int = 3
    tap_decay_db: float = 6.0
    rician_k_db: float = 3.0
    normalize_power: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", check_classes(self.classes))
        check_int("frame_length", self.frame_length, 2)
        # >= 2 samples per symbol: the RRC spectrum (up to (1 + rolloff)/2 of the symbol
        # rate) must fit below the sampling Nyquist frequency.
        check_int("samples_per_symbol", self.samples_per_symbol, 2)
        _check_range("rolloff", self.rolloff, 0.0, 1.0)
        if self.rolloff == 0.0:
            raise ValueError("rolloff must lie in (0, 1], got 0.0")
        _check_range("snr_db_min", self.snr_db_min, -200.0, 200.0)
        _check_range("snr_db_max", self.snr_db_max, -200.0, 200.0)
        _check_range("snr_db_step", self.snr_db_step, 0.0, math.inf)
        if self.snr_db_step <= 0.0:
            raise ValueError(f"snr_db_step must be > 0, got {self.snr_db_step}")
        if self.snr_db_min > self.snr_db_max:
            raise ValueError(
                f"snr_db_min ({self.snr_db_min}) must not exceed snr_db_max ({self.snr_db_max})"
            )
        n_levels = snr_grid_size(self.snr_db_min, self.snr_db_max, self.snr_db_step)
        if n_levels > MAX_SNR_LEVELS:
            raise ValueError(
                f"the SNR grid {self.snr_db_min}..{self.snr_db_max} step {self.snr_db_step} "
                f"has {n_levels} levels; at most {MAX_SNR_LEVELS} are allowed"
            )
        _check_range("timing_offset_max_symbols", self.timing_offset_max_symbols, 0.0, 1.0)
        _check_range("carrier_phase_max_rad", self.carrier_phase_max_rad, 0.0, 2.0 * math.pi)
        # A frequency offset beyond ±0.5 cycles/sample aliases.
        _check_range("cfo_max_cycles_per_sample", self.cfo_max_cycles_per_sample, 0.0, 0.5)
        _check_range("phase_noise_std_rad", self.phase_noise_std_rad, 0.0, math.pi)
        if self.fading not in FADING_MODELS:
            raise ValueError(f"fading must be one of {FADING_MODELS}, got {self.fading!r}")
        check_int("multipath_taps", self.multipath_taps, 1)
        if self.multipath_taps > self.frame_length:
            raise ValueError(
                f"multipath_taps ({self.multipath_taps}) must not exceed frame_length "
                f"({self.frame_length})"
            )
        _check_range("tap_decay_db", self.tap_decay_db, 0.0, 300.0)
        _check_range("rician_k_db", self.rician_k_db, -100.0, 100.0)
        if not isinstance(self.normalize_power, bool | np.bool_):
            raise ValueError(f"normalize_power must be True or False, got {self.normalize_power!r}")

    @property
    def channel_taps(self) -> int:
        """Number of multipath taps actually applied (1 when ``fading == "none"``)."""
        return 1 if self.fading == "none" else self.multipath_taps

    def snr_levels_db(self) -> npt.NDArray[np.float64]:
        """The SNR grid in dB, shape (n_levels,), float64; see `snr_grid`."""
        return snr_grid(self.snr_db_min, self.snr_db_max, self.snr_db_step)


def snr_grid_size(snr_db_min: float, snr_db_max: float, snr_db_step: float) -> int:
    """Number of levels of the grid ``min, min + step, ...`` not exceeding ``max``."""
    # The 1e-9 slack keeps an exactly divisible range's upper endpoint despite floating-point
    # rounding of (max - min) / step (e.g. 0.3 / 0.1 = 2.9999999999999996).
    return math.floor((snr_db_max - snr_db_min) / snr_db_step + 1e-9) + 1


def snr_grid(snr_db_min: float, snr_db_max: float, snr_db_step: float) -> npt.NDArray[np.float64]:
    """SNR levels ``min, min + step, ..., <= max`` in dB (both endpoints when step divides).

    Returns
    -------
    numpy.ndarray of float64, shape (n_levels,)
        With the defaults (-10, 20, 2): 16 levels, -10 to 20 dB.
    """
    n = snr_grid_size(snr_db_min, snr_db_max, snr_db_step)
    return np.asarray(snr_db_min + snr_db_step * np.arange(n, dtype=np.float64), dtype=np.float64)
